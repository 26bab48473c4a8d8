package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openJournal(t *testing.T) *journal.Journal {
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func exit(n int32) *int32 { return &n }

func crash(pod string, i int) lifecycle.Transition {
	return lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: lifecycle.SourceKubelet,
		Namespace: "ns", Pod: pod, UID: "uid-" + pod, Container: "app", From: "Running", To: "Waiting/CrashLoopBackOff",
		Reason: "CrashLoopBackOff", ObservedAt: t0.Add(time.Duration(i) * time.Second)}
}

// fakeAPI gives podlife's components a fake clientset, so tests can use its
// object tracker and reactors.
type fakeAPI struct{ cs *fake.Clientset }

func (f fakeAPI) CreateEvent(ctx context.Context, ev *eventsv1.Event) error {
	_, err := f.cs.EventsV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	return err
}

func (f fakeAPI) PatchEvent(ctx context.Context, ns, name string, patch []byte) error {
	_, err := f.cs.EventsV1().Events(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (f fakeAPI) PatchNodeStatus(ctx context.Context, node string, patch []byte) error {
	_, err := f.cs.CoreV1().Nodes().PatchStatus(ctx, node, patch)
	return err
}

func events(t *testing.T, cs *fake.Clientset) []eventsv1.Event {
	l, err := cs.EventsV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	return l.Items
}

func TestClassifyTransition(t *testing.T) {
	tests := []struct {
		tr     lifecycle.Transition
		reason string
		typ    string
	}{
		{crash("p", 0), "CrashLoopBackOff", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Reason: "OOMKilled", ExitCode: exit(137), From: "1", To: "2"}, "OOMKilled", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Reason: "Error", ExitCode: exit(1)}, "ContainerRestarted", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: "kubelet", To: "Waiting/ErrImagePull", Reason: "ErrImagePull"}, "ImagePullFailed", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: "kubelet", To: "Waiting/InvalidImageName", Reason: "InvalidImageName"}, "ImagePullFailed", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: "runtime", To: "EXITED", Reason: "OOMKilled", ExitCode: exit(137)}, "OOMKilled", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: "runtime", To: "EXITED", Reason: "Error", ExitCode: exit(2)}, "ContainerExited", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: "runtime", To: "EXITED", ExitCode: exit(0)}, "", ""},
		{lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: "kubelet", To: "Running"}, "", ""},
		{lifecycle.Transition{Kind: lifecycle.TransitionStageChanged, From: "Serving", To: "Failing"}, "StageFailing", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionStageChanged, From: "Starting", To: "Serving"}, "StageServing", "Normal"},
		{lifecycle.Transition{Kind: lifecycle.TransitionMismatchAppeared, To: "sandbox-not-ready"}, "ViewsDisagree", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionSourceDown, Source: "kubelet", Detail: "refused"}, "KubeletUnreachable", "Warning"},
		{lifecycle.Transition{Kind: lifecycle.TransitionSourceUp, Source: "runtime"}, "ContainerRuntimeRecovered", "Normal"},
		{lifecycle.Transition{Kind: lifecycle.TransitionPodAdded}, "", ""},
		{lifecycle.Transition{Kind: lifecycle.TransitionStageStuck, From: "Starting", To: "Starting"}, "StuckInStarting", "Warning"},
	}
	for _, tc := range tests {
		reason, typ, _ := classifyTransition(tc.tr)
		if reason != tc.reason || typ != tc.typ {
			t.Errorf("%s %s->%s: got %q/%q, want %q/%q", tc.tr.Kind, tc.tr.From, tc.tr.To, reason, typ, tc.reason, tc.typ)
		}
	}
}

