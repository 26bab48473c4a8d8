package simnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Options shape the simulated node.
type Options struct {
	// Dir holds the CRI unix socket (required).
	Dir string
	// Script runs the demo timeline (every stage, outages), looping.
	Script bool
	// Pods extra steady serving pods of ContainersPerPod containers (load).
	Pods, ContainersPerPod int
	// ChurnPerSecond restarts that many load containers per second, for
	// ChurnFor (0: for ever).
	ChurnPerSecond float64
	ChurnFor       time.Duration
	// Tick is how often the simulation advances (default 100ms).
	Tick time.Duration
	// KubeletLag is how far the kubelet's view trails the runtime (default 1s).
	KubeletLag time.Duration
	// ReplacePerSecond deletes that many load pods per second and creates
	// each again under a new UID (a pod's churn, beside its containers').
	ReplacePerSecond float64
	// OutageEvery takes each source down for OutageFor once every
	// OutageEvery: the kubelet a third into the period, the runtime two
	// thirds (0: no outages but the script's).
	OutageEvery, OutageFor time.Duration
	// LogsDir, when set, is the load pods' log directory (the kubelet's
	// /var/log/pods): their containers name their log file (CRI logPath,
	// CONTAINER/ATTEMPT.log in the pod's NAMESPACE_NAME_UID directory), and
	// each restart writes the ended attempt's file, LogLines lines in the
	// CRI log format, for the crash black box to read.
	LogsDir string
	// PodsAPI serves the kubelet's Pods API (Kubernetes 1.37) on
	// Dir/pods-api.sock beside /pods; NoPodsHTTP leaves /pods out.
	PodsAPI, NoPodsHTTP bool
}

// Node is a running simulated node.
type Node struct {
	CRIEndpoint string // unix:///.../cri.sock
	KubeletURL  string // http://127.0.0.1:PORT
	// PodsAPISocket is the Pods API's socket path ("" unless Options.PodsAPI).
	PodsAPISocket string

	opts   Options
	log    *slog.Logger
	start  time.Time
	sock   string
	kaddr  string
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	runtime     []simPod                               // now
	demo        []simPod                               // the scripted pods, now
	load        []simPod                               // the load pods (changed copy-on-write)
	applied     int                                    // churn restarts applied so far
	replaced    int                                    // load pods replaced so far
	gen         uint64                                 // grows when the runtime's state changed
	renderedGen uint64                                 // the generation /pods was rendered from
	kubelet     []byte                                 // /pods as of now - lag
	statuses    []*runtimeapi.ContainerStatus          // the runtime's containers as of gen
	byID        map[string]*runtimeapi.ContainerStatus // index of statuses
	statusGen   uint64
	history     []snapshotAt
	grpcSrv     *grpc.Server
	httpSrv     *http.Server
	runtimeOff  bool
	kubeletOff  bool
	streams     map[chan *runtimeapi.ContainerEventResponse]struct{}
	forced      map[string]bool // outages set by SetRuntimeDown/SetKubeletDown
	podsAPI     *podsAPI        // nil unless Options.PodsAPI
}

type snapshotAt struct {
	at   time.Time
	gen  uint64
	pods []simPod
}

// Start starts the simulated node's servers and its clock.
func Start(ctx context.Context, opts Options, log *slog.Logger) (*Node, error) {
	if opts.Dir == "" {
		return nil, errors.New("simnode: Dir is required")
	}
	if opts.ContainersPerPod <= 0 {
		opts.ContainersPerPod = 4
	}
	if opts.Tick <= 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.KubeletLag <= 0 {
		opts.KubeletLag = time.Second
	}
	n := &Node{opts: opts, log: log, start: time.Now(), sock: filepath.Join(opts.Dir, "cri.sock"),
		streams: map[chan *runtimeapi.ContainerEventResponse]struct{}{}, forced: map[string]bool{}, done: make(chan struct{})}
	n.CRIEndpoint = "unix://" + n.sock
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("simnode kubelet listener: %w", err)
	}
	n.kaddr = l.Addr().String()
	n.KubeletURL = "http://" + n.kaddr
	if opts.PodsAPI {
		n.PodsAPISocket = filepath.Join(opts.Dir, "pods-api.sock")
		n.podsAPI = newPodsAPI(n.PodsAPISocket)
		if err := n.podsAPI.serve(true); err != nil {
			return nil, err
		}
	}
	n.step(time.Now())
	n.startHTTP(l)
	if err := n.startGRPC(); err != nil {
		return nil, err
	}
	ctx, n.cancel = context.WithCancel(ctx)
	go n.loop(ctx)
	return n, nil
}

