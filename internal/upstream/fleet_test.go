package upstream

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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

// After an outage, the first Event delivered is followed by a wait drawn
// below DeliveryJitter and below the outage's length before the rest of the
// backlog: the agents of a healed rack spread out instead of arriving in the
// same second (client-go jitters its own Event retries:
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
			if n, err := r.DeliverOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("first round after the outage: %d delivered, %v; want 1 then the wait", n, err)
			}
			if limit != tc.wantLimit {
				t.Fatalf("wait drawn below %s, want %s", limit, tc.wantLimit)
			}
			now = now.Add(tc.drawn - time.Millisecond)
			if n, _ := r.DeliverOnce(context.Background()); n != 0 {
				t.Fatalf("%d delivered before the drawn wait ended", n)
			}
			now = now.Add(time.Millisecond)
			if n, err := r.DeliverOnce(context.Background()); n != 4 || err != nil {
				t.Fatalf("after the wait: %d delivered, %v; want the other 4", n, err)
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
	t.Run("off", func(t *testing.T) {
		cs := fake.NewClientset()
		j := openJournal(t)
		r := NewReporter(fakeAPI{cs}, j, ReporterConfig{Node: "node-a"}, quiet())
		r.Rand = func(time.Duration) time.Duration { t.Fatal("drawn with DeliveryJitter 0"); return 0 }
		fail := true
		cs.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
			if fail {
				return true, nil, errors.New("connection refused")
			}
			return false, nil, nil
		})
		j.Append(t0, []lifecycle.Transition{crash("a", 0), crash("b", 1)})
		r.DeliverOnce(context.Background())
		fail = false
		if n, err := r.DeliverOnce(context.Background()); n != 2 || err != nil {
			t.Fatalf("%d delivered, %v", n, err)
		}
	})
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
	restarted := NewNodeConditions(fakeAPI{cs}, "node-a", quiet())
	restarted.Applied = func() ([]corev1.NodeCondition, bool) { return nil, false }
	// Until the Node is known, nothing is adopted: the first Sync patches.
	if err := restarted.Sync(context.Background(), map[string]lifecycle.SourceHealth{"runtime": up, "kubelet": up}, t0); err != nil || patches != 2 {
		t.Fatalf("with the Node unknown: %d patches (%v), want 2", patches, err)
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
