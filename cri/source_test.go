package cri

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeRuntime is an in-process CRI server for faults a real runtime cannot
// be made to show. GetContainerEvents is left Unimplemented.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	mu       sync.Mutex
	node     *fixtures.Node
	delay    time.Duration
	statuses int
	lists    int           // ListContainers calls
	listed   chan struct{} // if set, told of every ListContainers call
	down     bool          // every call fails Unavailable
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, status.Error(codes.Unavailable, "runtime is down")
	}
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, status.Error(codes.Unavailable, "runtime is down")
	}
	time.Sleep(f.delay)
	return proto.CloneOf(f.node.Sandboxes), nil
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listed != nil {
		select {
		case f.listed <- struct{}{}:
		default:
		}
	}
	return proto.CloneOf(f.node.Containers), nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses++
	for _, s := range f.node.Statuses {
		if s.Status.Id == r.ContainerId {
			return proto.CloneOf(s), nil
		}
	}
	return nil, fmt.Errorf("no such container %s", r.ContainerId)
}

// serve starts a gRPC server on a unix socket; it stops at test end.
func serve(t testing.TB, srv runtimeapi.RuntimeServiceServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, srv)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return "unix://" + sock
}

func startSource(t testing.TB, cfg Config) (*Source, context.CancelFunc) {
	t.Helper()
	return startSourceLogging(t, cfg, quiet())
}

// startSourceLogging is startSource with the source's log going to log.
func startSourceLogging(t testing.TB, cfg Config, log *slog.Logger) (*Source, context.CancelFunc) {
	t.Helper()
	s, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, cancel
}

// waitState waits until the source's state satisfies ok and returns that state.
func waitState(t testing.TB, s *Source, what string, limit time.Duration, ok func(State) bool) State {
	t.Helper()
	var st State
	testenv.EventuallyState(t, what, limit, func() (bool, any) {
		st = s.State()
		return ok(st), st.Health
	})
	return st
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Endpoint: "/run/crio/crio.sock"}, ""},
		{Config{Endpoint: "tcp://127.0.0.1:1"}, `cri-endpoint "tcp://127.0.0.1:1": want unix:///path/to/socket`},
		{Config{Endpoint: "unix://"}, `cri-endpoint "unix://": want unix:///path/to/socket`},
		{Config{RelistInterval: time.Millisecond}, "poll-interval 1ms: must be at least 10ms"},
		{Config{CallTimeout: -time.Second}, "cri call timeout -1s: must be positive"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{}
	c.Validate()
	if c.Endpoint != DefaultEndpoint || c.CallTimeout != 2*time.Second || c.RelistInterval != time.Second || c.MaxRecvBytes != 64<<20 {
		t.Fatalf("defaults %+v", c)
	}
}

// The generated node's CRI answers convert into the lifecycle types with
// every field the model needs.
func TestConvertGeneratedNode(t *testing.T) {
	n := fixtures.Build()
	sbs := map[string]*lifecycle.Sandbox{}
	for _, sb := range n.Sandboxes.Items {
		v := ConvertSandbox(sb)
		sbs[v.ID] = &v
		if v.PodUID == "" || v.PodName == "" || v.State != lifecycle.SandboxReady || v.CreatedAt.IsZero() {
			t.Fatalf("sandbox %+v", v)
		}
	}
	statuses := map[string]*runtimeapi.ContainerStatus{}
	for _, s := range n.Statuses {
		statuses[s.Status.Id] = s.Status
	}
	var oom *lifecycle.Container
	for _, c := range n.Containers.Containers {
		v := ConvertContainer(c, statuses[c.Id], sbs)
		if v.PodUID == "" || v.Name == "" || v.Labels[lifecycle.LabelContainerName] != v.Name || v.Image == "" {
			t.Fatalf("container %+v", v)
		}
		if v.PodName == "worker-6f7c9-klmno" {
			oom = &v
		}
	}
	if oom == nil || oom.State != lifecycle.RuntimeExited || oom.ExitCode != 137 || oom.Reason != "OOMKilled" ||
		oom.Attempt != 5 || oom.FinishedAt.IsZero() || oom.StartedAt.IsZero() {
		t.Fatalf("crash-looping container %+v", oom)
	}
}