// Close stops the servers.
func (n *Node) Close() error {
	n.cancel()
	<-n.done
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.grpcSrv != nil {
		n.grpcSrv.Stop()
	}
	if n.httpSrv != nil {
		n.httpSrv.Close()
	}
	if n.podsAPI != nil {
		n.podsAPI.serve(false)
	}
	return nil
}

// SetRuntimeDown closes (true) or reopens (false) the CRI socket.
func (n *Node) SetRuntimeDown(down bool) { n.mu.Lock(); n.forced["runtime"] = down; n.mu.Unlock() }

// SetKubeletDown closes (true) or reopens (false) the /pods listener.
func (n *Node) SetKubeletDown(down bool) { n.mu.Lock(); n.forced["kubelet"] = down; n.mu.Unlock() }

func (n *Node) loop(ctx context.Context) {
	defer close(n.done)
	t := time.NewTicker(n.opts.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.step(now)
		}
	}
}

// step advances the simulation to now: runtime state, lagged kubelet state,
// events for the changes, and outages.
func (n *Node) step(now time.Time) {
	elapsed := now.Sub(n.start)
	var demo []simPod
	var inLoop time.Duration
	if n.opts.Script {
		loops := elapsed / Period
		inLoop = elapsed - loops*Period
		demo = demoPods(n.start.Add(loops*Period), inLoop)
	}

	n.mu.Lock()
	events := n.churn(now, elapsed)
	pods := append(demo, n.load...)
	prevDemo := n.demo
	n.demo = demo
	n.runtime = pods
	if len(events) > 0 || n.opts.Script || n.gen == 0 {
		n.gen++
	}
	// The runtime's events go out as its changes happen, before the
	// kubelet's view (which trails it) is rendered: a restart's detection
	// latency is the agent's, not this rendering's.
	events = append(diffEvents(prevDemo, demo), events...)
	for ch := range n.streams {
		for _, ev := range events {
			select {
			case ch <- ev:
			default:
			}
		}
	}
	n.renderKubelet(now, pods)
	wantRuntimeOff := n.forced["runtime"] || (n.opts.Script && inWindow(inLoop, runtimeOutage))
	wantKubeletOff := n.forced["kubelet"] || (n.opts.Script && inWindow(inLoop, kubeletOutage))
	if e := n.opts.OutageEvery; e > 0 {
		in := elapsed % e
		wantKubeletOff = wantKubeletOff || inWindow(in, [2]time.Duration{e / 3, e/3 + n.opts.OutageFor})
		wantRuntimeOff = wantRuntimeOff || inWindow(in, [2]time.Duration{2 * e / 3, 2*e/3 + n.opts.OutageFor})
	}
	n.mu.Unlock()
	n.setRuntime(wantRuntimeOff)
	n.setKubelet(wantKubeletOff)
}

