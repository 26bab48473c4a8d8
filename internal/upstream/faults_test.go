package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// An API server that answers 429 with Retry-After: 2 is not asked again
// before two seconds have passed, however often new transitions wake the
// reporter, and the event is delivered once it answers.
func TestReporterHonoursRetryAfter(t *testing.T) {
	const retryAfter = 2 * time.Second
	var mu sync.Mutex
	var attempts []time.Time
	throttled := 4 // answers 429 this many times, then accepts
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(attempts) + 1
		if n <= throttled+1 { // then the partition's summary
			attempts = append(attempts, time.Now())
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n <= throttled {
			// As kube-apiserver's priority and fairness filter answers.
			w.Header().Set("Retry-After", fmt.Sprint(int(retryAfter.Seconds())))
			http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"kind":"Event","apiVersion":"events.k8s.io/v1","metadata":{"name":"x","namespace":"ns"}}`)
	}))
	defer srv.Close()
	// The agent's request timeout (NewClient's default).
	cs, err := newClientFor(&rest.Config{Host: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	j := openJournal(t)
	j.Append(t0, []lifecycle.Transition{crash("a", 0)})
	r := NewReporter(cs, j, ReporterConfig{Node: "node-a", RetryMin: 100 * time.Millisecond}, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// New transitions keep waking the reporter, as the agent does under churn.
	wake := make(chan struct{}, 1)
	go func() {
		for ctx.Err() == nil {
			select {
			case wake <- struct{}{}:
			default:
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	go func() { r.Run(ctx, wake); close(done) }()
	defer func() { cancel(); <-done }()
	// Wait for what is checked: the journal's acknowledgement of the entry
	// (Stats().Delivered is bumped before the journal acknowledges it).
	testenv.Eventually(t, "the event delivered and acknowledged in the journal", 30*time.Second, func() bool {
		p, err := j.Pending(0)
		return err == nil && len(p) == 0
	})
	mu.Lock()
	defer mu.Unlock()
	var gaps []string
	for i := 1; i < len(attempts); i++ {
		gap := attempts[i].Sub(attempts[i-1])
		gaps = append(gaps, gap.Round(10*time.Millisecond).String())
		// A little slack for timer granularity: never markedly early.
		if gap < retryAfter-100*time.Millisecond {
			t.Errorf("attempt %d came %s after the 429 that said Retry-After: %s", i+1, gap, retryAfter)
		}
	}
	t.Logf("attempts %d, gaps %s", len(attempts), strings.Join(gaps, " "))
	if len(attempts) != throttled+1 {
		t.Errorf("%d attempts, want %d", len(attempts), throttled+1)
	}
	if p, _ := j.Pending(0); len(p) != 0 {
		t.Errorf("%d entries still pending", len(p))
	}
}

// A probe refused with 401 says the credentials are not accepted, in one line.
func TestProbeUnauthorizedSaysSo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As kube-apiserver answers a token it does not know.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`)
	}))
	defer srv.Close()
	cs, err := newClientFor(&rest.Config{Host: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v := NewAPIView(cs, cs, "node-a", time.Second, quiet())
	v.probeOnce(context.Background())
	h := v.Health()
	if want := "apiserver: 401 Unauthorized: the API server does not accept podlife's credentials"; h.Up || !strings.HasPrefix(h.LastError, want) || strings.Contains(h.LastError, "\n") {
		t.Fatalf("health %+v, want one line starting %q", h, want)
	}
}