func TestSourceAgainstFakeRuntime(t *testing.T) {
	f := &fakeRuntime{node: fixtures.Build()}
	ep := serve(t, f)
	s, _ := startSource(t, Config{Endpoint: ep, RelistInterval: 20 * time.Millisecond, Stream: true})
	st := waitState(t, s, "a listing", 5*time.Second, func(st State) bool { return len(st.Containers) > 0 })
	if !st.Health.Up || !st.Health.Configured || st.Health.LastSuccess.IsZero() || st.Streaming {
		t.Fatalf("health %+v streaming %v (the fake does not stream)", st.Health, st.Streaming)
	}
	if len(st.Sandboxes) != len(f.node.Sandboxes.Items) || len(st.Containers) != len(f.node.Containers.Containers) {
		t.Fatalf("%d sandboxes, %d containers", len(st.Sandboxes), len(st.Containers))
	}
	// Unchanged relists ask no statuses and bump no generation.
	gen := st.Generation
	f.mu.Lock()
	asked := f.statuses
	f.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	again := f.statuses
	f.mu.Unlock()
	if again != asked || s.State().Generation != gen {
		t.Fatalf("idle relists asked %d statuses / moved generation %d -> %d", again-asked, gen, s.State().Generation)
	}
}

// A runtime that was up and then fails is down until it answers again: Up
// flips both ways, the error is recorded and cleared, the generation moves
// and an update is signalled at each flip, and the last good listing is kept
// while it is down.
func TestSourceUpDownUp(t *testing.T) {
	f := &fakeRuntime{node: fixtures.Build()}
	s, _ := startSource(t, Config{Endpoint: serve(t, f), RelistInterval: 20 * time.Millisecond, CallTimeout: 5 * time.Second})
	setDown := func(down bool) {
		f.mu.Lock()
		f.down = down
		f.mu.Unlock()
	}
	updated := func() bool {
		select {
		case <-s.Updates():
			return true
		default:
			return false
		}
	}
	up := waitState(t, s, "up", 10*time.Second, func(st State) bool { return st.Health.Up && len(st.Containers) > 0 })
	updated()
	setDown(true)
	down := waitState(t, s, "down", 10*time.Second, func(st State) bool { return !st.Health.Up })
	if !strings.Contains(down.Health.LastError, "Unavailable: runtime is down") || down.Generation <= up.Generation ||
		len(down.Containers) != len(up.Containers) || !updated() {
		t.Fatalf("down: health %+v, generation %d -> %d, %d of %d containers kept", down.Health, up.Generation, down.Generation,
			len(down.Containers), len(up.Containers))
	}
	// Failing the same way again changes nothing (the first failure after
	// the handshake is in a listing, the next ones in the handshake).
	time.Sleep(100 * time.Millisecond)
	down = s.State()
	updated()
	time.Sleep(100 * time.Millisecond)
	if st := s.State(); st.Generation != down.Generation || st.Health.Up || updated() {
		t.Fatalf("repeated failures moved the generation %d -> %d", down.Generation, st.Generation)
	}
	setDown(false)
	back := waitState(t, s, "up again", 10*time.Second, func(st State) bool { return st.Health.Up })
	if back.Health.LastError != "" || back.Generation <= down.Generation || !back.Health.LastSuccess.After(up.Health.LastSuccess) || !updated() {
		t.Fatalf("up again: health %+v, generation %d -> %d", back.Health, down.Generation, back.Generation)
	}
}