func TestReporterDeliversInOrderOnceWithRealTimes(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	trs := []lifecycle.Transition{crash("a", 1), {Kind: lifecycle.TransitionPodAdded, Pod: "b"}, crash("b", 2)}
	trs[0].HappenedAt = t0.Add(-time.Minute)
	if _, err := j.Append(t0, trs); err != nil {
		t.Fatal(err)
	}
	if n, err := r.DeliverOnce(context.Background()); err != nil || n != 3 {
		t.Fatalf("delivered %d, %v", n, err)
	}
	evs := events(t, cs)
	if len(evs) != 2 || evs[0].Regarding.Name != "a" || !evs[0].EventTime.Time.Equal(t0.Add(-time.Minute)) ||
		evs[0].ReportingController != "podlife" || evs[0].ReportingInstance != "node-a" || evs[0].Reason != "CrashLoopBackOff" {
		t.Fatalf("events %+v", evs)
	}
	if !strings.HasPrefix(evs[1].Name, "b.podlife.") {
		t.Fatalf("name %q", evs[1].Name)
	}
	if p, _ := j.Pending(0); len(p) != 0 {
		t.Fatalf("still pending: %d", len(p))
	}
	s := r.Stats()
	if s.Delivered != 2 || s.Skipped != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Two journals (two nodes, or one node's journal recreated) whose first
// entries concern a pod of the same name give two Events, not one Event and
// an AlreadyExists taken for a delivery.
func TestEventNamesDifferAcrossJournals(t *testing.T) {
	cs := fake.NewClientset()
	var names []string
	for _, node := range []string{"node-a", "node-b"} {
		j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), journal.Options{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		es, err := j.Append(t0, []lifecycle.Transition{crash("web", 1)}) // the pod's name reused on another node
		if err != nil {
			t.Fatal(err)
		}
		r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: node}, quiet())
		ev, ok := r.eventFor(es[0])
		if !ok {
			t.Fatal("no event for a crash loop")
		}
		names = append(names, ev.Name)
		if n, err := r.DeliverOnce(context.Background()); err != nil || n != 1 {
			t.Fatalf("%s: delivered %d, %v", node, n, err)
		}
	}
	if names[0] == names[1] {
		t.Fatalf("both journals' first entries are Event %s", names[0])
	}
	if evs := events(t, cs); len(evs) != 2 || evs[0].ReportingInstance == evs[1].ReportingInstance {
		t.Fatalf("%d events for two journals' crash loops, want 2 (names %v)", len(evs), names)
	}
}

func TestReporterRetryIsIdempotentAndOrdered(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	r.Now = func() time.Time { return t0.Add(7*time.Minute + 12*time.Second) }
	r.Running = func(string) (int, int) { return 1, 1 }
	// The first create reaches the server but its answer is lost; then the
	// server fails for a while.
	calls := 0
	cs.PrependReactor("create", "events", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		switch {
		case calls == 1:
			obj := a.(k8stesting.CreateAction).GetObject()
			if err := cs.Tracker().Create(a.GetResource(), obj, a.GetNamespace()); err != nil {
				return true, nil, err
			}
			return true, nil, errors.New("connection reset by peer")
		case calls <= 3:
			return true, nil, apierrors.NewTooManyRequests("slow down", 1)
		}
		return false, nil, nil
	})
	trs := []lifecycle.Transition{crash("a", 0), crash("b", 1),
		{Kind: lifecycle.TransitionContainerRestarted, Namespace: "ns", Pod: "b", UID: "uid-b", Container: "app",
			From: "1", To: "2", Reason: "OOMKilled", ExitCode: exit(137), ObservedAt: t0.Add(2 * time.Second)}}
	if _, err := j.Append(t0, trs); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := r.DeliverOnce(context.Background()); err == nil {
			t.Fatalf("attempt %d succeeded against a failing server", i)
		}
		if p, _ := j.Pending(0); len(p) != 3 {
			t.Fatalf("entries acked while failing: %d pending", len(p))
		}
	}
	if r.Stats().PartitionSince.IsZero() {
		t.Fatal("partition not noticed")
	}
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := events(t, cs)
	var got []string
	for _, e := range evs {
		got = append(got, e.Regarding.Name+":"+e.Reason)
	}
	slices.Sort(got[3:]) // the summaries share one time
	want := "a:CrashLoopBackOff b:CrashLoopBackOff b:OOMKilled a:PartitionSummary b:PartitionSummary"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %v, want %s", got, want)
	}
	for _, e := range evs[3:] {
		if e.Regarding.Name == "b" && e.Note != "1/1 containers kept running for 7m12s while the node was unreachable; 1 restarts, 0 exits, last exit 137 OOMKilled" {
			t.Fatalf("summary %q", e.Note)
		}
	}
	if !r.Stats().PartitionSince.IsZero() {
		t.Fatal("partition not cleared")
	}
}

