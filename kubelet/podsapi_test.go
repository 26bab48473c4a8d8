package kubelet

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	podsv1alpha1 "k8s.io/kubelet/pkg/apis/pods/v1alpha1"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// TestPodOfMatchesDecode: a pod read from the Pods API (protobuf, decoded by
// k8s.io/api) becomes the same lifecycle pod as the same pod read from /pods
// (JSON, podlife's decoder); only the status's provenance differs.
func TestPodOfMatchesDecode(t *testing.T) {
	list := fixtures.Build().Pods
	body, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]*lifecycle.Pod{}
	for i := range list.Items {
		if _, _, err := applyPodEvent(pods, event(t, podsv1alpha1.EventType_ADDED, &list.Items[i])); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range want {
		got, ok := pods[w.UID]
		if !ok {
			t.Fatalf("pod %s/%s missing", w.Namespace, w.Name)
		}
		if got.StatusFrom != lifecycle.FromKubelet {
			t.Errorf("%s: status from %q, want %q (the Pods API serves the status manager's status)", w.Name, got.StatusFrom, lifecycle.FromKubelet)
		}
		w.StatusFrom = got.StatusFrom
		if diff := podDiff(*got, *w); diff != "" {
			t.Errorf("%s: Pods API and /pods differ: %s", w.Name, diff)
		}
	}
}

func event(t testing.TB, typ podsv1alpha1.EventType, p *corev1.Pod) *podsv1alpha1.WatchPodsEvent {
	t.Helper()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return &podsv1alpha1.WatchPodsEvent{Type: typ, Pod: b}
}

// fakePodsAPI is a Pods API server for the unit tests: each WatchPods
// stream sends what the test queues, and ends with what it queues as end.
type fakePodsAPI struct {
	podsv1alpha1.UnimplementedPodsServer
	mu      sync.Mutex
	streams chan chan *podsv1alpha1.WatchPodsEvent // one per WatchPods call, for the test to feed
	end     map[chan *podsv1alpha1.WatchPodsEvent]error
	hung    chan struct{} // calls block while it is open (a hung kubelet)
	// initial, where set, is what every WatchPods sends at once, unfed.
	initial []*podsv1alpha1.WatchPodsEvent
	// list, where not nil, is what ListPods answers (the kubelet's pod
	// manager); nil: Unimplemented. limited refuses it as the kubelet's rate
	// limiter does; lists counts the calls.
	list    []*corev1.Pod
	limited bool
	lists   int
}