func TestSourceFaults(t *testing.T) {
	t.Run("no socket", func(t *testing.T) {
		ep := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
		s, _ := startSource(t, Config{Endpoint: ep, RelistInterval: 20 * time.Millisecond, CallTimeout: 200 * time.Millisecond})
		st := waitState(t, s, "an error", 5*time.Second, func(st State) bool { return st.Health.LastError != "" })
		if st.Health.Up || !strings.Contains(st.Health.LastError, "no such file or directory") || strings.Contains(st.Health.LastError, "\n") {
			t.Fatalf("error %q", st.Health.LastError)
		}
		t.Logf("missing socket: %s", st.Health.LastError)
	})
	t.Run("garbage socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "junk.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\nthis is not a CRI runtime\n"))
				c.Close()
			}
		}()
		s, _ := startSource(t, Config{Endpoint: "unix://" + sock, RelistInterval: 20 * time.Millisecond, CallTimeout: 300 * time.Millisecond})
		st := waitState(t, s, "an error", 5*time.Second, func(st State) bool { return st.Health.LastError != "" })
		if st.Health.Up || !strings.Contains(st.Health.LastError, "version") || strings.Contains(st.Health.LastError, "\n") {
			t.Fatalf("error %q", st.Health.LastError)
		}
		t.Logf("garbage socket: %s", st.Health.LastError)
	})
	t.Run("slow runtime times out", func(t *testing.T) {
		f := &fakeRuntime{node: fixtures.Build(), delay: 500 * time.Millisecond}
		s, _ := startSource(t, Config{Endpoint: serve(t, f), RelistInterval: 20 * time.Millisecond, CallTimeout: 100 * time.Millisecond})
		st := waitState(t, s, "an error", 5*time.Second, func(st State) bool { return st.Health.LastError != "" })
		if !strings.Contains(st.Health.LastError, "DeadlineExceeded") {
			t.Fatalf("error %q", st.Health.LastError)
		}
		f.mu.Lock()
		f.delay = 0
		f.mu.Unlock()
		waitState(t, s, "recovery", 5*time.Second, func(st State) bool { return st.Health.Up })
	})
	t.Run("answer larger than the receive limit", func(t *testing.T) {
		f := &fakeRuntime{node: fixtures.Build()}
		s, _ := startSource(t, Config{Endpoint: serve(t, f), RelistInterval: 20 * time.Millisecond, MaxRecvBytes: 512})
		st := waitState(t, s, "an error", 5*time.Second, func(st State) bool { return st.Health.LastError != "" })
		if !strings.Contains(st.Health.LastError, "ResourceExhausted") {
			t.Fatalf("error %q", st.Health.LastError)
		}
	})
}

// bigNode is a fixture-like node of n pods × 4 containers.
func bigNode(n int) *fixtures.Node {
	node := &fixtures.Node{Sandboxes: &runtimeapi.ListPodSandboxResponse{}, Containers: &runtimeapi.ListContainersResponse{}}
	now := time.Now().UnixNano()
	for i := 0; i < n; i++ {
		uid := fmt.Sprintf("uid-%04d", i)
		labels := map[string]string{lifecycle.LabelPodUID: uid, lifecycle.LabelPodName: fmt.Sprintf("pod-%04d", i), lifecycle.LabelPodNamespace: "load"}
		sb := fmt.Sprintf("sb-%04d", i)
		node.Sandboxes.Items = append(node.Sandboxes.Items, &runtimeapi.PodSandbox{Id: sb, State: runtimeapi.PodSandboxState_SANDBOX_READY,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: labels[lifecycle.LabelPodName], Namespace: "load", Uid: uid}, Labels: labels, CreatedAt: now})
		for j := 0; j < 4; j++ {
			id := fmt.Sprintf("c-%04d-%d", i, j)
			cl := map[string]string{lifecycle.LabelContainerName: fmt.Sprintf("c%d", j)}
			for k, v := range labels {
				cl[k] = v
			}
			md := &runtimeapi.ContainerMetadata{Name: cl[lifecycle.LabelContainerName]}
			node.Containers.Containers = append(node.Containers.Containers, &runtimeapi.Container{Id: id, PodSandboxId: sb, Metadata: md,
				State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: now, Labels: cl, Image: &runtimeapi.ImageSpec{Image: "busybox"}})
			node.Statuses = append(node.Statuses, &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: id, Metadata: md,
				State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: now, StartedAt: now, Labels: cl}})
		}
	}
	return node
}