// Repeats of a pod's Event (same reason and type) within SeriesWindow are
// counted into its series, as client-go's events/v1 recorder does
// (k8s.io/client-go/tools/events/event_broadcaster.go: an isomorphic Event
// is a PATCH of series.count and lastObservedTime, not a new Event), written
// once per series at the end of a round: a backlog of repeats costs one
// write. A repeat after the window starts a new Event.
func TestReporterFoldsRepeatsIntoASeries(t *testing.T) {
	cs := fake.NewClientset()
	patches := 0
	cs.PrependReactor("patch", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		return false, nil, nil
	})
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	now := t0.Add(time.Minute)
	r.Now = func() time.Time { return now }
	var trs []lifecycle.Transition
	for i := 0; i < 10; i++ { // ten crash loops in ten seconds
		trs = append(trs, crash("a", i))
	}
	trs = append(trs, crash("a", 70), crash("b", 71)) // a minute later; another pod
	if _, err := j.Append(t0, trs); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := events(t, cs)
	if len(evs) != 2 || patches != 1 {
		t.Fatalf("%d events and %d patches, want 2 events (a, b) and 1 patch (a round's repeats in one write)", len(evs), patches)
	}
	a := evs[0]
	if a.Regarding.Name != "a" || a.Series == nil || a.Series.Count != 11 || !a.Series.LastObservedTime.Time.Equal(t0.Add(70*time.Second)) ||
		a.Annotations[AnnotationSeqs] != "1-11" || a.Labels["podlife.dev/seq"] != "1" || !strings.Contains(a.Annotations[AnnotationLast], "CrashLoopBackOff") {
		t.Fatalf("series %+v, annotations %v, labels %v", a.Series, a.Annotations, a.Labels)
	}
	if evs[1].Series != nil || evs[1].Annotations[AnnotationSeqs] != "12" {
		t.Fatalf("b: series %+v annotations %v", evs[1].Series, evs[1].Annotations)
	}
	if s := r.Stats(); s.Folded != 10 || s.Delivered != 2 {
		t.Fatalf("stats %+v", s)
	}
	// Steady state: each round's repeat is one write.
	add := func(i int) {
		tr := crash("a", i)
		if _, err := j.Append(t0, []lifecycle.Transition{tr}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.DeliverOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	add(100)
	add(101)
	if got := events(t, cs); len(got) != 2 || got[0].Series.Count != 13 || got[0].Annotations[AnnotationSeqs] != "1-11,13-14" || patches != 3 {
		t.Fatalf("after two repeats: %d events, count %d, seqs %s, %d patches; want 2, 13, 1-11,13-14, 3",
			len(got), got[0].Series.Count, got[0].Annotations[AnnotationSeqs], patches)
	}
	// After the window, a new Event.
	add(101 + int(SeriesWindow/time.Second) + 1)
	if got := events(t, cs); len(got) != 3 {
		t.Fatalf("%d events after a quiet window, want a new one", len(got))
	}
}

// A series whose Event is gone (its TTL passed) is created again for the
// repeats it never showed; a retried round counts nothing twice.
func TestReporterSeriesSurvivesAGoneEventAndRetries(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	fail := 0
	cs.PrependReactor("patch", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail > 0 {
			fail--
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	j.Append(t0, []lifecycle.Transition{crash("a", 0)})
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The write of two repeats fails; the round is retried.
	fail = 1
	j.Append(t0, []lifecycle.Transition{crash("a", 1), crash("a", 2)})
	if _, err := r.DeliverOnce(context.Background()); err == nil {
		t.Fatal("a failed series write went unnoticed")
	}
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The failed write started a partition: its summary is an Event too.
	evs := slices.DeleteFunc(events(t, cs), func(e eventsv1.Event) bool { return e.Reason == "PartitionSummary" })
	if len(evs) != 1 || evs[0].Series.Count != 3 || evs[0].Annotations[AnnotationSeqs] != "1-3" {
		t.Fatalf("%d events, series %+v, seqs %s; want 1 with count 3, 1-3", len(evs), evs[0].Series, evs[0].Annotations[AnnotationSeqs])
	}
	// The Event expires; the next repeats make a new one.
	if err := cs.EventsV1().Events("ns").Delete(context.Background(), evs[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	j.Append(t0, []lifecycle.Transition{crash("a", 3), crash("a", 4)})
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs = slices.DeleteFunc(events(t, cs), func(e eventsv1.Event) bool { return e.Reason == "PartitionSummary" })
	if len(evs) != 1 || evs[0].Series == nil || evs[0].Series.Count != 2 || evs[0].Annotations[AnnotationSeqs] != "4-5" || evs[0].Labels["podlife.dev/seq"] != "4" {
		t.Fatalf("after the Event was gone: %d events, %+v %v %v", len(evs), evs[0].Series, evs[0].Annotations, evs[0].Labels)
	}
}

func TestSeqRanges(t *testing.T) {
	for _, seqs := range [][]uint64{nil, {7}, {1, 2, 3}, {1, 2, 3, 5, 7, 8}, {10, 12}} {
		s := seqRanges(seqs)
		back, err := ParseSeqRanges(s)
		if err != nil || !slices.Equal(back, seqs) {
			t.Errorf("%v -> %q -> %v, %v", seqs, s, back, err)
		}
	}
	if got := seqRanges([]uint64{1, 2, 3, 5, 7, 8}); got != "1-3,5,7-8" {
		t.Errorf("ranges %q", got)
	}
	for _, bad := range []string{"x", "5-3", "1-", "1-99999999"} {
		if _, err := ParseSeqRanges(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestReporterRejectedEventsAreCountedNotRetried(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(corev1.Resource("namespaces"), "ns")
	})
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	j.Append(t0, []lifecycle.Transition{crash("a", 0)})
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Rejected != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNodeConditionsPatchOnlyOnChange(t *testing.T) {
	cs := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}})
	patches := 0
	cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		return false, nil, nil
	})
	nc := NewNodeConditions(fakeAPI{cs}, "node-a", quiet())
	up := lifecycle.SourceHealth{Configured: true, Up: true}
	down := lifecycle.SourceHealth{Configured: true, Up: false, LastError: "dial unix /run/containerd/containerd.sock: connect: connection refused"}
	steps := []struct {
		runtime, kubelet lifecycle.SourceHealth
		patches          int
		runtimeStatus    corev1.ConditionStatus
	}{
		{up, up, 1, corev1.ConditionFalse},
		{up, up, 1, corev1.ConditionFalse},
		{down, up, 2, corev1.ConditionTrue},
		{down, up, 2, corev1.ConditionTrue},
		{up, up, 3, corev1.ConditionFalse},
	}
	for i, s := range steps {
		if err := nc.Sync(context.Background(), map[string]lifecycle.SourceHealth{"runtime": s.runtime, "kubelet": s.kubelet}, t0); err != nil {
			t.Fatal(err)
		}
		n, _ := cs.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
		var st corev1.ConditionStatus
		for _, c := range n.Status.Conditions {
			if c.Type == CondRuntimeUnreachable {
				st = c.Status
				if st == corev1.ConditionTrue && !strings.Contains(c.Message, "connection refused") {
					t.Errorf("message %q", c.Message)
				}
			}
		}
		if patches != s.patches || st != s.runtimeStatus {
			t.Fatalf("step %d: %d patches, runtime condition %q", i, patches, st)
		}
	}

}

// While the kubelet is cut off from the API server (podlife reaching it),
// the restarts the cluster cannot hear of are delivered as they happen, and
// when the kubelet's link comes back each affected pod gets a
// KubeletPartitionSummary after the link's recovery Event.
func TestKubeletCutSummary(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	r.Now = func() time.Time { return t0.Add(90 * time.Second) }
	link := func(kind lifecycle.TransitionKind, at time.Duration) lifecycle.Transition {
		return lifecycle.Transition{Kind: kind, Source: lifecycle.SourceKubeletLink, ObservedAt: t0.Add(at)}
	}
	restart := lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Source: lifecycle.SourceRuntime,
		Namespace: "ns", Pod: "crash", UID: "uid-crash", Container: "app", From: "2", To: "3", Reason: "Error",
		ExitCode: exit(3), ObservedAt: t0.Add(30 * time.Second)}
	trs := []lifecycle.Transition{crash("before", 0), link(lifecycle.TransitionSourceDown, 10*time.Second), restart,
		link(lifecycle.TransitionSourceUp, 80*time.Second)}
	if _, err := j.Append(t0, trs); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events(t, cs) {
		got = append(got, e.Regarding.Name+":"+e.Reason)
		if e.Reason == "KubeletPartitionSummary" && e.Note != "while the kubelet was cut off from the API server for 1m20s: 1 restarts, 0 exits, last exit 3 Error" {
			t.Errorf("summary %q", e.Note)
		}
	}
	want := "before:CrashLoopBackOff node-a:KubeletAPIServerUnreachable crash:ContainerRestarted node-a:KubeletAPIServerRecovered crash:KubeletPartitionSummary"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %v\nwant %s", got, want)
	}
}

// Events about a static pod name its mirror pod's UID, the object kubectl
// describe lists Events for.
func TestEventsNameTheMirrorPod(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	r.APIUID = func(uid string) string {
		if uid == "uid-static" {
			return "mirror-uid"
		}
		return ""
	}
	if _, err := j.Append(t0, []lifecycle.Transition{crash("static", 0), crash("plain", 1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := events(t, cs)
	if len(evs) != 2 || evs[0].Regarding.UID != "mirror-uid" || evs[1].Regarding.UID != "uid-plain" {
		t.Fatalf("regarding %v, %v; want mirror-uid, uid-plain", evs[0].Regarding, evs[1].Regarding)
	}
}

// An Event for an ended attempt names the command that shows its last lines
// (the crash black box), and carries no log line itself by default, even
// when the black box has them.
func TestCrashEventsNameTheBlackBox(t *testing.T) {
	code := int32(3)
	r := NewReporter(nil, nil, ReporterConfig{Node: "node-a"}, quiet())
	r.LastLines = func(lifecycle.Transition) ([]string, bool) { return []string{"password=hunter2"}, true }
	for _, tr := range []lifecycle.Transition{
		{Kind: lifecycle.TransitionContainerRestarted, Namespace: "ns", Pod: "p", Container: "c", From: "1", To: "2", ExitCode: &code},
		{Kind: lifecycle.TransitionContainerRestarted, Namespace: "ns", Pod: "p", Container: "c", Reason: lifecycle.ReasonOOMKilled},
		{Kind: lifecycle.TransitionContainerState, Namespace: "ns", Pod: "p", Container: "c", Source: lifecycle.SourceRuntime,
			To: string(lifecycle.RuntimeExited), ExitCode: &code, Reason: "Error"},
		{Kind: lifecycle.TransitionContainerState, Namespace: "ns", Pod: "p", Container: "c", Source: lifecycle.SourceKubelet,
			To: "Terminated/Error", ExitCode: &code, Reason: "Error"},
	} {
		ev, ok := r.eventFor(journal.Entry{ID: "x", Transition: tr})
		if !ok || !endsAttempt(ev.Reason) || !strings.Contains(ev.Note, "last lines: podlife logs ns/p -c c --all") {
			t.Errorf("%s: note %q names no command for the last lines", ev.Reason, ev.Note)
		}
		lines, err := r.lastLines(tr)
		if err != nil || len(lines) != 0 {
			t.Errorf("%s: lines %q, %v without ReporterConfig.LogLines", ev.Reason, lines, err)
		}
	}
}

// With ReporterConfig.LogLines an exit's Event carries the last lines the
// black box kept: it waits, in order, for the capture, at most LinesWait
// after the exit was observed; then it goes without them.
func TestEventLogLinesOptIn(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a", LogLines: 2, LinesWait: 5 * time.Second}, quiet())
	now := t0.Add(time.Second)
	r.Now = func() time.Time { return now }
	kept := map[string][]string{}
	r.LastLines = func(t lifecycle.Transition) ([]string, bool) { l, ok := kept[t.Pod]; return l, ok }
	exited := func(pod string, i int) lifecycle.Transition {
		return lifecycle.Transition{Kind: lifecycle.TransitionContainerState, Source: lifecycle.SourceRuntime, Namespace: "ns", Pod: pod,
			UID: "uid-" + pod, Container: "app", To: string(lifecycle.RuntimeExited), ExitCode: exit(3), Reason: "Error",
			ObservedAt: t0.Add(time.Duration(i) * time.Second)}
	}
	if _, err := j.Append(t0, []lifecycle.Transition{exited("a", 0), crash("b", 0), exited("c", 0)}); err != nil {
		t.Fatal(err)
	}
	deliver := func(want int) {
		t.Helper()
		n, err := r.DeliverOnce(context.Background())
		if err != nil || len(events(t, cs)) != want {
			t.Fatalf("DeliverOnce: %d, %v; %d events, want %d", n, err, len(events(t, cs)), want)
		}
	}
	deliver(0) // a's capture is not kept: nothing goes, b neither (order)
	if due := r.waitingForLines(); !due.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("waiting for lines until %s, want %s", due, t0.Add(5*time.Second))
	}
	kept["a"] = []string{"first", "second", "third"}
	deliver(3 - 1) // a with its lines, b; c waits for its own
	now = t0.Add(5 * time.Second)
	deliver(3) // c's wait is over: without lines
	evs := events(t, cs)
	if !strings.HasSuffix(evs[0].Note, "; ended with: second | third") {
		t.Errorf("a's note %q, want its last 2 lines", evs[0].Note)
	}
	if strings.Contains(evs[2].Note, "ended with") || !r.waitingForLines().IsZero() {
		t.Errorf("c's note %q: want no lines once LinesWait is over", evs[2].Note)
	}
}

// withLines keeps the newest lines that fit in an Event's note, never half
// a character, never past the limit.
func TestWithLines(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes: cut at 256
	for _, tc := range []struct {
		note  string
		lines []string
		want  string
	}{
		{"n", nil, "n"},
		{"n", []string{"a", "b"}, "n; ended with: a | b"},
		{strings.Repeat("x", 1005), []string{"a", "b"}, strings.Repeat("x", 1005) + "; ended with: b"},
		{strings.Repeat("x", 1020), []string{"a"}, strings.Repeat("x", 1020)},
		{"n", []string{"old", long, long, long, long}, ""},
	} {
		got := withLines(tc.note, tc.lines, noteLimit)
		if len(got) > noteLimit || !utf8.ValidString(got) || (tc.want != "" && got != tc.want) {
			t.Errorf("withLines(%.20q, %d lines) = %q (%d bytes), want %q", tc.note, len(tc.lines), got, len(got), tc.want)
		}
		if tc.want == "" && (strings.Contains(got, "old") || strings.Count(got, " | ") != 2) {
			t.Errorf("withLines with long lines = %q: want the 3 newest that fit", got)
		}
	}
	if got := truncate("ab"+strings.Repeat("é", 10), 10); got != "abéé..." {
		t.Errorf("truncate = %q", got)
	}
}
