package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeMetrics is a kubelet's /metrics and /metrics/probes whose answers a
// test sets between reads.
type fakeMetrics struct {
	mu      sync.Mutex
	metrics string // /metrics body
	probes  string // /metrics/probes body
	code    int    // /metrics/probes status (0: 200)
}

func (f *fakeMetrics) set(fn func(*fakeMetrics)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	switch r.URL.Path {
	case "/metrics":
		fmt.Fprint(w, f.metrics)
	case "/metrics/probes":
		if f.code != 0 {
			http.Error(w, "not now", f.code)
			return
		}
		fmt.Fprint(w, f.probes)
	default:
		http.NotFound(w, r)
	}
}

// metricsSource is a Source over a fake kubelet that is read only when the
// test says so (no /pods polls, no link loop).
func metricsSource(t *testing.T) (*Source, *fakeMetrics) {
	t.Helper()
	f := &fakeMetrics{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	s, err := New(Config{URL: srv.URL, LinkInterval: -1, Timeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// requestsText is a kubelet /metrics excerpt: client-go's
// rest_client_requests_total (k8s.io/client-go rest/request.go
// updateURLMetrics: code="<error>" when the request got no HTTP answer), by
// method, beside families that merely share its prefix.
func requestsText(ok200, ok201, conflict, errGET, errPUT int) string {
	return fmt.Sprintf(`# HELP rest_client_requests_total [ALPHA] Number of HTTP requests, partitioned by status code, method, and host.
# TYPE rest_client_requests_total counter
rest_client_requests_total{code="200",host="10.0.0.1:6443",method="GET"} %d
rest_client_requests_total{code="201",host="10.0.0.1:6443",method="POST"} %d
rest_client_requests_total{code="409",host="10.0.0.1:6443",method="PUT"} %d
rest_client_requests_total{code="<error>",host="10.0.0.1:6443",method="GET"} %d
rest_client_requests_total{code="<error>",host="10.0.0.1:6443",method="PUT"} %d
rest_client_request_duration_seconds_bucket{host="10.0.0.1:6443",verb="GET",le="0.005"} 120
`, ok200, ok201, conflict, errGET, errPUT)
}

// TestLinkAnsweredAndFailed reads a kubelet's /metrics as the link loop does:
// between two reads, requests that failed without an answer and none
// answered mean the kubelet is cut off from the API server; failed requests
// beside answered ones (a watch that broke, one request that timed out while
// others came back) do not, and an answer after a cut heals it. Any HTTP
// status, 409 as much as 200, is an answer.
func TestLinkAnsweredAndFailed(t *testing.T) {
	s, f := metricsSource(t)
	ctx := context.Background()
	steps := []struct {
		name                                   string
		ok200, ok201, conflict, errGET, errPUT int
		cut                                    bool
	}{
		{"first read primes", 300, 7, 1, 2, 0, false},
		{"one answered, more failed: not cut", 301, 7, 1, 7, 1, false},
		{"only a 409 answered, others failed: not cut", 301, 7, 2, 10, 2, false},
		{"failed, none answered: cut", 301, 7, 2, 12, 3, true},
		{"no request at all: still cut", 301, 7, 2, 12, 3, true},
		{"still failing: still cut", 301, 7, 2, 14, 3, true},
		{"one answered, more failed: healed", 301, 8, 2, 20, 4, false},
	}
	var lastAnswered time.Time
	for i, st := range steps {
		f.set(func(f *fakeMetrics) { f.metrics = requestsText(st.ok200, st.ok201, st.conflict, st.errGET, st.errPUT) })
		before := time.Now()
		s.readLink(ctx)
		got := s.State()
		if got.Link.CutOff != st.cut {
			t.Fatalf("step %d (%s): link %+v (metrics error %q), want cut off %v", i, st.name, got.Link, s.linkErr, st.cut)
		}
		if st.cut && (got.Link.Since.IsZero() || !got.Link.Since.Equal(lastAnswered) ||
			!strings.Contains(got.Link.Evidence, "failed without an answer and none was answered since")) {
			t.Fatalf("step %d (%s): link %+v, want cut since the last read with an answer (%s)", i, st.name, got.Link, lastAnswered)
		}
		if !st.cut {
			// The tracker's time of a read lies between these two.
			if got.Link.Since.After(time.Now()) || (!got.Link.Since.IsZero() && got.Link.Since.Before(before)) {
				t.Fatalf("step %d (%s): healed since %s, not during this read", i, st.name, got.Link.Since)
			}
			lastAnswered = s.links.lastAnswered
		}
	}
}

// probesText is a kubelet's /metrics/probes (pkg/kubelet/prober/prober_manager.go
// ProberResults: prober_probe_total by probe_type, result, pod_uid, container).
func probesText(ok, failed int) string {
	return fmt.Sprintf(`# TYPE prober_probe_total counter
prober_probe_total{container="app",namespace="life",pod="web",pod_uid="u1",probe_type="Readiness",result="successful"} %d
prober_probe_total{container="app",namespace="life",pod="web",pod_uid="u1",probe_type="Readiness",result="failed"} %d
`, ok, failed)
}

// TestReadinessDroppedWhenProbesUnreadable: while the kubelet is cut off its
// prober's readiness is read from /metrics/probes; once that cannot be read
// (an error status, a refused permission), what was read before is dropped
// (State.Readiness nil, the agent woken) rather than kept as if current: the
// correlator then shows such containers' readiness as unknown, not ready
// (lifecycle TestReadinessUnknownWhileProbesUnreadable).
func TestReadinessDroppedWhenProbesUnreadable(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusForbidden} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			s, f := metricsSource(t)
			ctx := context.Background()
			f.set(func(f *fakeMetrics) { f.probes = probesText(10, 0) })
			s.readProbes(ctx) // primes
			f.set(func(f *fakeMetrics) { f.probes = probesText(12, 0) })
			s.readProbes(ctx)
			if r, ok := s.State().Readiness["u1/app"]; !ok || !r.Ready {
				t.Fatalf("readiness %+v, want u1/app ready from the prober", s.State().Readiness)
			}
			gen := s.State().Generation
			select { // drain: the next change must signal again
			case <-s.Updates():
			default:
				t.Fatal("readiness read without waking the agent")
			}
			f.set(func(f *fakeMetrics) { f.code = code })
			s.readProbes(ctx)
			st := s.State()
			if st.Readiness != nil {
				t.Fatalf("after /metrics/probes answered %d: readiness %+v kept, want none", code, st.Readiness)
			}
			if st.Generation == gen {
				t.Fatal("readiness dropped without a new generation")
			}
			select {
			case <-s.Updates():
			default:
				t.Fatal("readiness dropped without waking the agent")
			}
			if !strings.Contains(s.probesErr, fmt.Sprint(code)) {
				t.Fatalf("probes error %q does not say %d", s.probesErr, code)
			}
			// Readable again: a result counts only from the next new one.
			f.set(func(f *fakeMetrics) { f.code, f.probes = 0, probesText(12, 3) })
			s.readProbes(ctx)
			if r, ok := s.State().Readiness["u1/app"]; !ok || r.Ready {
				t.Fatalf("readable again, probe failed since: %+v, want u1/app not ready", s.State().Readiness)
			}
		})
	}
}