// BenchmarkRelist250 is one steady-state full relist (+ conversion and change
// detection) of a 250-pod × 4-container node over a real gRPC unix socket.
func BenchmarkRelist250(b *testing.B) {
	f := &fakeRuntime{node: bigNode(250)}
	ep := serve(b, f)
	s, err := New(Config{Endpoint: ep}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, _ := grpc.NewClient(ep, grpc.WithTransportCredentials(insecureCreds()))
	defer conn.Close()
	if err := s.relistOnce(ctx, conn); err != nil { // first relist asks every status
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := s.relistOnce(ctx, conn); err != nil {
			b.Fatal(err)
		}
	}
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// stallingRuntime accepts the event stream but never sends on it.
type stallingRuntime struct {
	*fakeRuntime
	opens chan struct{}
}

func (s *stallingRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, st runtimeapi.RuntimeService_GetContainerEventsServer) error {
	s.opens <- struct{}{}
	<-st.Context().Done()
	return nil
}

// A stream that stays silent while relists keep finding changes is reopened.
func TestStalledStreamIsReopened(t *testing.T) {
	f := &stallingRuntime{fakeRuntime: &fakeRuntime{node: bigNode(1)}, opens: make(chan struct{}, 100)}
	s, _ := startSource(t, Config{Endpoint: serve(t, f), Stream: true, RelistInterval: 20 * time.Millisecond})
	waitState(t, s, "streaming", 5*time.Second, func(st State) bool { return st.Streaming })
	<-f.opens
	stop := make(chan struct{})
	defer close(stop)
	id := f.node.Containers.Containers[0].Id
	go func() { // the runtime's containers keep changing, each change seen by a relist; the stream says nothing
		for i := 0; ; i++ {
			state := runtimeapi.ContainerState_CONTAINER_RUNNING
			if i%2 == 0 {
				state = runtimeapi.ContainerState_CONTAINER_EXITED
			}
			f.mu.Lock()
			f.node.Containers.Containers[0].State = state
			f.node.Statuses[0].Status.State = state
			f.mu.Unlock()
			for seen := false; !seen; {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				st := s.State()
				j := slices.IndexFunc(st.Containers, func(c *lifecycle.Container) bool { return c.ID == id })
				seen = j >= 0 && st.Containers[j].State == convertState(state)
			}
		}
	}()
	select {
	case <-f.opens:
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled stream was never reopened")
	}
}

// endingRuntime holds the event stream open, silent, until end is closed;
// the stream then fails.
type endingRuntime struct {
	*fakeRuntime
	end chan struct{}
}

func (e *endingRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, st runtimeapi.RuntimeService_GetContainerEventsServer) error {
	select {
	case <-e.end:
		return status.Error(codes.Unavailable, "the runtime ended the stream")
	case <-st.Context().Done():
		return nil
	}
}

// While events stream, relists only check the stream (every
// StreamRelistInterval, the answer trusted meanwhile); when the stream ends,
// relisting resumes at once.
func TestStreamingRelistsSeldom(t *testing.T) {
	f := &endingRuntime{fakeRuntime: &fakeRuntime{node: bigNode(1), listed: make(chan struct{}, 1)}, end: make(chan struct{})}
	s, _ := startSource(t, Config{Endpoint: serve(t, f), Stream: true, RelistInterval: 10 * time.Millisecond, StreamRelistInterval: time.Hour})
	st := waitState(t, s, "streaming", 5*time.Second, func(st State) bool { return st.Streaming })
	if st.Health.FreshFor < 2*time.Hour {
		t.Errorf("streaming: the relist's answer trusted for %s, want two stream relist intervals", st.Health.FreshFor)
	}
	// At most the relist already due when the stream came up; then none
	// for an hour.
	lists := func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.lists }
	before := lists()
	time.Sleep(300 * time.Millisecond) // a window in which the poll interval would relist 30 times
	if n := lists() - before; n > 1 {
		t.Fatalf("%d relists in 300ms while the events stream", n)
	}
	for len(f.listed) > 0 {
		<-f.listed
	}
	close(f.end)
	select {
	case <-f.listed:
	case <-time.After(10 * time.Second):
		t.Fatal("no relist after the stream ended")
	}
	if st := s.State(); st.Streaming || st.Health.FreshFor != 0 {
		t.Errorf("after the stream ended: streaming %t, trusted for %s", st.Streaming, st.Health.FreshFor)
	}
}

// A relist's listing that began before a stream event is older than it: the
// event's record (a new attempt, an exit, a removal) stands; a listing begun
// after the event is the newer, and stands.
func TestListingOlderThanTheStreamKeepsTheStream(t *testing.T) {
	s, err := New(Config{Endpoint: "unix:///nowhere.sock"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	sb := &lifecycle.Sandbox{ID: "sb", PodUID: "uid", PodName: "p", PodNamespace: "ns", State: lifecycle.SandboxReady}
	running := &lifecycle.Container{ID: "c0", SandboxID: "sb", PodUID: "uid", Name: "app", State: lifecycle.RuntimeRunning}
	listing := func() (map[string]*lifecycle.Sandbox, map[string]*lifecycle.Container) {
		return map[string]*lifecycle.Sandbox{"sb": sb}, map[string]*lifecycle.Container{"c0": running}
	}
	sbs0, cs0 := listing()
	s.commitListing(sbs0, cs0, 0)
	event := func(id string, typ runtimeapi.ContainerEventType, state runtimeapi.ContainerState, attempt uint32) {
		st := &runtimeapi.ContainerStatus{Id: id, State: state, Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: attempt},
			Labels: map[string]string{lifecycle.LabelPodUID: "uid", lifecycle.LabelPodName: "p", lifecycle.LabelPodNamespace: "ns"}}
		s.apply(context.Background(), nil, &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ,
			PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: "sb", State: runtimeapi.PodSandboxState_SANDBOX_READY,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "uid"}},
			ContainersStatuses: []*runtimeapi.ContainerStatus{st}})
	}
	states := func() map[string]lifecycle.RuntimeState {
		out := map[string]lifecycle.RuntimeState{}
		for _, c := range s.State().Containers {
			out[c.ID] = c.State
		}
		return out
	}
	// A restart while a relist lists: c0 exits, c1 starts; the listing
	// still has c0 running and no c1.
	begun := s.streamSeq
	event("c0", runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.ContainerState_CONTAINER_EXITED, 0)
	event("c1", runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, runtimeapi.ContainerState_CONTAINER_RUNNING, 1)
	sbs, cs := listing()
	s.commitListing(sbs, cs, begun)
	want := map[string]lifecycle.RuntimeState{"c0": lifecycle.RuntimeExited, "c1": lifecycle.RuntimeRunning}
	if got := states(); !reflect.DeepEqual(got, want) {
		t.Fatalf("older listing committed over the stream: %v, want %v", got, want)
	}
	// c0 removed by the stream while another relist lists it.
	begun = s.streamSeq
	event("c0", runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, runtimeapi.ContainerState_CONTAINER_EXITED, 0)
	sbs, cs = listing()
	cs["c1"] = s.containers["c1"]
	s.commitListing(sbs, cs, begun)
	want = map[string]lifecycle.RuntimeState{"c1": lifecycle.RuntimeRunning}
	if got := states(); !reflect.DeepEqual(got, want) {
		t.Fatalf("a removed container came back from an older listing: %v, want %v", got, want)
	}
	// A listing begun after every event is the newer: c1 is gone from it.
	sbs, _ = listing()
	s.commitListing(sbs, map[string]*lifecycle.Container{}, s.streamSeq)
	if got := states(); len(got) != 0 {
		t.Fatalf("a newer listing did not stand: %v", got)
	}
}