// wait blocks while the fake kubelet hangs.
func (f *fakePodsAPI) wait(ctx context.Context) error {
	f.mu.Lock()
	hung := f.hung
	f.mu.Unlock()
	if hung == nil {
		return nil
	}
	select {
	case <-hung:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakePodsAPI) GetPod(ctx context.Context, req *podsv1alpha1.GetPodRequest) (*podsv1alpha1.GetPodResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return nil, status.Errorf(codes.NotFound, "pod %s not found", req.GetPodUID())
}

func (f *fakePodsAPI) ListPods(ctx context.Context, _ *podsv1alpha1.ListPodsRequest) (*podsv1alpha1.ListPodsResponse, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.limited {
		return nil, status.Error(codes.ResourceExhausted, "rate limit exceeded")
	}
	if f.list == nil {
		return nil, status.Error(codes.Unimplemented, "no list in this test")
	}
	return listResponse(f.list)
}

// listResponse is the kubelet's answer listing pods.
func listResponse(pods []*corev1.Pod) (*podsv1alpha1.ListPodsResponse, error) {
	resp := &podsv1alpha1.ListPodsResponse{}
	for _, p := range pods {
		b, err := p.Marshal()
		if err != nil {
			return nil, err
		}
		resp.Pods = append(resp.Pods, b)
	}
	return resp, nil
}

func newFakePodsAPI() *fakePodsAPI {
	return &fakePodsAPI{streams: make(chan chan *podsv1alpha1.WatchPodsEvent), end: map[chan *podsv1alpha1.WatchPodsEvent]error{}}
}

func (f *fakePodsAPI) WatchPods(_ *podsv1alpha1.WatchPodsRequest, stream podsv1alpha1.Pods_WatchPodsServer) error {
	if err := f.wait(stream.Context()); err != nil {
		return err
	}
	if f.initial != nil {
		for _, ev := range f.initial {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	ch := make(chan *podsv1alpha1.WatchPodsEvent)
	select {
	case f.streams <- ch:
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.end[ch]
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// serveGRPC serves srv's services on a unix socket in a temporary directory.
func serveGRPC(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pods-api.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return path
}

// waitFor waits until the source's state satisfies ok and returns that state.
func waitFor(t *testing.T, s *Source, what string, ok func(State) bool) State {
	t.Helper()
	var st State
	// 30 s is a hang guard: each step takes milliseconds.
	testenv.EventuallyState(t, what, 30*time.Second, func() (bool, any) {
		st = s.State()
		return ok(st), st.Health
	})
	return st
}

func startSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// revisions are the pods' record revisions by UID.
func revisions(st State) map[string]uint64 {
	out := map[string]uint64{}
	for _, p := range st.Pods {
		out[p.UID] = p.Revision
	}
	return out
}

func restarts(st State, uid string) int32 {
	for _, p := range st.Pods {
		if p.UID == uid {
			n := int32(0)
			for _, c := range p.Containers {
				n += c.RestartCount
			}
			return n
		}
	}
	return -1
}

// TestPodsAPIWatch follows a Pods API: the initial list is published once
// the kubelet says it is complete, then every change; a watch the kubelet
// drops (ResourceExhausted) is resumed with a full resync that sees what
// changed meanwhile, and a pod gone meanwhile is gone.
func TestPodsAPIWatch(t *testing.T) {
	f := newFakePodsAPI()
	path := serveGRPC(t, func(s *grpc.Server) { podsv1alpha1.RegisterPodsServer(s, f) })
	// /pods answers something else: the test fails if the source reads it.
	hk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the source polled %s while the Pods API answered", r.URL.Path)
	}))
	defer hk.Close()
	s := startSource(t, Config{URL: hk.URL, PodsAPISocket: path, LinkInterval: -1, PollInterval: 20 * time.Millisecond})

	items := fixtures.Build().Pods.Items
	a, b := items[0].DeepCopy(), items[1].DeepCopy()
	stream := <-f.streams
	stream <- event(t, podsv1alpha1.EventType_ADDED, a)
	stream <- event(t, podsv1alpha1.EventType_ADDED, b)
	stream <- &podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE}
	st := waitFor(t, s, "initial list", func(st State) bool { return len(st.Pods) == 2 })
	if st.Generation != 1 {
		t.Fatalf("the initial list was published in %d steps, want one, at INITIAL_SYNC_COMPLETE", st.Generation)
	}
	if st.Health.Mode != ModePodsAPI || !st.Health.Up || !strings.Contains(st.Health.ModeReason, path) {
		t.Fatalf("health %+v, want mode %s, up", st.Health, ModePodsAPI)
	}
	base, revs := restarts(st, string(a.UID)), revisions(st)

	a.Status.ContainerStatuses[0].RestartCount += 5
	stream <- event(t, podsv1alpha1.EventType_MODIFIED, a)
	st = waitFor(t, s, "MODIFIED", func(st State) bool { return restarts(st, string(a.UID)) == base+5 })
	// The modified pod is a new record (lifecycle.Pod.Revision), the other the same.
	if now := revisions(st); now[string(a.UID)] == revs[string(a.UID)] || now[string(b.UID)] != revs[string(b.UID)] || revs[string(b.UID)] == 0 {
		t.Fatalf("revisions %v after a's MODIFIED, %v before: want a new one for %s only", now, revs, a.UID)
	}

	// The kubelet drops this reader; meanwhile a restarts again and b goes.
	f.mu.Lock()
	f.end[stream] = status.Error(codes.ResourceExhausted, "watch client channel closed")
	f.mu.Unlock()
	close(stream)
	a.Status.ContainerStatuses[0].RestartCount++
	stream = <-f.streams
	waitFor(t, s, "the drop recorded", func(st State) bool { return strings.Contains(st.Health.LastError, "fell behind") })
	stream <- event(t, podsv1alpha1.EventType_ADDED, a)
	stream <- &podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE}
	st = waitFor(t, s, "resync", func(st State) bool { return len(st.Pods) == 1 })
	if restarts(st, string(a.UID)) != base+6 || !st.Health.Up || st.Health.LastError != "" {
		t.Fatalf("after the resync: restarts %d (want %d), health %+v", restarts(st, string(a.UID)), base+6, st.Health)
	}

	// The kubelet says DELETED when a pod has finished, and keeps it (with
	// its final status) until the API server deletes it
	// (pkg/kubelet/status/status_manager.go TerminatePod): it still lists it.
	done := a.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	f.mu.Lock()
	f.list = []*corev1.Pod{done}
	f.mu.Unlock()
	stream <- event(t, podsv1alpha1.EventType_DELETED, &corev1.Pod{ObjectMeta: a.ObjectMeta})
	waitFor(t, s, "the finished pod kept with its final status", func(st State) bool {
		return len(st.Pods) == 1 && st.Pods[0].Phase == lifecycle.PhaseSucceeded
	})
	// Deleted from the API server: the kubelet forgets it, and says nothing;
	// the next list finds it gone.
	f.mu.Lock()
	f.list = []*corev1.Pod{}
	f.mu.Unlock()
	waitFor(t, s, "the finished pod gone once the kubelet forgot it", func(st State) bool { return len(st.Pods) == 0 })
}