// churn replaces and restarts the load pods due by now (each happening now)
// and returns their CRI events. n.mu is held.
func (n *Node) churn(now time.Time, elapsed time.Duration) []*runtimeapi.ContainerEventResponse {
	if n.load == nil {
		n.load = loadPods(n.start, n.opts.Pods, n.opts.ContainersPerPod, 0)
		for i := range n.load {
			n.load[i].logs = n.opts.LogsDir != ""
		}
	}
	var events []*runtimeapi.ContainerEventResponse
	total := n.opts.Pods * n.opts.ContainersPerPod
	churned := elapsed
	if n.opts.ChurnFor > 0 {
		churned = min(churned, n.opts.ChurnFor)
	}
	target := int(churned.Seconds() * n.opts.ChurnPerSecond)
	replace := int(elapsed.Seconds() * n.opts.ReplacePerSecond)
	if total > 0 && (n.applied < target || n.replaced < replace) {
		n.load = append([]simPod(nil), n.load...) // earlier snapshots keep their pods
	}
	for ; total > 0 && n.replaced < replace; n.replaced++ {
		idx := n.replaced % n.opts.Pods
		old := &n.load[idx]
		events = append(events, deletedEvents(old)...)
		p := loadPod(now, idx, n.opts.ContainersPerPod)
		p.uid = fmt.Sprintf("load-%04d-%d", idx, n.replaced/n.opts.Pods+1)
		p.logs = n.opts.LogsDir != ""
		n.load[idx] = p
		for k := range p.containers {
			events = append(events, containerEvents(&n.load[idx], &n.load[idx].containers[k])...)
		}
	}
	for ; total > 0 && n.applied < target; n.applied++ {
		idx := n.applied % total
		p := &n.load[idx/n.opts.ContainersPerPod]
		p.containers = append([]simContainer(nil), p.containers...) // copy on write: readers keep the old one
		c := &p.containers[idx%n.opts.ContainersPerPod]
		c.lastExit, c.lastReason, c.lastStarted, c.lastFinished = 1, "Error", c.started, now
		if p.logs {
			n.writeLog(p, c, now)
		}
		c.attempt++
		c.started = now
		events = append(events, containerEvents(p, c)...)
	}
	return events
}

// renderKubelet records the runtime's pods at now and renders the kubelet's
// view of them KubeletLag behind (/pods, and the Pods API), only when that
// view moved. n.mu is held.
func (n *Node) renderKubelet(now time.Time, pods []simPod) {
	n.history = append(n.history, snapshotAt{now, n.gen, pods})
	lagged := n.history[0]
	for len(n.history) > 1 && n.history[1].at.Before(now.Add(-n.opts.KubeletLag)) {
		n.history = n.history[1:]
		lagged = n.history[0]
	}
	if lagged.gen == n.renderedGen {
		return
	}
	l := renderPodList(lagged.pods)
	n.kubelet, _ = json.Marshal(l)
	n.renderedGen = lagged.gen
	if n.podsAPI != nil {
		if err := n.podsAPI.update(l); err != nil {
			n.log.Error("simnode: Pods API", "err", err)
		}
	}
}

// containerEvents are the CRI events of a restart: the old attempt stopped,
// the new one started.
func containerEvents(p *simPod, c *simContainer) []*runtimeapi.ContainerEventResponse {
	one := []simPod{{ns: p.ns, name: p.name, uid: p.uid, created: p.created, containers: []simContainer{*c}, logs: p.logs}}
	sts := criContainers(one)
	psb := &runtimeapi.PodSandboxStatus{Id: sandboxID(p), State: runtimeapi.PodSandboxState_SANDBOX_READY,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.name, Namespace: p.ns, Uid: p.uid}, Labels: labels(p)}
	var out []*runtimeapi.ContainerEventResponse
	for _, st := range sts {
		typ := runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			typ = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
		}
		out = append(out, &runtimeapi.ContainerEventResponse{ContainerId: st.Id, ContainerEventType: typ,
			CreatedAt: time.Now().UnixNano(), PodSandboxStatus: psb, ContainersStatuses: []*runtimeapi.ContainerStatus{st}})
	}
	return out
}

