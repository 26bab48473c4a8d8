package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// TestAPIPodOf: the API server's copy reduced to what the model compares;
// restarts sum the init and regular containers' restartCount, as the
// kubelet's side of the comparison (lifecycle apiBehind) does.
func TestAPIPodOf(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: "u1", Namespace: "ns", Name: "p",
			Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "hash"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: at},
			},
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", RestartCount: 1}},
			ContainerStatuses:     []corev1.ContainerStatus{{Name: "a", RestartCount: 2}, {Name: "b", RestartCount: 4}},
		},
	}
	want := lifecycle.APIPod{UID: "u1", Namespace: "ns", Name: "p", Phase: lifecycle.PhaseRunning,
		Ready: "False", ReadyChanged: at.Time, Restarts: 7, MirrorOf: "hash"}
	if got := APIPodOf(p); got != want {
		t.Fatalf("APIPodOf:\n got %+v\nwant %+v", got, want)
	}
}

// TestNoLeaseReadAsTheLinkReturns: the Lease a view sees expired is
// confirmed by a GET at first contact and after a quiet ProbeInterval, but
// not by the probe that finds the API server back after an outage: the
// kubelet, healed with it, renews the Lease within its 10 s, and a zone's
// agents would otherwise all GET their Leases in the heal's second (make
// scale, issue 24). A ProbeInterval later, an expired Lease is read again.
func TestNoLeaseReadAsTheLinkReturns(t *testing.T) {
	var down atomic.Bool
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/readyz" && down.Load():
			http.Error(w, "cut", http.StatusServiceUnavailable)
		case r.URL.Path == "/readyz":
			fmt.Fprint(w, "ok")
		case strings.HasSuffix(r.URL.Path, "/leases/node-a"):
			gets.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"node-a","namespace":"kube-node-lease"},`+
				`"spec":{"leaseDurationSeconds":40,"renewTime":"2026-01-01T00:00:00.000000Z"}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cs, err := newClientFor(&rest.Config{Host: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const every = 2 * time.Second
	v := NewAPIView(cs, cs, "node-a", every, quiet())
	ctx := context.Background()
	v.probeOnce(ctx)
	if g := gets.Load(); g != 1 || !v.Health().Up {
		t.Fatalf("first contact: %d Lease GETs, health %+v; want 1, up", g, v.Health())
	}
	down.Store(true)
	v.probeOnce(ctx)
	if v.Health().Up {
		t.Fatal("up while /readyz fails")
	}
	v.mu.Lock()
	v.readAt = v.readAt.Add(-2 * every) // the outage lasted longer than a ProbeInterval
	v.mu.Unlock()
	down.Store(false)
	v.probeOnce(ctx)
	if g := gets.Load(); g != 1 || !v.Health().Up {
		t.Fatalf("back after an outage: %d Lease GETs, health %+v; want still 1, up", g, v.Health())
	}
	testenv.Eventually(t, "the expired Lease read again a ProbeInterval after the return", 10*every, func() bool {
		v.probeOnce(ctx)
		return gets.Load() == 2
	})
}