// TestPodsAPIReconcile: the kubelet's list, every heartbeat, corrects what
// the watch cannot: a finished pod listed at the start of the watch (no event
// will ever say it went) is dropped once the kubelet no longer lists it; a
// status that arrived out of order is replaced by the listed one; a list the
// kubelet's rate limiter refuses (100/s for all its clients) waits for the
// next period without ending the watch; a pod the kubelet has not synced since
// it started (Ready forced False, "Kubelet is initializing pod containers") is
// the API server's copy, not the kubelet's own.
func TestPodsAPIReconcile(t *testing.T) {
	items := fixtures.Build().Pods.Items
	done, b := items[0].DeepCopy(), items[1].DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	f := newFakePodsAPI()
	f.initial = []*podsv1alpha1.WatchPodsEvent{event(t, podsv1alpha1.EventType_ADDED, done), event(t, podsv1alpha1.EventType_ADDED, b),
		{Type: podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE}}
	f.list = []*corev1.Pod{done, b}
	path := serveGRPC(t, func(s *grpc.Server) { podsv1alpha1.RegisterPodsServer(s, f) })
	s := startSource(t, Config{URL: "http://127.0.0.1:1", PodsAPISocket: path, LinkInterval: -1})
	waitFor(t, s, "up", func(st State) bool { return st.Health.Up && len(st.Pods) == 2 })

	lists := func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.lists }
	f.mu.Lock()
	f.limited = true
	f.mu.Unlock()
	refused := lists()
	waitFor(t, s, "a refused list", func(State) bool { return lists() > refused })
	if st := s.State(); !st.Health.Up || st.Health.LastError != "" || len(st.Pods) != 2 {
		t.Fatalf("after a rate-limited list: health %+v, %d pods: want the watch going on", st.Health, len(st.Pods))
	}

	newer := b.DeepCopy()
	newer.Status.ContainerStatuses[0].RestartCount += 3
	f.mu.Lock()
	f.limited, f.list = false, []*corev1.Pod{newer}
	f.mu.Unlock()
	st := waitFor(t, s, "the finished pod gone, the newer status listed", func(st State) bool {
		return len(st.Pods) == 1 && restarts(st, string(b.UID)) == restarts(State{Pods: []*lifecycle.Pod{new(PodOf(newer, lifecycle.FromKubelet))}}, string(b.UID))
	})
	if st.Pods[0].StatusFrom != lifecycle.FromKubelet {
		t.Fatalf("status from %q", st.Pods[0].StatusFrom)
	}

	placeholder := newer.DeepCopy()
	for i := range placeholder.Status.Conditions {
		if c := &placeholder.Status.Conditions[i]; c.Type == corev1.PodReady {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, "ContainersNotReady", "Kubelet is initializing pod containers"
		}
	}
	f.mu.Lock()
	f.list = []*corev1.Pod{placeholder}
	f.mu.Unlock()
	waitFor(t, s, "a status the kubelet has not synced yet: the API server's copy", func(st State) bool {
		return len(st.Pods) == 1 && st.Pods[0].StatusFrom == lifecycle.FromKubeletCache
	})
}

// TestPodsAPIQuietKubelet: a kubelet whose pods do not change sends no
// event; its heartbeat list still answers, and that answer is its health: a
// quiet node's pods must not go stale (they did: every pod Unknown, "kubelet
// unreachable", 10 s into a quiet spell, seen by the fleet harness).
func TestPodsAPIQuietKubelet(t *testing.T) {
	first, st := heartbeats(t, false)
	if !st.Health.LastSuccess.After(first.Health.LastSuccess) {
		t.Fatalf("last success %s after a heartbeat list, still the first answer's %s", st.Health.LastSuccess, first.Health.LastSuccess)
	}
}