// deletedEvents are the CRI events of a pod's removal: every container
// record it has (the current attempt and the last exited one), then its
// sandbox, deleted.
func deletedEvents(p *simPod) []*runtimeapi.ContainerEventResponse {
	psb := &runtimeapi.PodSandboxStatus{Id: sandboxID(p), State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY,
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.name, Namespace: p.ns, Uid: p.uid}, Labels: labels(p)}
	var out []*runtimeapi.ContainerEventResponse
	for _, st := range criContainers([]simPod{*p}) {
		out = append(out, &runtimeapi.ContainerEventResponse{ContainerId: st.Id, PodSandboxStatus: psb,
			ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, CreatedAt: time.Now().UnixNano()})
	}
	return append(out, &runtimeapi.ContainerEventResponse{ContainerId: psb.Id, PodSandboxStatus: psb,
		ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, CreatedAt: time.Now().UnixNano()})
}

// containerStatuses returns the runtime's containers and an index by ID,
// rendered once per change of the simulation.
func (n *Node) containerStatuses() ([]*runtimeapi.ContainerStatus, map[string]*runtimeapi.ContainerStatus) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.byID == nil || n.statusGen != n.gen {
		n.statuses = criContainers(n.runtime)
		n.byID = make(map[string]*runtimeapi.ContainerStatus, len(n.statuses))
		for _, st := range n.statuses {
			n.byID[st.Id] = st
		}
		n.statusGen = n.gen
	}
	return n.statuses, n.byID
}

func (n *Node) setRuntime(off bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if off == n.runtimeOff {
		return
	}
	n.runtimeOff = off
	if off {
		n.log.Info("simnode: container runtime outage begins")
		n.grpcSrv.Stop()
		n.grpcSrv = nil
		os.Remove(n.sock)
		return
	}
	n.log.Info("simnode: container runtime back")
	n.mu.Unlock()
	err := n.startGRPC()
	n.mu.Lock()
	if err != nil {
		n.log.Error("simnode: restart CRI server", "err", err)
	}
}

func (n *Node) setKubelet(off bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if off == n.kubeletOff {
		return
	}
	n.kubeletOff = off
	if n.podsAPI != nil {
		if err := n.podsAPI.serve(!off); err != nil {
			n.log.Error("simnode: Pods API", "err", err)
		}
	}
	if off {
		n.log.Info("simnode: kubelet outage begins")
		n.httpSrv.Close()
		n.httpSrv = nil
		return
	}
	n.log.Info("simnode: kubelet back")
	l, err := net.Listen("tcp", n.kaddr)
	if err != nil {
		n.log.Error("simnode: reopen kubelet port", "err", err)
		return
	}
	n.mu.Unlock()
	n.startHTTP(l)
	n.mu.Lock()
}

func (n *Node) startHTTP(l net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods", func(w http.ResponseWriter, _ *http.Request) {
		if n.opts.NoPodsHTTP {
			http.NotFound(w, nil)
			return
		}
		n.mu.Lock()
		body := n.kubelet
		n.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	n.mu.Lock()
	n.httpSrv = srv
	n.mu.Unlock()
	go srv.Serve(l)
}

func (n *Node) startGRPC() error {
	os.Remove(n.sock)
	l, err := net.Listen("unix", n.sock)
	if err != nil {
		return fmt.Errorf("simnode CRI socket: %w", err)
	}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, &criServer{n: n})
	n.mu.Lock()
	n.grpcSrv = g
	n.mu.Unlock()
	go g.Serve(l)
	return nil
}

// ids of a container attempt and a pod sandbox.
func containerID(p *simPod, c *simContainer, attempt int) string {
	return fmt.Sprintf("%s-%s-%d", p.uid, c.name, attempt)
}
func sandboxID(p *simPod) string { return "sb-" + p.uid }

