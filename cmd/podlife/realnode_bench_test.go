package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	podsv1alpha1 "k8s.io/kubelet/pkg/apis/pods/v1alpha1"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// Parameters of BenchmarkRealNode.
const (
	rnNode        = "podlife-bench"
	rnNamespace   = "bench"
	rnDefaultPods = 110                     // the kubelet's default --max-pods; PODLIFE_BENCH_PODS overrides
	rnStartLimit  = 3 * time.Minute         // for all pods to run
	rnKillEvery   = 1500 * time.Millisecond // one deliberate container exit per period
	rnDetectKills = 30                      // exits measured for detection (phase A)
	rnKubeletPoll = 20 * time.Millisecond   // the benchmark's own /pods polling period
	rnWindows     = 5                       // cost windows (phase B)
	rnWindow      = 10 * time.Second
	rnClkTck      = 100              // CLK_TCK: /proc/PID/stat counts CPU in 1/100 s
	rnIdle        = 60 * time.Second // phase 0: the agent idle
)

// BenchmarkRealNode measures the real podlife binary on a real node: a real
// containerd + runc and a real standalone kubelet running static busybox pods,
// all started here. It runs 110 pods (PODLIFE_BENCH_PODS to change): the
// kubelet's default --max-pods, which testenv's kubelet keeps, and on this
// 2-core machine they all run within about 30 s.
//
// Changes are made deliberately rather than by crash loops, whose
// CrashLoopBackOff (10 s, 20 s, 40 s, ...) would starve the run of samples:
// every 1.5 s the benchmark SIGKILLs the `sleep` process (PID from CRI
// ContainerStatus verbose info, checked against /proc/PID/cmdline) of the next
// running container in a rotation over the pods, and the kubelet
// (restartPolicy Always) restarts it. Backoff is per container, so the
// rotation makes each measured exit a container's first, restarted at once.
//
// Phase A, detection: for each of 30 exits, the reference time is the
// runtime's FinishedAt (CRI ContainerStatus, nanoseconds). podlife
// (--cri-stream=true) detects the exit when its ContainerStateChanged/runtime/
// EXITED transition for that container ID arrives on
// GET /api/v1/transitions?watch=true (time of reading the line). The kubelet
// detects it when the benchmark's /pods poll (every 20 ms) first shows that
// pod's container changed: not running, another container ID, or a higher
// restartCount, whichever comes first. The kubelet's time is when that poll
// was sent, a lower bound of when the kubelet knew, so the lead is
// conservative. Latencies are per exit; lead = kubelet - podlife per exit.
// p99 over ~30 samples is nearly the maximum. The kubelet's own live status
// (its Pods API, Kubernetes 1.37) shows it when the benchmark's WatchPods
// stream delivers the first MODIFIED event with the change: exit → CRI
// event → Pods API → /pods, per exit. The benchmark also follows
// containerd's CRI container events itself: the stop event's CreatedAt is the
// floor for any CRI client, since containerd publishes an exit only after
// deleting the task (runc delete, unmounts).
//
// Phase B, cost: over 5 windows of 10 s, with the kills going on, the podlife
// agent's CPU (utime+stime of /proc/PID/stat) per wall second and its VmRSS,
// side by side with what a person does by hand once per second: `crictl ps -a
// -o json`, `crictl inspect ID` for every container, `curl` the kubelet's
// /pods. The by-hand CPU is its child processes' user+system time. A round
// that takes longer than a second delays the next (never overlapping), and a
// window ends when its last round does, so both sides are measured over the
// same wall time. Figures are medians over the windows; cost-ratio is the
// ratio of the medians. The benchmark's own /pods polling and event stream
// stop before phase B.
//
// Run it alone: go test -run '^$' -bench RealNode -benchtime 1x -v ./cmd/podlife
func BenchmarkRealNode(b *testing.B) {
	pods := rnDefaultPods
	if v := os.Getenv("PODLIFE_BENCH_PODS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("PODLIFE_BENCH_PODS=%q: want a positive number", v)
		}
		pods = n
	}
	runtime := os.Getenv("PODLIFE_BENCH_RUNTIME") // containerd (default) or cri-o
	if runtime == "" {
		runtime = "containerd"
	}
	crictl := testenv.Bin(b, "crictl")
	bin := buildPodlife(b)
	ctd := testenv.StartRuntime(b, runtime)
	rs := ctd.Runtime(b)
	k := testenv.StartKubelet(b, ctd, rnNode)

	// Pods: write every manifest, wait until the kubelet runs them all.
	begin := time.Now()
	for i := range pods {
		name := fmt.Sprintf("bench-%02d", i)
		// testenv's sleeper: a single long-running container, so every exit
		// the benchmark measures is one it caused.
		k.AddStaticPod(b, name, testenv.PodManifest(b, "sleeper", name, "bench"))
	}
	kc := &http.Client{Timeout: 5 * time.Second}
	for {
		list, err := rnKubeletPods(kc, k.ReadOnlyURL)
		running := 0
		for _, c := range list {
			if c.State.Running != nil {
				running++
			}
		}
		if err == nil && running == pods {
			break
		}
		if time.Since(begin) > rnStartLimit {
			b.Fatalf("only %d of %d pods running after %s (err %v): try fewer with PODLIFE_BENCH_PODS", running, pods, rnStartLimit, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	startup := time.Since(begin)

	// The agent, and its transition stream.
	server, agentPID := rnStartAgent(b, bin, ctd.CRIEndpoint(), k.ReadOnlyURL, k.PodsAPISocket())
	rnWaitServing(b, server, pods)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	tr := &rnTracker{scheme: runtime + "://"}
	watchErr := make(chan error, 1)
	connected := make(chan struct{})
	go func() { watchErr <- rnWatch(ctx, server, tr, connected) }()
	select {
	case <-connected:
	case err := <-watchErr:
		b.Fatalf("transition stream: %v", err)
	case <-time.After(10 * time.Second):
		b.Fatal("transition stream did not answer within 10s")
	}
	time.Sleep(3 * time.Second) // settle: first relists, first kubelet polls

	// Phase 0, idle: the agent's CPU with every pod running and nothing
	// changing, over rnIdle (a measurement window, not a wait).
	idleTicks, idleStart := rnCPUTicks(b, agentPID), time.Now()
	time.Sleep(rnIdle)
	idleCPU := (rnCPUTicks(b, agentPID) - idleTicks) / rnClkTck / time.Since(idleStart).Seconds() * 100
	idleRSS := rnStatusMiB(b, agentPID, "VmRSS")

	// Phase A: detection.
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() { rnPollKubelet(pollCtx, kc, k.ReadOnlyURL, tr); close(polled) }()
	eventsErr, podsAPIErr := make(chan error, 1), make(chan error, 1)
	go func() { eventsErr <- rnRuntimeEvents(pollCtx, rs, tr) }()
	go func() { podsAPIErr <- rnPodsAPIEvents(pollCtx, k.PodsAPISocket(), tr) }()
	for limit := time.Now().Add(10 * time.Second); tr.kubeletRunningCount() < pods; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(limit) {
			b.Fatalf("the kubelet shows %d of %d containers running", tr.kubeletRunningCount(), pods)
		}
	}
	next := 0
	detectKills := min(rnDetectKills, pods)
	for range detectKills {
		tick := time.Now()
		if err := rnKillNext(ctx, rs, pods, &next, tr); err != nil {
			b.Fatalf("detection phase: %v", err)
		}
		time.Sleep(time.Until(tick.Add(rnKillEvery)))
	}
	deadline := time.Now().Add(15 * time.Second)
	for !tr.allSeen() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stopPolling()
	<-polled
	if err := <-eventsErr; err != nil {
		b.Fatal(err)
	}
	if err := <-podsAPIErr; err != nil {
		b.Fatal(err)
	}
	var podlifeLat, kubeletLat, eventLat, podsAPILat, lead []float64
	missedPodlife, missedKubelet, maxHappenedSkew := 0, 0, time.Duration(0)
	kills := tr.snapshot()
	for _, kl := range kills {
		st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: kl.id})
		if err != nil || st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
			b.Fatalf("container %s of %s after its kill: state %v, err %v", kl.id, kl.pod, st.GetStatus().GetState(), err)
		}
		finished := time.Unix(0, st.GetStatus().GetFinishedAt())
		if kl.podlife.IsZero() {
			missedPodlife++
		}
		if kl.kubelet.IsZero() {
			missedKubelet++
		}
		if !kl.event.IsZero() {
			eventLat = append(eventLat, rnMs(kl.event.Sub(finished)))
		}
		if !kl.podsAPI.IsZero() {
			podsAPILat = append(podsAPILat, rnMs(kl.podsAPI.Sub(finished)))
		}
		if kl.podlife.IsZero() || kl.kubelet.IsZero() {
			continue
		}
		maxHappenedSkew = max(maxHappenedSkew, kl.happenedAt.Sub(finished).Abs())
		podlifeLat = append(podlifeLat, rnMs(kl.podlife.Sub(finished)))
		kubeletLat = append(kubeletLat, rnMs(kl.kubelet.Sub(finished)))
		lead = append(lead, rnMs(kl.kubelet.Sub(kl.podlife)))
	}
	if len(lead) == 0 {
		b.Fatalf("no exit seen by both podlife and the kubelet (missed: podlife %d, kubelet %d)", missedPodlife, missedKubelet)
	}

	// Phase B: cost, the kills going on.
	killCtx, stopKilling := context.WithCancel(ctx)
	killed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-killCtx.Done():
				killed <- nil
				return
			case <-time.After(rnKillEvery):
			}
			if err := rnKillNext(killCtx, rs, pods, &next, nil); err != nil && killCtx.Err() == nil {
				killed <- err
				return
			}
		}
	}()
	curl, _ := exec.LookPath("curl")
	var podlifeCPU, byHandCPU, ctdCPU, rssMiB, roundMs, walls []float64
	rounds, inspectErrs, inspectErr := 0, 0, "none"
	for range rnWindows {
		start, ticks0, ctdTicks0 := time.Now(), rnCPUTicks(b, agentPID), rnCPUTicks(b, ctd.DaemonPID())
		var cpu time.Duration
		for r := 0; time.Since(start) < rnWindow; r++ {
			time.Sleep(time.Until(start.Add(time.Duration(r) * time.Second)))
			if time.Since(start) >= rnWindow {
				break
			}
			t0 := time.Now()
			c, failed, err := rnByHandRound(ctx, crictl, ctd.CRIEndpoint(), k.ReadOnlyURL, curl)
			if err != nil {
				b.Fatalf("by-hand round: %v", err)
			}
			cpu += c
			if inspectErrs += len(failed); len(failed) > 0 {
				inspectErr = failed[0]
			}
			rounds++
			roundMs = append(roundMs, rnMs(time.Since(t0)))
		}
		wall := time.Since(start).Seconds() // >= rnWindow: the last round is let finish
		walls = append(walls, wall)
		podlifeCPU = append(podlifeCPU, (rnCPUTicks(b, agentPID)-ticks0)/rnClkTck/wall*100)
		byHandCPU = append(byHandCPU, cpu.Seconds()/wall*100)
		ctdCPU = append(ctdCPU, (rnCPUTicks(b, ctd.DaemonPID())-ctdTicks0)/rnClkTck/wall*100)
		rssMiB = append(rssMiB, rnStatusMiB(b, agentPID, "VmRSS"))
	}
	stopKilling()
	if err := <-killed; err != nil {
		b.Fatalf("cost phase: %v", err)
	}
	select {
	case err := <-watchErr:
		b.Fatalf("transition stream ended during the run: %v", err)
	default:
	}

	for range b.N { // everything above ran once; run with -benchtime 1x
	}
	pl50, pl99 := rnPct(podlifeLat, 50), rnPct(podlifeLat, 99)
	kl50, kl99 := rnPct(kubeletLat, 50), rnPct(kubeletLat, 99)
	lead50, ev50, ev99 := rnPct(lead, 50), rnPct(eventLat, 50), rnPct(eventLat, 99)
	pa50, pa99 := rnPct(podsAPILat, 50), rnPct(podsAPILat, 99)
	pcpu, hcpu, rss := rnPct(podlifeCPU, 50), rnPct(byHandCPU, 50), rnPct(rssMiB, 50)
	ratio := hcpu / pcpu
	b.ReportMetric(0, "ns/op")
	for unit, v := range map[string]float64{
		"pods": float64(pods), "samples": float64(len(lead)),
		"podlife-p50-ms": pl50, "podlife-p99-ms": pl99, "kubelet-p50-ms": kl50, "kubelet-p99-ms": kl99,
		"lead-p50-ms": lead50, "podlife-cpu-%": pcpu, "byhand-cpu-%": hcpu, "cost-ratio": ratio,
		"podlife-rss-MiB": rss, "podlife-idle-cpu-%": idleCPU, "ctd-event-p50-ms": ev50, "podsapi-p50-ms": pa50, "podsapi-p99-ms": pa99,
	} {
		b.ReportMetric(v, unit)
	}
	curlNote := "curl " + curl
	if curl == "" {
		curlNote = "no curl: in-process GET, its CPU not counted"
	}
	b.Logf(`real node on %s: %d static pods, all running %.1fs after their manifests were written
idle (every pod running, nothing changing, %s): podlife agent CPU %.2f %% of a core, RSS %.1f MiB
detection of container exits (SIGKILL of a container's process every %s; reference = its runtime FinishedAt)
  samples %d of %d exits (missed: podlife %d, kubelet %d); podlife happenedAt = CRI FinishedAt within %s
                           p50 ms     p99 ms
  runtime's CRI event    %8.1f   %8.1f   (floor for any CRI client: the event's CreatedAt; %d events)
  podlife watch stream   %8.1f   %8.1f
  kubelet Pods API       %8.1f   %8.1f   (its WatchPods MODIFIED, arrival; %d events)
  kubelet /pods          %8.1f   %8.1f   (poll sent every %s; a poll took %.1f ms median)
  lead kubelet - podlife %8.1f              (median of per-exit leads)
cost, %d windows of at least %s (median %.1fs: the last round finishes) with the kills going on; medians over windows
                          CPU %% of a core   RSS MiB
  podlife agent           %8.2f        %8.1f
  by hand                 %8.2f                 (%d rounds, median round %.0f ms; %s)
  cost ratio by hand / podlife: %.1fx
  per window: podlife CPU %% %v, by-hand CPU %% %v; runtime daemon CPU %% %v (context: both loads)
  crictl inspect failures: %d (last: %s)`,
		runtime, pods, startup.Seconds(), rnIdle, idleCPU, idleRSS, rnKillEvery,
		len(lead), len(kills), missedPodlife, missedKubelet, maxHappenedSkew,
		ev50, ev99, len(eventLat), pl50, pl99, pa50, pa99, len(podsAPILat), kl50, kl99, rnKubeletPoll, rnPct(tr.polls, 50), lead50,
		rnWindows, rnWindow, rnPct(walls, 50), pcpu, rss, hcpu, rounds, rnPct(roundMs, 50), curlNote, ratio,
		rnRound(podlifeCPU), rnRound(byHandCPU), rnRound(ctdCPU), inspectErrs, inspectErr)
}

// rnKill is one deliberate container exit and when each side saw it.
type rnKill struct {
	pod        string    // full pod name, bench-07-podlife-bench
	id         string    // CRI container ID
	restarts   int       // the kubelet's restartCount before the kill
	podlife    time.Time // the EXITED transition read from the stream
	happenedAt time.Time // its happenedAt (cross-check with CRI FinishedAt)
	kubelet    time.Time // sending time of the first /pods poll showing the change
	podsAPI    time.Time // arrival of the kubelet's first Pods API event showing it
	event      time.Time // containerd's CONTAINER_STOPPED event, its CreatedAt
}

// rnTracker holds the kills of phase A and the kubelet's latest /pods.
type rnTracker struct {
	scheme string // the runtime's container ID scheme, as the kubelet writes it
	mu     sync.Mutex
	kills  []*rnKill
	latest map[string]rnContainer
	polls  []float64 // /pods round trips, ms
}

func (t *rnTracker) add(k *rnKill) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.kills = append(t.kills, k)
}

// podlifeSaw records an EXITED runtime transition read at `at`.
func (t *rnTracker) podlifeSaw(pod, detail string, happened, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.kills {
		if k.pod == pod && k.podlife.IsZero() && strings.Contains(detail, k.id[:13]) {
			k.podlife, k.happenedAt = at, happened
		}
	}
}

// podsAPISaw records a kubelet Pods API watch event about pod, read at `at`.
func (t *rnTracker) podsAPISaw(pod string, c *corev1.ContainerStatus, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.kills {
		if k.pod == pod && k.podsAPI.IsZero() && (c.State.Running == nil || c.ContainerID != t.scheme+k.id || int(c.RestartCount) > k.restarts) {
			k.podsAPI = at
		}
	}
}

// runtimeSaw records containerd's stop event of a container.
func (t *rnTracker) runtimeSaw(id string, created time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.kills {
		if k.id == id && k.event.IsZero() {
			k.event = created
		}
	}
}

// kubeletSaw records a /pods poll sent at `sent` and answered at `done`.
func (t *rnTracker) kubeletSaw(pods map[string]rnContainer, sent, done time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latest = pods
	t.polls = append(t.polls, rnMs(done.Sub(sent)))
	for _, k := range t.kills {
		c, ok := pods[k.pod]
		if ok && k.kubelet.IsZero() && (c.State.Running == nil || c.ContainerID != t.scheme+k.id || c.RestartCount > k.restarts) {
			k.kubelet = sent
		}
	}
}

// kubeletRunning returns the kubelet's restart count of the pod's container
// when its last poll showed it running as container id.
func (t *rnTracker) kubeletRunning(pod, id string) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.latest[pod]
	return c.RestartCount, ok && c.State.Running != nil && c.ContainerID == t.scheme+id
}

// kubeletRunningCount is how many containers the last poll showed running.
func (t *rnTracker) kubeletRunningCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, c := range t.latest {
		if c.State.Running != nil {
			n++
		}
	}
	return n
}

func (t *rnTracker) allSeen() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.kills {
		if k.podlife.IsZero() || k.kubelet.IsZero() {
			return false
		}
	}
	return true
}

func (t *rnTracker) snapshot() []rnKill {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]rnKill, len(t.kills))
	for i, k := range t.kills {
		out[i] = *k
	}
	return out
}

// rnKillNext SIGKILLs the process of the next running container in the
// rotation over the pods. With a tracker it only takes a container the
// kubelet's last poll showed running, and records the kill before making it.
func rnKillNext(ctx context.Context, rs runtimeapi.RuntimeServiceClient, pods int, next *int, tr *rnTracker) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := rs.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}})
	if err != nil {
		return fmt.Errorf("list running containers: %w", err)
	}
	running := map[string]string{} // pod name -> container ID
	for _, c := range l.Containers {
		running[c.Labels["io.kubernetes.pod.name"]] = c.Id
	}
	for range pods {
		pod := fmt.Sprintf("bench-%02d-%s", *next, rnNode)
		*next = (*next + 1) % pods
		id, ok := running[pod]
		if !ok {
			continue
		}
		k := &rnKill{pod: pod, id: id}
		if tr != nil {
			if k.restarts, ok = tr.kubeletRunning(pod, id); !ok {
				continue
			}
			tr.add(k)
		}
		return rnKillContainer(cctx, rs, id)
	}
	return nil // nothing running just now; the next tick tries again
}

// rnKillContainer SIGKILLs a container's process, found through CRI's
// verbose status and checked to be the `sleep` the pod runs.
func rnKillContainer(ctx context.Context, rs runtimeapi.RuntimeServiceClient, id string) error {
	st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return fmt.Errorf("container status %s: %w", id, err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid <= 1 {
		return fmt.Errorf("container %s: no pid in verbose status (%v)", id, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", info.Pid))
	if err != nil || !bytes.HasPrefix(cmdline, []byte("sleep\x00")) {
		return fmt.Errorf("container %s: pid %d is not its sleep (%q, %v)", id, info.Pid, cmdline, err)
	}
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill pid %d of container %s: %w", info.Pid, id, err)
	}
	return nil
}

// rnContainer is the part of a kubelet /pods container status read here.
type rnContainer struct {
	Name         string `json:"name"`
	ContainerID  string `json:"containerID"`
	RestartCount int    `json:"restartCount"`
	State        struct {
		Running *struct{} `json:"running"`
	} `json:"state"`
}

// rnKubeletPods GETs the kubelet's /pods: pod name -> its container "app".
func rnKubeletPods(c *http.Client, url string) (map[string]rnContainer, error) {
	resp, err := c.Get(url + "/pods")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kubelet /pods: %s", resp.Status)
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Status struct {
				ContainerStatuses []rnContainer `json:"containerStatuses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("kubelet /pods: %w", err)
	}
	out := make(map[string]rnContainer, len(list.Items))
	for _, p := range list.Items {
		for _, c := range p.Status.ContainerStatuses {
			if c.Name == "app" {
				out[p.Metadata.Name] = c
			}
		}
	}
	return out, nil
}

// rnPollKubelet polls /pods every rnKubeletPoll until ctx ends.
func rnPollKubelet(ctx context.Context, c *http.Client, url string, tr *rnTracker) {
	for ctx.Err() == nil {
		sent := time.Now()
		if pods, err := rnKubeletPods(c, url); err == nil {
			tr.kubeletSaw(pods, sent, time.Now())
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(sent.Add(rnKubeletPoll))):
		}
	}
}

// rnPodsAPIEvents follows the kubelet's Pods API (WatchPods, Kubernetes
// 1.37) and records when each of its events about a bench pod arrives.
func rnPodsAPIEvents(ctx context.Context, socket string, tr *rnTracker) error {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return fmt.Errorf("kubelet Pods API: %w", err)
	}
	defer conn.Close()
	stream, err := podsv1alpha1.NewPodsClient(conn).WatchPods(ctx, &podsv1alpha1.WatchPodsRequest{})
	if err != nil {
		return fmt.Errorf("kubelet Pods API: %w", err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("kubelet Pods API: %w", err)
		}
		at := time.Now()
		if ev.GetType() != podsv1alpha1.EventType_MODIFIED {
			continue
		}
		var p corev1.Pod
		if err := p.Unmarshal(ev.GetPod()); err != nil {
			return fmt.Errorf("kubelet Pods API: %w", err)
		}
		for i := range p.Status.ContainerStatuses {
			if c := &p.Status.ContainerStatuses[i]; c.Name == "app" {
				tr.podsAPISaw(p.Name, c, at)
			}
		}
	}
}

// rnRuntimeEvents follows containerd's own CRI container events (the stream
// podlife reads too) and records when containerd published each stop.
func rnRuntimeEvents(ctx context.Context, rs runtimeapi.RuntimeServiceClient, tr *rnTracker) error {
	stream, err := rs.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return fmt.Errorf("containerd events: %w", err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("containerd events: %w", err)
		}
		if ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT {
			tr.runtimeSaw(ev.ContainerId, time.Unix(0, ev.CreatedAt))
		}
	}
}

// rnWatch reads podlife's transition stream and hands every runtime EXITED
// transition to the tracker; it closes connected once the stream is open.
func rnWatch(ctx context.Context, server string, tr *rnTracker, connected chan<- struct{}) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/v1/transitions?watch=true", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: %s", resp.Status)
	}
	close(connected)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		at := time.Now()
		var rec agent.Record
		if len(bytes.TrimSpace(sc.Bytes())) == 0 || json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if rec.Kind == lifecycle.TransitionContainerState && rec.Source == lifecycle.SourceRuntime && rec.To == string(lifecycle.RuntimeExited) {
			tr.podlifeSaw(rec.Pod, rec.Detail, rec.HappenedAt, at)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("watch stream ended: %v", sc.Err())
}

// rnByHandRound runs one by-hand check of the node and returns the CPU its
// processes used and the `crictl inspect` calls that failed (containers
// removed in between). Without curl the GET is made in-process (not counted).
func rnByHandRound(ctx context.Context, crictl, endpoint, kubeletURL, curl string) (time.Duration, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var cpu time.Duration
	run := func(name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if cmd.ProcessState != nil {
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil {
			return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	out, err := run(crictl, "--runtime-endpoint", endpoint, "ps", "-a", "-o", "json")
	if err != nil {
		return cpu, nil, err
	}
	var ps struct {
		Containers []struct {
			ID string `json:"id"`
		} `json:"containers"`
	}
	if err := json.Unmarshal(out, &ps); err != nil {
		return cpu, nil, fmt.Errorf("crictl ps output: %w", err)
	}
	var failed []string
	for _, c := range ps.Containers {
		if _, err := run(crictl, "--runtime-endpoint", endpoint, "inspect", c.ID); err != nil {
			if ctx.Err() != nil {
				return cpu, failed, err
			}
			failed = append(failed, err.Error())
		}
	}
	if curl != "" {
		_, err = run(curl, "-sf", kubeletURL+"/pods")
		return cpu, failed, err
	}
	resp, err := http.Get(kubeletURL + "/pods")
	if err != nil {
		return cpu, failed, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return cpu, failed, nil
}

// rnStartAgent starts the agent (CRI stream on, 1 s polls) on a loopback
// port it binds itself; Cleanup kills it. It returns its URL and PID.
func rnStartAgent(tb testing.TB, bin, criEndpoint, kubeletURL, podsAPISocket string) (string, int) {
	tb.Helper()
	logPath := filepath.Join(tb.TempDir(), "agent.log")
	tb.Cleanup(func() {
		if tb.Failed() {
			b, _ := os.ReadFile(logPath)
			tb.Logf("agent log tail:\n%s", testenv.Tail(string(b), 3000))
		}
	})
	ag := startAgent(tb, bin, logPath, "--node-name", rnNode, "--cri-endpoint", criEndpoint, "--cri-stream=true",
		"--kubelet-url", kubeletURL, "--kubelet-pods-api-socket", podsAPISocket, "--poll-interval", "1s", "--upstream", "off",
		"--stuck-threshold", "0", "--log-level", "error")
	return ag.URL, ag.Process.Pid
}

// rnWaitServing waits until the agent shows every bench pod Serving.
func rnWaitServing(tb testing.TB, server string, pods int) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	serving := 0
	for time.Now().Before(deadline) {
		serving = 0
		if resp, err := http.Get(server + "/api/v1/pods"); err == nil {
			var r agent.PodsResponse
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			for _, p := range r.Pods {
				if p.Namespace == rnNamespace && p.Stage == lifecycle.StageServing {
					serving++
				}
			}
		}
		if serving == pods {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	tb.Fatalf("agent shows %d of %d pods Serving after 60s", serving, pods)
}

// rnCPUTicks is utime+stime of a process, in clock ticks.
func rnCPUTicks(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("agent cpu: %v", err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return u + s
}

// rnStatusMiB is a kB field of /proc/PID/status (VmRSS, VmHWM) in MiB.
func rnStatusMiB(tb testing.TB, pid int, key string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("agent status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return v / 1024
		}
	}
	tb.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// rnMs is a duration in milliseconds.
func rnMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rnPct is the nearest-rank p-th percentile.
func rnPct(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

// rnRound formats figures to two decimals for the log.
func rnRound(xs []float64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return out
}