// A container event leaves State's Sandboxes slice as it was (the same
// slice is the same sandboxes: lifecycle.Input.RuntimeGeneration); an event
// that changes a sandbox's state, adds or removes one gives a new slice.
func TestContainerEventKeepsTheSandboxes(t *testing.T) {
	s, err := New(Config{Endpoint: "unix:///nowhere.sock"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	sb := &lifecycle.Sandbox{ID: "sb", PodUID: "uid", PodName: "p", PodNamespace: "ns", State: lifecycle.SandboxReady}
	s.commitListing(map[string]*lifecycle.Sandbox{"sb": sb}, map[string]*lifecycle.Container{}, 0)
	event := func(sandboxID string, sandbox runtimeapi.PodSandboxState, typ runtimeapi.ContainerEventType) {
		st := &runtimeapi.ContainerStatus{Id: "c0", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Labels:   map[string]string{lifecycle.LabelPodUID: "uid", lifecycle.LabelPodName: "p", lifecycle.LabelPodNamespace: "ns"}}
		ev := &runtimeapi.ContainerEventResponse{ContainerId: "c0", ContainerEventType: typ,
			PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: sandboxID, State: sandbox,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "uid"}},
			ContainersStatuses: []*runtimeapi.ContainerStatus{st}}
		if typ == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
			ev.ContainerId, ev.ContainersStatuses = sandboxID, nil
		}
		s.apply(context.Background(), nil, ev)
	}
	before := s.State().Sandboxes
	for _, step := range []struct {
		name      string
		sandbox   string
		state     runtimeapi.PodSandboxState
		typ       runtimeapi.ContainerEventType
		newSlice  bool
		sandboxes int
	}{
		{"a container starts", "sb", runtimeapi.PodSandboxState_SANDBOX_READY, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT, false, 1},
		{"its sandbox stops", "sb", runtimeapi.PodSandboxState_SANDBOX_NOTREADY, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, true, 1},
		{"a new sandbox", "sb2", runtimeapi.PodSandboxState_SANDBOX_READY, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, true, 2},
		{"the old sandbox removed", "sb", runtimeapi.PodSandboxState_SANDBOX_NOTREADY, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT, true, 1},
	} {
		event(step.sandbox, step.state, step.typ)
		after := s.State().Sandboxes
		if changed := len(after) != len(before) || (len(after) > 0 && &after[0] != &before[0]); changed != step.newSlice || len(after) != step.sandboxes {
			t.Fatalf("%s: a new Sandboxes slice %t (want %t), %d sandboxes (want %d)", step.name, changed, step.newSlice, len(after), step.sandboxes)
		}
		before = after
	}
}