func labels(p *simPod) map[string]string {
	return map[string]string{"io.kubernetes.pod.name": p.name, "io.kubernetes.pod.namespace": p.ns, "io.kubernetes.pod.uid": p.uid}
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// criContainers renders the runtime's containers: every attempt's record
// (the kubelet keeps the last exited one), the current one last.
func criContainers(pods []simPod) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for i := range pods {
		p := &pods[i]
		for j := range p.containers {
			c := &p.containers[j]
			if c.state == "none" {
				continue
			}
			l := labels(p)
			l["io.kubernetes.container.name"] = c.name
			md := &runtimeapi.ContainerMetadata{Name: c.name, Attempt: uint32(c.attempt)}
			st := &runtimeapi.ContainerStatus{Id: containerID(p, c, c.attempt), Metadata: md, Labels: l,
				Image: &runtimeapi.ImageSpec{Image: c.image}, ImageRef: "sha256:demo", CreatedAt: nanos(c.started) - 1e6,
				StartedAt: nanos(c.started)}
			if p.logs {
				st.LogPath = logPath(c, c.attempt)
			}
			switch c.state {
			case "running":
				st.State = runtimeapi.ContainerState_CONTAINER_RUNNING
			case "exited":
				st.State, st.ExitCode, st.Reason, st.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, c.exit, c.reason, nanos(c.finished)
			default:
				st.State = runtimeapi.ContainerState_CONTAINER_CREATED
			}
			if c.attempt > 0 && c.state == "running" && !c.lastFinished.IsZero() {
				prev := &runtimeapi.ContainerStatus{Id: containerID(p, c, c.attempt-1), Labels: l, Image: st.Image, ImageRef: st.ImageRef,
					Metadata: &runtimeapi.ContainerMetadata{Name: c.name, Attempt: uint32(c.attempt - 1)},
					State:    runtimeapi.ContainerState_CONTAINER_EXITED, ExitCode: c.lastExit, Reason: c.lastReason,
					CreatedAt: nanos(c.lastStarted) - 1e6, StartedAt: nanos(c.lastStarted), FinishedAt: nanos(c.lastFinished)}
				if p.logs {
					prev.LogPath = logPath(c, c.attempt-1)
				}
				out = append(out, prev)
			}
			out = append(out, st)
		}
	}
	return out
}

// logPath is the CRI logPath of c's attempt: relative to its pod's log
// directory, as the kubelet names it.
func logPath(c *simContainer, attempt int) string {
	return filepath.Join(c.name, strconv.Itoa(attempt)+".log")
}

// simLogLines is how many lines each simulated attempt writes.
const simLogLines = 20

// writeLog writes the log file of c's attempt that ends at now, in the CRI
// log format (a failure is logged: the black box then records why it has no
// lines). n.mu is held.
func (n *Node) writeLog(p *simPod, c *simContainer, now time.Time) {
	path := filepath.Join(n.opts.LogsDir, p.ns+"_"+p.name+"_"+p.uid, logPath(c, c.attempt))
	var b []byte
	for i := range simLogLines {
		at := c.started.Add(time.Duration(i) * time.Millisecond).UTC().Format(time.RFC3339Nano)
		b = fmt.Appendf(b, "%s stdout F %s/%s attempt %d line %d: simulated work, then an error at the end\n", at, p.name, c.name, c.attempt, i)
	}
	b = fmt.Appendf(b, "%s stderr F %s/%s attempt %d: exiting with status 1\n", now.UTC().Format(time.RFC3339Nano), p.name, c.name, c.attempt)
	err := os.MkdirAll(filepath.Dir(path), 0o755)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		n.log.Warn("simnode: writing a container log", "path", path, "err", err)
	}
}