// heartbeats follows a quiet kubelet of one pod, its lists refused
// (rate-limited) or not, until two heartbeat lists were made after the first
// answer, and returns the state at the first answer and then.
func heartbeats(t *testing.T, refused bool) (first, then State) {
	t.Helper()
	f := newFakePodsAPI()
	p := &fixtures.Build().Pods.Items[0]
	f.initial = []*podsv1alpha1.WatchPodsEvent{event(t, podsv1alpha1.EventType_ADDED, p), {Type: podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE}}
	f.list, f.limited = []*corev1.Pod{p}, refused
	path := serveGRPC(t, func(s *grpc.Server) { podsv1alpha1.RegisterPodsServer(s, f) })
	s := startSource(t, Config{URL: "http://127.0.0.1:1", PodsAPISocket: path, LinkInterval: -1})
	first = waitFor(t, s, "up", func(st State) bool { return st.Health.Up && len(st.Pods) == 1 })
	lists := func() int { f.mu.Lock(); defer f.mu.Unlock(); return f.lists }
	n := lists()
	// The list after the next is made a period after the next was handled.
	waitFor(t, s, "two heartbeat lists", func(State) bool { return lists() > n+1 })
	return first, s.State()
}

// TestPodsAPIHungKubelet: a kubelet whose socket accepts but which answers
// nothing (hung, SIGSTOPped) is seen by the heartbeat: the source goes down
// saying so, and comes back with a full resync once the kubelet answers.
func TestPodsAPIHungKubelet(t *testing.T) {
	f := newFakePodsAPI()
	f.initial = []*podsv1alpha1.WatchPodsEvent{event(t, podsv1alpha1.EventType_ADDED, &fixtures.Build().Pods.Items[0]),
		{Type: podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE}}
	path := serveGRPC(t, func(s *grpc.Server) { podsv1alpha1.RegisterPodsServer(s, f) })
	s := startSource(t, Config{URL: "http://127.0.0.1:1", PodsAPISocket: path, LinkInterval: -1,
		PollInterval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond})
	waitFor(t, s, "up", func(st State) bool { return st.Health.Up && len(st.Pods) == 1 })

	f.mu.Lock()
	f.hung = make(chan struct{})
	f.mu.Unlock()
	down := waitFor(t, s, "down", func(st State) bool { return !st.Health.Up })
	if !strings.Contains(down.Health.LastError, "no answer within 200ms") || down.Health.Mode != ModePodsAPI || len(down.Pods) != 1 {
		t.Fatalf("hung kubelet: health %+v, %d pods", down.Health, len(down.Pods))
	}
	f.mu.Lock()
	close(f.hung)
	f.hung = nil
	f.mu.Unlock()
	waitFor(t, s, "up again", func(st State) bool { return st.Health.Up && st.Health.LastSuccess.After(down.Health.LastSuccess) })
}

// TestPodsAPIFallback: where the socket is missing, or answers without the
// Pods service (Unimplemented), the source polls /pods and says why.
func TestPodsAPIFallback(t *testing.T) {
	kubelet := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(generated(t))
	}))
	defer kubelet.Close()
	noPods := serveGRPC(t, func(*grpc.Server) {})
	for _, tc := range []struct{ name, socket, reason string }{
		{"missing", filepath.Join(t.TempDir(), "pods-api.sock"), "no such file or directory"},
		{"unimplemented", noPods, "Unimplemented"},
		{"not configured", "", "no Pods API socket configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSource(t, Config{URL: kubelet.URL, PodsAPISocket: tc.socket, LinkInterval: -1})
			st := waitFor(t, s, "pods from /pods", func(st State) bool { return len(st.Pods) > 0 })
			if st.Health.Mode != ModePodsHTTP || !strings.Contains(st.Health.ModeReason, tc.reason) || !st.Health.Up {
				t.Fatalf("health %+v, want mode %s because %q", st.Health, ModePodsHTTP, tc.reason)
			}
			if st.Pods[0].StatusFrom == "" {
				t.Fatal("no provenance on /pods")
			}
		})
	}
}

// FuzzPodsAPIEvent: any bytes as a watch event's pod are decoded or refused
// with an error, never a panic; a pod that decodes keeps its UID.
func FuzzPodsAPIEvent(f *testing.F) {
	for i, p := range fixtures.Build().Pods.Items {
		b, err := p.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(int32(i%4+1), b)
	}
	f.Add(int32(9), []byte{0x0a, 0x02})
	f.Fuzz(func(t *testing.T, typ int32, pod []byte) {
		pods := map[string]*lifecycle.Pod{}
		uid, deleted, err := applyPodEvent(pods, &podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType(typ), Pod: pod})
		if err != nil || deleted {
			if len(pods) != 0 {
				t.Fatalf("an event refused (%v) or DELETED (%v) changed the pods", err, deleted)
			}
			return
		}
		if p, ok := pods[uid]; len(pods) > 0 && (!ok || p.UID != uid) {
			t.Fatalf("applied pod %q not stored under its UID", uid)
		}
		for uid, p := range pods {
			if uid == "" || p.UID != uid {
				t.Fatalf("pod stored under %q with UID %q", uid, p.UID)
			}
		}
	})
}

// listOnly is a kubelet that only lists, what its list holds.
type listOnly struct {
	pods []*corev1.Pod
}

// list answers as podsAPIFeed.listPods does: the answer's bytes, in the
// array of the last answer while it is large enough (localgrpc.InvokeRaw).
func (l *listOnly) list(_ context.Context, answer *[]byte) error {
	resp, err := listResponse(l.pods)
	if err != nil {
		return err
	}
	*answer, err = proto.MarshalOptions{}.MarshalAppend((*answer)[:0], resp)
	return err
}

