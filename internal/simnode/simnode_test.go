package simnode

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/cri/crilog"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// correlateAt renders the simulation at d through the real decoders and the
// lifecycle model, as the agent would see it.
func correlateAt(t *testing.T, base time.Time, d time.Duration) lifecycle.Snapshot {
	t.Helper()
	pods := demoPods(base, d)
	body, _ := json.Marshal(renderPodList(pods))
	kp, err := kubelet.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	var cs []*lifecycle.Container
	sbs := map[string]*lifecycle.Sandbox{}
	for i := range pods {
		p := &pods[i]
		sb := cri.ConvertSandbox(&runtimeapi.PodSandbox{Id: sandboxID(p), Labels: labels(p), State: runtimeapi.PodSandboxState_SANDBOX_READY,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: p.name, Namespace: p.ns, Uid: p.uid}})
		sbs[sb.ID] = &sb
	}
	var sandboxes []lifecycle.Sandbox
	for _, sb := range sbs {
		sandboxes = append(sandboxes, *sb)
	}
	for _, st := range criContainers(pods) {
		c := cri.ContainerFromStatus("sb-"+st.Labels["io.kubernetes.pod.uid"], st, sbs)
		cs = append(cs, &c)
	}
	now := base.Add(d)
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: now}
	rt, kl := up, up
	if inWindow(d, kubeletOutage) {
		kl = lifecycle.SourceHealth{Configured: true, LastSuccess: now.Add(-time.Minute), LastError: "connection refused"}
	}
	if inWindow(d, runtimeOutage) {
		rt = lifecycle.SourceHealth{Configured: true, LastSuccess: now.Add(-time.Minute), LastError: "connection refused"}
	}
	return lifecycle.Correlate(lifecycle.Input{Node: "sim", Now: now, Pods: kp, Kubelet: kl, Sandboxes: sandboxes, Containers: cs, Runtime: rt})
}

// The demo timeline walks pods through every stage and every reason the
// reference model names.
func TestTimelineReachesEveryStage(t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	stages := map[lifecycle.Stage]bool{}
	reasons := map[string]bool{}
	causes := map[lifecycle.Cause]bool{}
	for d := time.Duration(0); d < Period; d += 250 * time.Millisecond {
		s := correlateAt(t, base, d)
		for _, p := range s.Pods {
			stages[p.Stage] = true
			causes[p.UnknownCause] = true
			for _, c := range p.Containers {
				reasons[c.Reason] = true
				if c.LastState != nil {
					reasons[c.LastState.Reason] = true
				}
			}
			if p.Terminating {
				reasons["Terminating"] = true
			}
			reasons[p.Reason] = true
		}
	}
	for _, st := range lifecycle.Stages {
		if !stages[st] {
			t.Errorf("stage %s never reached", st)
		}
	}
	for _, r := range []string{"PodInitializing", "CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
		"OOMKilled", "Completed", "Error", "Evicted", "Terminating"} {
		if !reasons[r] {
			t.Errorf("reason %s never shown", r)
		}
	}
	for _, c := range []lifecycle.Cause{lifecycle.CauseKubeletUnreachable, lifecycle.CauseRuntimeUnreachable} {
		if !causes[c] {
			t.Errorf("cause %s never shown", c)
		}
	}
}

// startWithClient starts a simulated node, stopped when the test ends, and
// a CRI client of its runtime.
func startWithClient(ctx context.Context, t *testing.T, opts Options) (*Node, runtimeapi.RuntimeServiceClient) {
	t.Helper()
	n, err := Start(ctx, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	conn, err := grpc.NewClient(n.CRIEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return n, runtimeapi.NewRuntimeServiceClient(conn)
}

// The servers speak real CRI and serve a real PodList; outages refuse.
func TestServers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, rs := startWithClient(ctx, t, Options{Dir: t.TempDir(), Script: true, Pods: 10})
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	l, err := rs.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	if err != nil || len(l.Containers) < 40 {
		t.Fatalf("ListContainers: %v, %d containers", err, len(l.GetContainers()))
	}
	resp, err := http.Get(n.KubeletURL + "/pods")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pods, err := kubelet.Decode(body)
	if err != nil || len(pods) < 10 {
		t.Fatalf("/pods: %v, %d pods", err, len(pods))
	}
	// An outage takes effect on the simulation's next tick: wait for it (a
	// loaded machine may be slow to tick), then for the recovery.
	answers := func() bool {
		resp, err := http.Get(n.KubeletURL + "/pods")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
	n.SetKubeletDown(true)
	testenv.Eventually(t, "/pods to refuse during a kubelet outage", 10*time.Second, func() bool { return !answers() })
	n.SetKubeletDown(false)
	testenv.Eventually(t, "the kubelet to come back", 10*time.Second, answers)
}

// TestPodsAPI: the simulated kubelet's Pods API serves the same pods as its
// /pods, which podlife's kubelet source follows in pods-api mode; a kubelet
// outage closes the socket (the source goes down) and the watch resumes after.
func TestPodsAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Start(ctx, Options{Dir: t.TempDir(), Script: true, Pods: 10, PodsAPI: true}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	src, err := kubelet.New(kubelet.Config{URL: n.KubeletURL, PodsAPISocket: n.PodsAPISocket, LinkInterval: -1,
		PollInterval: 50 * time.Millisecond, Timeout: 2 * time.Second}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); src.Run(sctx) }()
	defer func() { stop(); <-done }()
	wait := func(what string, ok func(kubelet.State) bool) kubelet.State {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; { // a hang guard
			if st := src.State(); ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, src.State().Health)
			}
			select {
			case <-src.Updates():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	st := wait("pods-api mode", func(st kubelet.State) bool { return st.Health.Mode == kubelet.ModePodsAPI && len(st.Pods) > 0 })
	n.mu.Lock()
	polled, err := kubelet.Decode(n.kubelet)
	n.mu.Unlock()
	if err != nil || len(polled) != len(st.Pods) {
		t.Fatalf("/pods: %v, %d pods; Pods API %d", err, len(polled), len(st.Pods))
	}
	n.SetKubeletDown(true)
	down := wait("down during the kubelet outage", func(st kubelet.State) bool { return !st.Health.Up })
	t.Logf("outage: %s", down.Health.LastError)
	n.SetKubeletDown(false)
	wait("the watch back", func(st kubelet.State) bool {
		return st.Health.Up && st.Health.Mode == kubelet.ModePodsAPI && st.Health.LastSuccess.After(down.Health.LastSuccess)
	})
}

// BenchmarkListContainers500 is the simulator's cost to answer one relist at
// 500 pods × 4 containers.
func BenchmarkListContainers500(b *testing.B) {
	s := &criServer{n: &Node{runtime: loadPods(time.Now(), 500, 4, 0)}}
	b.ReportAllocs()
	for b.Loop() {
		s.ListContainers(context.Background(), &runtimeapi.ListContainersRequest{})
	}
}

// Outages every period take the kubelet down a third into it and the runtime
// two thirds, each for OutageFor, and bring them back; replaced pods come
// back under new UIDs, their old containers and sandbox deleted on the event
// stream.
func TestOutagesAndReplacement(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const every, down = 3 * time.Second, 600 * time.Millisecond
	n, rs := startWithClient(ctx, t, Options{Dir: t.TempDir(), Pods: 5, ReplacePerSecond: 10, OutageEvery: every, OutageFor: down,
		Tick: 20 * time.Millisecond})
	stream, err := rs.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	deleted := make(chan string, 1000)
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				return
			}
			if ev.ContainerEventType == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
				deleted <- ev.ContainerId
			}
		}
	}()
	uids := func() map[string]bool {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second) // a hang guard, not a speed limit
		defer ccancel()
		l, err := rs.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, sb := range l.Items {
			out[sb.Metadata.Uid] = true
		}
		return out
	}
	first := uids()
	// Sample both sources through one period (from a moment into it).
	kubeletUp := func() bool {
		resp, err := http.Get(n.KubeletURL + "/pods")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}
	runtimeUp := func() bool { _, err := os.Stat(n.sock); return err == nil }
	type sample struct {
		at          time.Duration
		kubelet, rt bool
	}
	var samples []sample
	for start := time.Now(); time.Since(start) < every+time.Second; time.Sleep(20 * time.Millisecond) {
		samples = append(samples, sample{time.Since(n.start) % every, kubeletUp(), runtimeUp()})
	}
	var kubeletDown, runtimeDown int
	for _, s := range samples {
		if !s.kubelet {
			kubeletDown++
			// a tick's and a request's slack around the window (at is read before the request, which may be slow on a loaded machine)
			if s.at < every/3-400*time.Millisecond || s.at > every/3+down+300*time.Millisecond {
				t.Errorf("kubelet down at %s into the period, outside its window", s.at)
			}
		}
		if !s.rt {
			runtimeDown++
			if s.at < 2*every/3-400*time.Millisecond || s.at > 2*every/3+down+300*time.Millisecond {
				t.Errorf("runtime down at %s into the period, outside its window", s.at)
			}
		}
	}
	// The sampling may end inside the next period's outage: that both
	// come back is waited for below, not read off the last sample.
	if kubeletDown == 0 || runtimeDown == 0 {
		t.Fatalf("over a period: kubelet down in %d samples, runtime in %d", kubeletDown, runtimeDown)
	}
	for deadline := time.Now().Add(10 * time.Second); !kubeletUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the kubelet did not come back")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !runtimeUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the runtime did not come back")
		}
	}
	later := uids()
	if len(later) != 5 || len(first) != 5 {
		t.Fatalf("pods: %d, then %d; want 5", len(first), len(later))
	}
	for uid := range later {
		if first[uid] {
			t.Errorf("pod %s not replaced after %s at 10 replacements/s", uid, every)
		}
	}
	if len(deleted) == 0 {
		t.Fatal("no CONTAINER_DELETED event for the replaced pods")
	}
	t.Logf("kubelet down in %d samples, runtime in %d; %d deletions streamed", kubeletDown, runtimeDown, len(deleted))
}

// With LogsDir a restart writes the ended attempt's log file, in the CRI log
// format, at the logPath its exited record names (relative, as the
// kubelet's, in the pod's NAMESPACE_NAME_UID directory).
func TestLogsOfEndedAttempts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := t.TempDir()
	_, rs := startWithClient(ctx, t, Options{Dir: t.TempDir(), Pods: 2, ChurnPerSecond: 50, LogsDir: logs, Tick: 20 * time.Millisecond})
	var exited *runtimeapi.Container
	testenv.Eventually(t, "an exited attempt", 30*time.Second, func() bool {
		l, err := rs.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range l.Containers {
			if c.State == runtimeapi.ContainerState_CONTAINER_EXITED {
				exited = c
				return true
			}
		}
		return false
	})
	st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: exited.Id})
	if err != nil {
		t.Fatal(err)
	}
	s := st.Status
	dir := s.Labels["io.kubernetes.pod.namespace"] + "_" + s.Labels["io.kubernetes.pod.name"] + "_" + s.Labels["io.kubernetes.pod.uid"]
	res, err := crilog.Tail(filepath.Join(logs, dir, s.LogPath), crilog.Limits{Lines: 100, Bytes: 1 << 20})
	if err != nil {
		t.Fatalf("the exited attempt's log %s: %v", s.LogPath, err)
	}
	last := res.Lines[len(res.Lines)-1]
	if len(res.Lines) != simLogLines+1 || last.Stream != "stderr" || !strings.HasSuffix(string(last.Text), "exiting with status 1") {
		t.Errorf("log of %s: %d lines, last %s %q", s.LogPath, len(res.Lines), last.Stream, last.Text)
	}
}
