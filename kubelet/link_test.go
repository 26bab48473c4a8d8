package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The kubelet exposes client-go's rest_client_requests_total on /metrics
// (k8s.io/component-base/metrics/prometheus/restclient): code="<error>" for
// a request that got no HTTP answer.
func TestParseRequestCounts(t *testing.T) {
	f, err := os.Open("testdata/kubelet-metrics-excerpt.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, found, err := parseRequestCounts(f)
	if err != nil || !found || c.answered != 362 || c.failed != 4 {
		t.Fatalf("got %+v found=%v err=%v, want answered 362 failed 4", c, found, err)
	}
	for _, bad := range []string{
		`rest_client_requests_total{code="200" 5`,
		`rest_client_requests_total{code="200"} five`,
	} {
		if _, _, err := parseRequestCounts(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, found, err := parseRequestCounts(strings.NewReader("up 1\n")); found || err != nil {
		t.Errorf("no family: found=%v err=%v", found, err)
	}
}

func TestLinkTracker(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	var l linkTracker
	steps := []struct {
		answered, failed float64
		cut, changed     bool
	}{
		{100, 0, false, false}, // first read primes
		{110, 0, false, false}, // answered
		{110, 0, false, false}, // idle: no request at all keeps the state
		{110, 2, true, true},   // failures and no answer: cut since the last answer
		{110, 5, true, false},
		{111, 5, false, true}, // one answer heals
		{5, 0, false, false},  // counters reset: the kubelet restarted
	}
	for i, s := range steps {
		now := t0.Add(time.Duration(i) * 5 * time.Second)
		changed := l.observe(requestCounts{s.answered, s.failed}, now)
		if changed != s.changed || l.link.CutOff != s.cut {
			t.Fatalf("step %d: changed=%v cut=%v, want %v %v (%+v)", i, changed, l.link.CutOff, s.changed, s.cut, l.link)
		}
		if i == 3 && !l.link.Since.Equal(t0.Add(5*time.Second)) {
			t.Fatalf("cut since %s, want the last read with an answer (%s)", l.link.Since, t0.Add(5*time.Second))
		}
	}
}

// A kubelet with webhook authentication that loses the API server rejects
// the token it accepted before (its TokenReview fails): the link is cut since
// the last accepted poll. A refused connection (the kubelet gone) says
// nothing of the link and clears it.
func TestLinkFromAuthFailure(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		if status.Load() == 200 {
			w.Write([]byte(`{"kind":"PodList","items":[]}`))
		}
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, LinkInterval: -1, Timeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Poll(ctx)
	if st := s.State(); !st.Health.Up || st.Link.CutOff {
		t.Fatalf("first poll: %+v", st)
	}
	accepted := s.State().Health.LastSuccess
	status.Store(401)
	s.Poll(ctx)
	st := s.State()
	if st.Health.Up || !st.Link.CutOff || !st.Link.Since.Equal(accepted) || !strings.Contains(st.Link.Evidence, "rejects the token it accepted") {
		t.Fatalf("after a 401: up=%v link %+v, want cut since %s", st.Health.Up, st.Link, accepted)
	}
	srv.Close()
	s.Poll(ctx)
	if st := s.State(); st.Link.CutOff {
		t.Fatalf("a refused connection kept the link cut: %+v (%s)", st.Link, st.Health.LastError)
	}
}

// Over the Pods API, /metrics is the only request carrying podlife's token:
// a 401 to it after an accepted read says the same as a 401 to /pods.
func TestLinkFromMetricsAuthFailure(t *testing.T) {
	var status atomic.Int32
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		if status.Load() == 200 {
			w.Write([]byte("# TYPE rest_client_requests_total counter\nrest_client_requests_total{code=\"200\",host=\"x\",method=\"GET\"} 5\n"))
		}
	}))
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, LinkInterval: -1, Timeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.readLink(ctx)
	if st := s.State(); st.Link.CutOff {
		t.Fatalf("first read: %+v", st.Link)
	}
	status.Store(401)
	s.readLink(ctx)
	if st := s.State(); !st.Link.CutOff || !strings.Contains(st.Link.Evidence, "rejects the token it accepted") {
		t.Fatalf("after a 401 to /metrics: link %+v, want cut off", st.Link)
	}
}

func TestReadinessProbes(t *testing.T) {
	text := func(ok, failed int) string {
		return fmt.Sprintf(`# TYPE prober_probe_total counter
prober_probe_total{container="app",namespace="life",pod="web",pod_uid="u1",probe_type="Readiness",result="successful"} %d
prober_probe_total{container="app",namespace="life",pod="web",pod_uid="u1",probe_type="Readiness",result="failed"} %d
prober_probe_total{container="app",namespace="life",pod="web",pod_uid="u1",probe_type="Liveness",result="failed"} 99
`, ok, failed)
	}
	var r readinessTracker
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	steps := []struct {
		ok, failed int
		known      bool
		ready      bool
	}{
		{10, 0, false, false}, // first read primes
		{11, 0, true, true},   // only successes since: ready
		{11, 0, true, true},   // no new result: unchanged
		{11, 2, true, false},  // only failures since: not ready
		{12, 3, true, false},  // both: unchanged
	}
	for i, s := range steps {
		counts, err := parseReadinessProbes(strings.NewReader(text(s.ok, s.failed)))
		if err != nil {
			t.Fatal(err)
		}
		if c := counts["u1/app"]; c.succeeded != float64(s.ok) || c.failed != float64(s.failed) {
			t.Fatalf("step %d: parsed %+v (the liveness probe must not count)", i, c)
		}
		got, ok := r.observe(counts, t0.Add(time.Duration(i)*5*time.Second))["u1/app"]
		if ok != s.known || got.Ready != s.ready {
			t.Fatalf("step %d: %+v known=%v, want known=%v ready=%v", i, got, ok, s.known, s.ready)
		}
	}
}

// An answer the agent does not read (here a kubelet without /metrics) still
// leaves the connection to be used again: one connection for three reads.
func TestUnreadAnswerKeepsTheConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	s, err := New(Config{URL: srv.URL, LinkInterval: -1, Timeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.readLink(context.Background())
	}
	if st := s.State(); !strings.Contains(s.linkErr, "HTTP 404") {
		t.Fatalf("the reads did not reach the server's 404: %q %+v", s.linkErr, st.Link)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("three reads of an unread answer took %d connections, want 1", n)
	}
}