// A list gives a new record (lifecycle.Pod.Revision) to the pods it changed
// only, the others keep theirs (the same pointer), a record once listed is
// never modified, and the feed's list keeps the kubelet's order as pods come
// and go.
func TestPodsAPIListRevisesWhatChanged(t *testing.T) {
	s, err := New(Config{URL: "http://127.0.0.1:1", PodsAPISocket: "/nowhere", LinkInterval: -1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	items := fixtures.Build().Pods.Items
	a, b := items[0].DeepCopy(), items[1].DeepCopy()
	kubelet := &listOnly{pods: []*corev1.Pod{a, b}}
	f := &podsAPIFeed{s: s, listPods: kubelet.list, pods: map[string]*lifecycle.Pod{}, touched: map[string]bool{}}
	for _, p := range kubelet.pods { // the watch's first events
		uid, _, err := applyPodEvent(f.pods, event(t, podsv1alpha1.EventType_ADDED, p))
		if err != nil {
			t.Fatal(err)
		}
		f.revise(uid)
	}
	ctx := context.Background()
	step := func(name string, wantChanged bool, wantNew ...types.UID) {
		t.Helper()
		published := f.list()
		before := revisions(State{Pods: published})
		var told []string
		changed, err := f.reconcile(ctx, &told)
		if err != nil || changed != wantChanged {
			t.Fatalf("%s: changed %t, %v; want %t", name, changed, err, wantChanged)
		}
		// What it says changed (lifecycle.Input.PodsChanges) is what did:
		// the new records and the pods gone.
		var want []string
		for _, p := range published {
			if !slices.ContainsFunc(kubelet.pods, func(k *corev1.Pod) bool { return string(k.UID) == p.UID }) {
				want = append(want, p.UID)
			}
		}
		for _, uid := range wantNew {
			want = append(want, string(uid))
		}
		slices.Sort(told)
		if slices.Sort(want); !slices.Equal(told, want) {
			t.Errorf("%s: the list says pods %v changed, want %v", name, told, want)
		}
		list := f.list()
		// Records are shared while unchanged, and never modified once listed.
		for _, p := range list {
			i := slices.IndexFunc(published, func(o *lifecycle.Pod) bool { return o.UID == p.UID })
			isNew := slices.Contains(wantNew, types.UID(p.UID))
			if i >= 0 && ((published[i] == p) == isNew || published[i].Revision != before[p.UID]) {
				t.Errorf("%s: pod %s: the same record %t, want %t; the listed record's revision now %d, was %d",
					name, p.UID, published[i] == p, !isNew, published[i].Revision, before[p.UID])
			}
		}
		if !slices.IsSortedFunc(list, func(x, y *lifecycle.Pod) int { return strings.Compare(x.UID, y.UID) }) || len(list) != len(kubelet.pods) {
			t.Fatalf("%s: the feed lists %d pods, out of the kubelet's order", name, len(list))
		}
		for uid, rev := range revisions(State{Pods: list}) {
			if isNew := slices.Contains(wantNew, types.UID(uid)); (rev != before[uid]) != isNew || rev == 0 {
				t.Errorf("%s: pod %s revision %d, was %d: want a new record %t", name, uid, rev, before[uid], isNew)
			}
		}
	}
	step("the same list", false)
	// A new watch (after the kubelet dropped this one) numbers on: its pods
	// are new records, never an old revision for different content.
	old := revisions(State{Pods: f.list()})
	again := &podsAPIFeed{s: s, listPods: kubelet.list, pods: map[string]*lifecycle.Pod{}, touched: map[string]bool{}}
	if changed, err := again.reconcile(ctx, new([]string)); err != nil || !changed {
		t.Fatalf("a new watch's first list: changed %t, %v", changed, err)
	}
	for uid, rev := range revisions(State{Pods: again.list()}) {
		if rev <= old[uid] {
			t.Fatalf("a new watch gave pod %s revision %d, not past the last watch's %d", uid, rev, old[uid])
		}
	}
	b.Status.ContainerStatuses[0].RestartCount++
	step("b restarted", true, b.UID)
	kubelet.pods = []*corev1.Pod{b}
	step("a gone", true)
	c := items[2].DeepCopy()
	kubelet.pods = []*corev1.Pod{c, b}
	step("c came", true, c.UID)
}

// changedPods tells, by record identity, the pods a new answer changed (a
// /pods poll's, a new watch's first): new records, and the pods gone.
func TestChangedPods(t *testing.T) {
	a, b, c := &lifecycle.Pod{UID: "a"}, &lifecycle.Pod{UID: "b"}, &lifecycle.Pod{UID: "c"}
	b2 := &lifecycle.Pod{UID: "b", Revision: 2}
	for _, tc := range []struct {
		name      string
		old, pods []*lifecycle.Pod
		want      []string
	}{
		{"the same records", []*lifecycle.Pod{a, b}, []*lifecycle.Pod{a, b}, nil},
		{"in another order", []*lifecycle.Pod{a, b}, []*lifecycle.Pod{b, a}, nil},
		{"a new record", []*lifecycle.Pod{a, b}, []*lifecycle.Pod{a, b2}, []string{"b"}},
		{"one gone, one come", []*lifecycle.Pod{a, b}, []*lifecycle.Pod{b, c}, []string{"a", "c"}},
		{"the first answer", nil, []*lifecycle.Pod{a, b}, []string{"a", "b"}},
	} {
		got := changedPods(tc.old, tc.pods)
		if slices.Sort(got); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkPodsAPIListUnchanged is a heartbeat list of the demo node's pods
// (fixtures: about 250) that changed nothing: podlife's cost of the Pods
// API's list every period, the gRPC call aside.
func BenchmarkPodsAPIListUnchanged(b *testing.B) {
	s, err := New(Config{URL: "http://127.0.0.1:1", PodsAPISocket: "/nowhere", LinkInterval: -1}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	var pods []*corev1.Pod
	for i := range fixtures.Build().Pods.Items {
		pods = append(pods, &fixtures.Build().Pods.Items[i])
	}
	kubelet := &listOnly{pods: pods}
	f := &podsAPIFeed{s: s, listPods: kubelet.list, pods: map[string]*lifecycle.Pod{}, touched: map[string]bool{}}
	ctx := context.Background()
	if _, err := f.reconcile(ctx, new([]string)); err != nil {
		b.Fatal(err)
	}
	answer := f.answer
	f.listPods = func(_ context.Context, a *[]byte) error { *a = answer; return nil }
	b.ReportAllocs()
	b.SetBytes(int64(len(answer)))
	for b.Loop() {
		if changed, err := f.reconcile(ctx, new([]string)); err != nil || changed {
			b.Fatal(changed, err)
		}
	}
}

// TestPodsAPIRefusedListIsNoHeartbeat: a list the kubelet refuses
// (rate-limited) says nothing of its health: the watch goes on, and the last
// success stays the last answer's (a refused list once counted as one).
func TestPodsAPIRefusedListIsNoHeartbeat(t *testing.T) {
	first, st := heartbeats(t, true)
	if !st.Health.LastSuccess.Equal(first.Health.LastSuccess) || st.Health.Mode != ModePodsAPI {
		t.Fatalf("after refused lists: last success %s (the first answer's %s), mode %s", st.Health.LastSuccess, first.Health.LastSuccess, st.Health.Mode)
	}
}