// diffEvents turns runtime changes into CRI container events.
func diffEvents(prev, cur []simPod) []*runtimeapi.ContainerEventResponse {
	old := map[string]runtimeapi.ContainerState{}
	for _, s := range criContainers(prev) {
		old[s.Id] = s.State
	}
	var out []*runtimeapi.ContainerEventResponse
	sbOf := map[string]*simPod{}
	for i := range cur {
		sbOf[cur[i].uid] = &cur[i]
	}
	for _, s := range criContainers(cur) {
		was, ok := old[s.Id]
		if ok && was == s.State {
			continue
		}
		typ := runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT
		switch s.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			typ = runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			typ = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
		}
		var psb *runtimeapi.PodSandboxStatus
		if p := sbOf[s.Labels["io.kubernetes.pod.uid"]]; p != nil {
			psb = &runtimeapi.PodSandboxStatus{Id: sandboxID(p), State: runtimeapi.PodSandboxState_SANDBOX_READY,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: p.name, Namespace: p.ns, Uid: p.uid}, Labels: labels(p)}
		}
		out = append(out, &runtimeapi.ContainerEventResponse{ContainerId: s.Id, ContainerEventType: typ,
			CreatedAt: time.Now().UnixNano(), PodSandboxStatus: psb, ContainersStatuses: []*runtimeapi.ContainerStatus{s}})
	}
	return out
}

// renderPodList renders the kubelet's /pods answer as the kubelet would.
func renderPodList(pods []simPod) *corev1.PodList {
	l := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: make([]corev1.Pod, 0, len(pods))}
	for i := range pods {
		p := &pods[i]
		created := metav1.NewTime(p.created)
		pod := corev1.Pod{
			TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: p.ns, UID: types.UID(p.uid), CreationTimestamp: created},
			Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicy(p.restartPolicy), NodeName: "podlife-demo"},
			Status: corev1.PodStatus{Phase: corev1.PodPhase(p.phase), Reason: p.reason, Message: p.msg, StartTime: &created,
				HostIP: "127.0.0.1"},
		}
		if p.deleting {
			del := metav1.NewTime(p.created.Add(20 * time.Second))
			pod.DeletionTimestamp = &del
		}
		initDone, allReady := true, true
		for j := range p.containers {
			c := &p.containers[j]
			st := corev1.ContainerStatus{Name: c.name, Image: c.image, RestartCount: int32(c.attempt), Ready: c.ready}
			if c.state != "none" {
				st.ContainerID = RuntimeName + "://" + containerID(p, c, c.attempt)
				st.ImageID = "localhost/podlife/demo@sha256:demo"
			}
			switch {
			case c.waiting != "":
				st.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waiting}
			case c.state == "running":
				st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.started)}
			case c.state == "exited":
				st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: c.exit, Reason: c.reason,
					StartedAt: metav1.NewTime(c.started), FinishedAt: metav1.NewTime(c.finished), ContainerID: st.ContainerID}
			}
			if !c.lastFinished.IsZero() {
				st.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: c.lastExit, Reason: c.lastReason,
					StartedAt: metav1.NewTime(c.lastStarted), FinishedAt: metav1.NewTime(c.lastFinished)}
			}
			spec := corev1.Container{Name: c.name, Image: c.image}
			switch c.kind {
			case "init", "sidecar":
				if c.kind == "sidecar" {
					always := corev1.ContainerRestartPolicyAlways
					spec.RestartPolicy = &always
					initDone = initDone && c.ready
				} else {
					initDone = initDone && c.state == "exited" && c.exit == 0
				}
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, spec)
				pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, st)
			default:
				allReady = allReady && c.ready
				pod.Spec.Containers = append(pod.Spec.Containers, spec)
				pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, st)
			}
		}
		cond := func(t corev1.PodConditionType, ok bool, reason string) corev1.PodCondition {
			c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: created}
			if !ok {
				c.Status, c.Reason = corev1.ConditionFalse, reason
			}
			return c
		}
		ready := allReady && initDone && p.phase == "Running"
		pod.Status.Conditions = []corev1.PodCondition{
			cond(corev1.PodScheduled, true, ""),
			cond(corev1.PodInitialized, initDone, "ContainersNotInitialized"),
			cond(corev1.ContainersReady, ready, "ContainersNotReady"),
			cond(corev1.PodReady, ready, "ContainersNotReady"),
		}
		l.Items = append(l.Items, pod)
	}
	return l
}