// State.Changes names the pods each change touched (what the Correlator's
// one-change path looks at, lifecycle.Input.RuntimeChanges): an event, its
// container's pod and its sandbox's; a listing, the pods whose records it
// changed, and no other. A listing that changes no sandbox keeps the
// Sandboxes slice.
func TestChangesNameThePods(t *testing.T) {
	s, err := New(Config{Endpoint: "unix:///nowhere.sock"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	sandbox := func(uid string, state lifecycle.SandboxState) *lifecycle.Sandbox {
		return &lifecycle.Sandbox{ID: "sb-" + uid, PodUID: uid, PodName: uid, PodNamespace: "ns", State: state}
	}
	ctr := func(uid string, state lifecycle.RuntimeState) *lifecycle.Container {
		return &lifecycle.Container{ID: uid + "-0", SandboxID: "sb-" + uid, PodUID: uid, Name: "app", State: state}
	}
	// A listing keeps the records it finds unchanged (reuseUnchanged) and
	// makes new ones for the others.
	listing := func(b lifecycle.SandboxState, bState lifecycle.RuntimeState) (map[string]*lifecycle.Sandbox, map[string]*lifecycle.Container) {
		sbs, cs := maps.Clone(s.sandboxes), maps.Clone(s.containers)
		if len(sbs) == 0 { // the first
			sbs, cs = map[string]*lifecycle.Sandbox{"sb-a": sandbox("a", lifecycle.SandboxReady)}, map[string]*lifecycle.Container{"a-0": ctr("a", lifecycle.RuntimeRunning)}
		}
		if old := sbs["sb-b"]; old == nil || old.State != b {
			sbs["sb-b"] = sandbox("b", b)
		}
		if old := cs["b-0"]; old == nil || old.State != bState {
			cs["b-0"] = ctr("b", bState)
		}
		return sbs, cs
	}
	last := s.State()
	check := func(name string, wantPods []string, wantNewSandboxes bool) {
		t.Helper()
		st := s.State()
		got, ok := st.Changes.Since(last.Generation, st.Generation)
		var pods []string
		for _, c := range got {
			pods = append(pods, c.UID)
		}
		slices.Sort(pods)
		if !ok || !slices.Equal(slices.Compact(pods), wantPods) {
			t.Fatalf("%s: changed pods %v (covered %t), want %v", name, pods, ok, wantPods)
		}
		if newSlice := !sameSlice(st.Sandboxes, last.Sandboxes); newSlice != wantNewSandboxes {
			t.Fatalf("%s: a new Sandboxes slice %t, want %t", name, newSlice, wantNewSandboxes)
		}
		last = st
	}
	sbs, cs := listing(lifecycle.SandboxReady, lifecycle.RuntimeRunning)
	s.commitListing(sbs, cs, 0)
	last = s.State() // the log starts here: the first correlation looks at every pod
	s.apply(context.Background(), nil, &runtimeapi.ContainerEventResponse{ContainerId: "a-1",
		ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
		PodSandboxStatus: &runtimeapi.PodSandboxStatus{Id: "sb-a", State: runtimeapi.PodSandboxState_SANDBOX_READY,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "a", Namespace: "ns", Uid: "a"}},
		ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "a-1", State: runtimeapi.ContainerState_CONTAINER_RUNNING,
			Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 1},
			Labels:   map[string]string{lifecycle.LabelPodUID: "a", lifecycle.LabelPodName: "a", lifecycle.LabelPodNamespace: "ns"}}}})
	check("an event of pod a", []string{"a"}, false)
	s.apply(context.Background(), nil, &runtimeapi.ContainerEventResponse{ContainerId: "b-1",
		ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
		ContainersStatuses: []*runtimeapi.ContainerStatus{{Id: "b-1", State: runtimeapi.ContainerState_CONTAINER_CREATED,
			Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 1},
			Labels:   map[string]string{lifecycle.LabelPodUID: "b", lifecycle.LabelPodName: "b", lifecycle.LabelPodNamespace: "ns"}}}})
	check("an event of pod b without its sandbox's status", []string{"b"}, false)
	sbs, cs = listing(lifecycle.SandboxReady, lifecycle.RuntimeExited)
	cs["a-1"], cs["b-1"] = s.containers["a-1"], s.containers["b-1"]
	s.commitListing(sbs, cs, s.streamSeq)
	check("a listing where b's container exited", []string{"b"}, false)
	// A record decoded afresh (a listing cannot tell it unchanged) that
	// differs only where the listing does not look is a new record all the
	// same: its pod is named with the other change.
	sbs, cs = listing(lifecycle.SandboxReady, lifecycle.RuntimeRunning)
	cs["b-1"] = s.containers["b-1"]
	fresh := *s.containers["a-1"]
	fresh.Message = "decoded again"
	cs["a-1"] = &fresh
	s.commitListing(sbs, cs, s.streamSeq)
	check("a listing where b's container runs again and a's record is decoded afresh", []string{"a", "b"}, false)
	sbs, cs = listing(lifecycle.SandboxReady, lifecycle.RuntimeExited)
	cs["a-1"], cs["b-1"] = s.containers["a-1"], s.containers["b-1"]
	s.commitListing(sbs, cs, s.streamSeq)
	check("b's container exited again", []string{"b"}, false)
	sbs, cs = listing(lifecycle.SandboxNotReady, lifecycle.RuntimeExited)
	cs["a-1"], cs["b-1"] = s.containers["a-1"], s.containers["b-1"]
	s.commitListing(sbs, cs, s.streamSeq)
	check("a listing where b's sandbox stopped", []string{"b"}, true)
	s.apply(context.Background(), nil, &runtimeapi.ContainerEventResponse{ContainerId: "a-0",
		ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT})
	check("pod a's old container removed", []string{"a"}, false)
}

func sameSlice[T any](a, b []T) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }
