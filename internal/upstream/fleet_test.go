package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/podlife/podlife/lifecycle"
)

// After an outage, the backlog waits a time drawn below DeliveryJitter and
// below the outage's length before its first Event, drawn again after each
// failure (APIUp lags a heal, so it cannot say when). The agents of a healed rack spread out instead of
// arriving in the same second (client-go jitters its own Event retries:
// k8s.io/client-go/tools/events/event_broadcaster.go, wait.Jitter).
func TestDeliveryJitterAfterAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name          string
		jitter, drawn time.Duration
		outage        time.Duration
		wantLimit     time.Duration
	}{
		{"capped by the jitter", 30 * time.Second, 12 * time.Second, 5 * time.Minute, 30 * time.Second},
		{"capped by a short outage", 30 * time.Second, 3 * time.Second, 8 * time.Second, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			j := openJournal(t)
			r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a", DeliveryJitter: tc.jitter}, quiet())
			now := t0
			r.Now = func() time.Time { return now }
			var limit time.Duration
			r.Rand = func(n time.Duration) time.Duration { limit = n; return tc.drawn }
			failing := true
			cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
				if failing {
					return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
				}
				return false, nil, nil
			})
			var trs []lifecycle.Transition
			for i := range 5 {
				trs = append(trs, crash(string(rune('a'+i)), i))
			}
			j.Append(t0, trs)
			if _, err := r.DeliverOnce(context.Background()); err == nil {
				t.Fatal("delivered while failing")
			}
			now, failing = t0.Add(tc.outage), false
			if n, err := r.DeliverOnce(context.Background()); n != 0 || err != nil {
				t.Fatalf("first round after the outage: %d delivered, %v; want the wait first", n, err)
			}
			if limit != tc.wantLimit {
				t.Fatalf("wait drawn below %s, want %s", limit, tc.wantLimit)
			}
			now = now.Add(tc.drawn - time.Millisecond)
			if n, _ := r.DeliverOnce(context.Background()); n != 0 {
				t.Fatalf("%d delivered before the drawn wait ended", n)
			}
			now = now.Add(time.Millisecond)
			if n, err := r.DeliverOnce(context.Background()); n != 5 || err != nil {
				t.Fatalf("after the wait: %d delivered, %v; want all 5", n, err)
			}
			if p, _ := j.Pending(0); len(p) != 0 {
				t.Fatalf("%d pending", len(p))
			}
			// The next outage draws again.
			if r.jittered {
				t.Fatal("jitter not reset when the outage's backlog drained")
			}
		})
	}
	t.Run("from the API server's return, before the first Event", func(t *testing.T) {
		now, up := t0, false
		failing := true
		r, cs := cutReporter(t, 30*time.Second, &now, &failing)
		r.Rand = func(time.Duration) time.Duration { return 10 * time.Second }
		r.APIUp = func() bool { return up }
		if _, err := r.DeliverOnce(context.Background()); err == nil {
			t.Fatal("delivered while failing")
		}
		now, up, failing = t0.Add(5*time.Minute), true, false
		cs.ClearActions()
		if n, err := r.DeliverOnce(context.Background()); n != 0 || err != nil || len(cs.Actions()) != 0 {
			t.Fatalf("the API server back: %d delivered (%v), %d requests; want none before the drawn wait", n, err, len(cs.Actions()))
		}
		now = now.Add(10 * time.Second)
		if n, err := r.DeliverOnce(context.Background()); n != 2 || err != nil {
			t.Fatalf("after the wait: %d delivered, %v; want both", n, err)
		}
	})
	// APIUp lags a cut: it still says up when the first deliveries fail. A
	// wait drawn then, before the API server is really back, must not use up
	// the one that spreads the agents at the heal.
	t.Run("a wait drawn while the API server only seemed up is drawn again", func(t *testing.T) {
		now, failing := t0, true
		r, _ := cutReporter(t, 30*time.Second, &now, &failing)
		draws := 0
		r.Rand = func(time.Duration) time.Duration { draws++; return time.Second }
		r.APIUp = func() bool { return true } // the view has not seen the cut yet
		r.DeliverOnce(context.Background())   // fails: the cut begins
		now = now.Add(2 * time.Second)
		r.DeliverOnce(context.Background()) // a wait drawn: APIUp says up
		now = now.Add(time.Second)
		if _, err := r.DeliverOnce(context.Background()); err == nil {
			t.Fatal("delivered during the cut")
		}
		now, failing = now.Add(5*time.Minute), false
		if n, _ := r.DeliverOnce(context.Background()); n != 0 || draws != 2 {
			t.Fatalf("at the heal: %d delivered, %d waits drawn; want none delivered and a second wait", n, draws)
		}
	})
	t.Run("off", func(t *testing.T) {
		now, fail := t0, true
		r, _ := cutReporter(t, 0, &now, &fail)
		r.Rand = func(time.Duration) time.Duration { t.Fatal("drawn with DeliveryJitter 0"); return 0 }
		r.DeliverOnce(context.Background())
		fail = false
		if n, err := r.DeliverOnce(context.Background()); n != 2 || err != nil {
			t.Fatalf("%d delivered, %v", n, err)
		}
	})
}

// cutReporter is a Reporter over a fake API server whose Event creates fail
// while *failing, its clock at *now, with two crashes journaled.
func cutReporter(t *testing.T, jitter time.Duration, now *time.Time, failing *bool) (*Reporter, *fake.Clientset) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a", DeliveryJitter: jitter}, quiet())
	r.Now = func() time.Time { return *now }
	cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if *failing {
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		return false, nil, nil
	})
	j.Append(t0, []lifecycle.Transition{crash("a", 0), crash("b", 1)})
	return r, cs
}

// An agent that restarts (a DaemonSet rollout) patches no Node whose
// conditions are already as desired: it adopts the Node's own copy (the
// lesson of node-problem-detector#124). A condition that differs is patched.
func TestNodeConditionsAdoptTheNodesCopy(t *testing.T) {
	cs := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}})
	patches := 0
	cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		return false, nil, nil
	})
	up := lifecycle.SourceHealth{Configured: true, Up: true}
	down := lifecycle.SourceHealth{Configured: true, LastError: "connection refused"}
	first := NewNodeConditions(fakeAPI{cs}, "node-a", quiet())
	if err := first.Sync(context.Background(), map[string]lifecycle.SourceHealth{"runtime": up, "kubelet": up}, t0); err != nil {
		t.Fatal(err)
	}
	node := func() ([]corev1.NodeCondition, bool) {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), "node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Status.Conditions, true
	}
	// Until the Node is known (its informer has not listed yet), a restarted
	// agent waits for it, up to AdoptWait, asking again (Due) meanwhile.
	known := false
	restarted := NewNodeConditions(fakeAPI{cs}, "node-a", quiet())
	restarted.Applied = func() ([]corev1.NodeCondition, bool) {
		if !known {
			return nil, false
		}
		return node()
	}
	healthy := map[string]lifecycle.SourceHealth{"runtime": up, "kubelet": up}
	if err := restarted.Sync(context.Background(), healthy, t0); err != nil || patches != 1 || !restarted.Due(t0) {
		t.Fatalf("with the Node unknown: %d patches (%v), due %v; want 1, due", patches, err, restarted.Due(t0))
	}
	known = true
	if err := restarted.Sync(context.Background(), healthy, t0.Add(time.Second)); err != nil || patches != 1 || restarted.Due(t0.Add(time.Second)) {
		t.Fatalf("the Node known a second later: %d patches (%v), want still 1, not due", patches, err)
	}
	// A Node never known (say it may not be listed): patched after AdoptWait.
	blind := NewNodeConditions(fakeAPI{cs}, "node-a", quiet())
	blind.Applied = func() ([]corev1.NodeCondition, bool) { return nil, false }
	blind.Sync(context.Background(), healthy, t0)
	if err := blind.Sync(context.Background(), healthy, t0.Add(AdoptWait)); err != nil || patches != 2 || blind.Due(t0.Add(AdoptWait)) {
		t.Fatalf("the Node never known: %d patches (%v) after AdoptWait, want 2, not due", patches, err)
	}
	again := NewNodeConditions(fakeAPI{cs}, "node-a", quiet())
	again.Applied = node
	if err := again.Sync(context.Background(), map[string]lifecycle.SourceHealth{"runtime": up, "kubelet": up}, t0); err != nil || patches != 2 {
		t.Fatalf("restart with the Node's conditions as desired: %d patches (%v), want still 2", patches, err)
	}
	if err := again.Sync(context.Background(), map[string]lifecycle.SourceHealth{"runtime": down, "kubelet": up}, t0); err != nil || patches != 3 {
		t.Fatalf("a changed condition: %d patches (%v), want 3", patches, err)
	}
}

// One token bucket for all of an agent's clients (ClientConfig.RateLimiter):
// every request of each asks it.
func TestClientsShareOneRateLimiter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer srv.Close()
	l := &countingLimiter{RateLimiter: flowcontrol.NewTokenBucketRateLimiter(100, 100)}
	for range 2 {
		rc := &rest.Config{Host: srv.URL, RateLimiter: l}
		c, err := newClientFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.readyz(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.n.Load(); got != 2 {
		t.Fatalf("the shared limiter was asked %d times for 2 requests of 2 clients", got)
	}
}

type countingLimiter struct {
	flowcontrol.RateLimiter
	n atomic.Int32
}

func (c *countingLimiter) Wait(ctx context.Context) error {
	c.n.Add(1)
	return c.RateLimiter.Wait(ctx)
}

// When the view asks the API server: never while watch events come and the
// Lease they show is valid; after a quiet ProbeInterval; at once while down;
// and to confirm a Lease the watch shows expired, at most once a
// ProbeInterval.
func TestProbeDue(t *testing.T) {
	every := 15 * time.Second
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	lease := func(renewed time.Time) *coordinationv1.Lease {
		d := int32(40)
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renewed}, LeaseDurationSeconds: &d}}
	}
	for _, tc := range []struct {
		name    string
		up      bool
		heard   time.Duration // ago
		renewed time.Duration // ago; 0: no Lease watched
		readAgo time.Duration // the Lease's last GET; 0: never
		want    time.Duration
	}{
		{"steady: the Lease renewed 3 s ago", true, 3 * time.Second, 3 * time.Second, 0, 12 * time.Second},
		{"quiet for the interval", true, 15 * time.Second, 15 * time.Second, 0, 0},
		{"down", false, time.Second, time.Second, 0, 0},
		{"the watched Lease expired", true, time.Second, 41 * time.Second, 0, 0},
		{"expired, read 5 s ago", true, time.Second, 41 * time.Second, 5 * time.Second, 14 * time.Second},
		{"no Lease watched (no RBAC for it)", true, time.Second, 0, 0, 0},
		{"the Lease expires before the quiet interval ends", true, time.Second, 35 * time.Second, 0, 5*time.Second + 10*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewAPIView(&Client{}, &Client{}, "node-a", every, quiet())
			v.health.Up, v.heard = tc.up, now.Add(-tc.heard)
			if tc.renewed > 0 {
				if err := v.leases.GetStore().Add(lease(now.Add(-tc.renewed))); err != nil {
					t.Fatal(err)
				}
			}
			if tc.readAgo > 0 {
				v.readAt = now.Add(-tc.readAgo)
			}
			if got := v.probeDue(now); got != tc.want {
				t.Fatalf("due in %s, want %s", got, tc.want)
			}
		})
	}
}

// While deliveries fail, a wake-up (a new transition) does not cut the
// backoff short unless the API server answers again: new transitions alone
// do not make an agent of a cut-off rack ask sooner.
func TestBackoffIgnoresWakesWhileTheAPIServerIsDown(t *testing.T) {
	r := NewReporter(fakeAPI{fake.NewClientset()}, openJournal(t), ReporterConfig{Node: "node-a"}, quiet())
	var calls atomic.Int32
	r.APIUp = func() bool { return calls.Add(1) >= 2 } // down, then up
	wake := make(chan struct{})
	done := make(chan bool)
	go func() { done <- r.sleep(context.Background(), time.Hour, wake, true) }()
	wake <- struct{}{} // taken while down: still sleeping
	select {
	case wake <- struct{}{}: // up: ends the sleep
	case <-done:
		t.Fatal("a wake ended the backoff while the API server was down")
	}
	if !<-done || calls.Load() != 2 {
		t.Fatalf("APIUp asked %d times, want 2 (the first wake ignored)", calls.Load())
	}
	// Without a failure, a wake ends the sleep at once.
	go func() { done <- r.sleep(context.Background(), time.Hour, wake, false) }()
	wake <- struct{}{}
	if !<-done || calls.Load() != 2 {
		t.Fatalf("APIUp asked %d times after a success, want no more", calls.Load())
	}
}

type fakeLeases struct{ cs *fake.Clientset }

func (f fakeLeases) GetLease(ctx context.Context, ns, name string) (*coordinationv1.Lease, error) {
	return f.cs.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
}
func (f fakeLeases) CreateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	return f.cs.CoordinationV1().Leases(l.Namespace).Create(ctx, l, metav1.CreateOptions{})
}
func (f fakeLeases) UpdateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	return f.cs.CoordinationV1().Leases(l.Namespace).Update(ctx, l, metav1.UpdateOptions{})
}

// The heartbeat Lease is written at start, every Interval, and on a change
// of the summary at most once per MinGap: nothing more. An agent restarted
// takes the Lease over.
func TestHeartbeatWritesOnlyWhenDue(t *testing.T) {
	cs := fake.NewClientset()
	writes := 0
	for _, verb := range []string{"create", "update"} {
		cs.PrependReactor(verb, "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
			writes++
			return false, nil, nil
		})
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	h := NewHeartbeat(fakeLeases{cs}, "podlife", "node-a", 5*time.Minute, quiet())
	calm := NodeSummary{KubeletLink: "up"}
	failing := NodeSummary{KubeletLink: "up", Failing: 2}
	for _, step := range []struct {
		after  time.Duration
		s      NodeSummary
		writes int
	}{
		{0, calm, 1},                   // at start
		{10 * time.Second, calm, 1},    // nothing changed
		{20 * time.Second, failing, 1}, // a change, within MinGap of the last write
		{time.Minute, failing, 2},      // the change, once MinGap passed
		{time.Minute, failing, 2},      // no change since
		{5 * time.Minute, failing, 3},  // renewed every Interval
	} {
		now = now.Add(step.after)
		if err := h.Sync(context.Background(), step.s, now); err != nil {
			t.Fatal(err)
		}
		if writes != step.writes {
			t.Fatalf("at +%s with %+v: %d writes, want %d", step.after, step.s, writes, step.writes)
		}
	}
	l, err := cs.CoordinationV1().Leases("podlife").Get(context.Background(), "podlife-node-a", metav1.GetOptions{})
	if err != nil || l.Annotations[AnnotationPodsFailing] != "2" || *l.Spec.LeaseDurationSeconds != 600 || !l.Spec.RenewTime.Time.Equal(now) {
		t.Fatalf("lease %+v, %v", l, err)
	}
	restarted := NewHeartbeat(fakeLeases{cs}, "podlife", "node-a", 5*time.Minute, quiet())
	if err := restarted.Sync(context.Background(), calm, now.Add(time.Second)); err != nil || writes != 4 {
		t.Fatalf("a restarted agent: %d writes, %v; want it to update the Lease it finds", writes, err)
	}
}

// A round's entries are acknowledged only once their series are written: a
// failed write leaves them pending (an agent killed then loses nothing).
// A series that ends inside a round (the window passed, or MaxSeries) has its
// unwritten repeats written before the next Event starts.
func TestSeriesWrittenBeforeAck(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	fail := false
	cs.PrependReactor("patch", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	j.Append(t0, []lifecycle.Transition{crash("a", 0)})
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	fail = true
	j.Append(t0, []lifecycle.Transition{crash("a", 1), crash("a", 2)})
	if _, err := r.DeliverOnce(context.Background()); err == nil {
		t.Fatal("a failed series write went unnoticed")
	}
	if p, _ := j.Pending(0); len(p) != 2 {
		t.Fatalf("%d pending after the series write failed, want the 2 repeats", len(p))
	}
	// The agent dies; another starts on the same journal.
	fail = false
	r = NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
	if _, err := r.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]int{}
	for _, e := range events(t, cs) {
		seqs, _ := ParseSeqRanges(e.Annotations[AnnotationSeqs])
		for _, q := range seqs {
			seen[q]++
		}
	}
	if len(seen) != 3 || seen[1] != 1 || seen[2] != 1 || seen[3] != 1 {
		t.Fatalf("seqs in Events %v, want 1, 2, 3 once each", seen)
	}

	// One round: two repeats, then one after the window: the two are
	// written into the first Event, the last starts another.
	cs2 := fake.NewClientset()
	j2 := openJournal(t)
	r2 := NewReporter(fakeAPI{cs2}, j2, ReporterConfig{Node: "node-a"}, quiet())
	j2.Append(t0, []lifecycle.Transition{crash("a", 0)})
	r2.DeliverOnce(context.Background())
	j2.Append(t0, []lifecycle.Transition{crash("a", 1), crash("a", 2), crash("a", 2+int(SeriesWindow/time.Second)+1)})
	if _, err := r2.DeliverOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := events(t, cs2)
	if len(evs) != 2 || evs[0].Annotations[AnnotationSeqs] != "1-3" || evs[1].Annotations[AnnotationSeqs] != "4" {
		t.Fatalf("%d events: %v", len(evs), evs)
	}
	// MaxSeries: the series ends, the next repeat starts a new Event.
	var trs []lifecycle.Transition
	for i := range MaxSeries + 1 {
		trs = append(trs, crash("c", 1000+i))
	}
	j2.Append(t0, trs)
	for range 3 {
		if _, err := r2.DeliverOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	var counts []int32
	for _, e := range events(t, cs2) {
		if e.Regarding.Name == "c" {
			c := int32(1)
			if e.Series != nil {
				c = e.Series.Count
			}
			counts = append(counts, c)
		}
	}
	if len(counts) != 2 || counts[0]+counts[1] != MaxSeries+1 || max(counts[0], counts[1]) != MaxSeries {
		t.Fatalf("series counts %v, want %d and 1", counts, MaxSeries)
	}
}

// An expired Lease is "the kubelet is cut off" only once a GET after its
// expiry confirmed it: a watch stuck on a dead connection shows an old one.
// And probes keep a quarter interval apart whatever asks for one.
func TestLeaseExpiryNeedsAGet(t *testing.T) {
	v := NewAPIView(&Client{}, &Client{}, "node-a", 15*time.Second, quiet())
	d := int32(40)
	renewed := time.Now().Add(-41 * time.Second)
	if err := v.leases.GetStore().Add(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renewed}, LeaseDurationSeconds: &d}}); err != nil {
		t.Fatal(err)
	}
	if l := v.Lease(); !l.RenewTime.IsZero() {
		t.Fatalf("an expired Lease no GET confirmed: %+v, want unknown", l)
	}
	v.readAt = time.Now() // a GET after the expiry found nothing newer
	if l := v.Lease(); !l.RenewTime.Equal(renewed) {
		t.Fatalf("a confirmed expired Lease: %+v", l)
	}
	now := time.Now()
	v.probedAt = now.Add(-time.Second) // down, and probed a second ago
	if got, want := v.probeDue(now), 15*time.Second/4-time.Second; got != want {
		t.Fatalf("due in %s after a probe a second ago, want %s", got, want)
	}
}

// A heartbeat that cannot be written (a missing Role, say) backs off from
// 10 s doubling to the interval instead of asking at every check.
func TestHeartbeatBacksOff(t *testing.T) {
	cs := fake.NewClientset()
	calls := 0
	cs.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		return true, nil, errors.New(`leases.coordination.k8s.io "podlife-node-a" is forbidden`)
	})
	h := NewHeartbeat(fakeLeases{cs}, "podlife", "node-a", 5*time.Minute, quiet())
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		after time.Duration
		calls int
	}{{0, 1}, {5 * time.Second, 1}, {5 * time.Second, 2}, {10 * time.Second, 2}, {10 * time.Second, 3}} {
		now = now.Add(step.after)
		h.Sync(context.Background(), NodeSummary{}, now)
		if calls != step.calls {
			t.Fatalf("+%s: %d calls, want %d", step.after, calls, step.calls)
		}
	}
}

// A crash loop folds its repeats into one Event's series, so a cut may
// first show as a series PATCH that fails, not as a create: it starts the
// partition all the same, so the backlog waits its turn at the heal (make
// scale, issue 24: at a zone's heal only 12 of 50 agents held theirs), and
// the partition's summary counts each restart once, however often it was
// tried (before: once per try).
func TestAFailedSeriesWriteStartsAPartition(t *testing.T) {
	cs := fake.NewClientset()
	j := openJournal(t)
	r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a", DeliveryJitter: 30 * time.Second}, quiet())
	now := t0
	r.Now = func() time.Time { return now }
	r.Running = func(string) (int, int) { return 1, 1 }
	r.Rand = func(time.Duration) time.Duration { return 10 * time.Second }
	failing := false
	for _, verb := range []string{"create", "patch"} {
		cs.PrependReactor(verb, "events", func(k8stesting.Action) (bool, runtime.Object, error) {
			if failing {
				return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
			}
			return false, nil, nil
		})
	}
	restart := func(i int) lifecycle.Transition {
		return lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Namespace: "ns", Pod: "a", UID: "uid-a",
			Container: "app", From: fmt.Sprint(i), To: fmt.Sprint(i + 1), Reason: "Error", ExitCode: exit(3),
			ObservedAt: t0.Add(time.Duration(i) * 10 * time.Second)}
	}
	j.Append(t0, []lifecycle.Transition{restart(0)})
	if n, err := r.DeliverOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("before the cut: %d delivered, %v", n, err)
	}
	failing = true
	j.Append(t0, []lifecycle.Transition{restart(1)})
	now = now.Add(10 * time.Second)
	if _, err := r.DeliverOnce(context.Background()); err == nil {
		t.Fatal("delivered during the cut")
	}
	if since := r.Stats().PartitionSince; !since.Equal(restart(1).ObservedAt) {
		t.Fatalf("partition since %v, want the repeat's time %v", since, restart(1).ObservedAt)
	}
	for range 4 { // tried again and again during the cut, each try after its wait
		now = now.Add(11 * time.Second)
		r.DeliverOnce(context.Background())
	}
	if p, _ := j.Pending(0); len(p) != 1 {
		t.Fatalf("%d pending during the cut, want 1", len(p))
	}
	now, failing = now.Add(5*time.Minute), false
	if n, err := r.DeliverOnce(context.Background()); n != 0 || err != nil {
		t.Fatalf("at the heal: %d delivered, %v; want the drawn wait first", n, err)
	}
	now = now.Add(10 * time.Second)
	if n, err := r.DeliverOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("after the wait: %d delivered, %v", n, err)
	}
	var notes []string
	for _, e := range events(t, cs) {
		if e.Reason == "PartitionSummary" {
			notes = append(notes, e.Note)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "; 1 restarts, 0 exits") {
		t.Fatalf("summaries %q, want one counting the 1 restart of the cut", notes)
	}
}
