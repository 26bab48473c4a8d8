package agent

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Past its class's limit a request is refused at once with 429, Retry-After
// and a JSON error, counted; probes and /metrics are never refused; a freed
// slot admits again; watches have a limit of their own.
func TestAdmission(t *testing.T) {
	ad := newAdmission(2, 1, slog.New(slog.DiscardHandler))
	entered, release := make(chan string, 10), make(chan struct{})
	srv := httptest.NewServer(ad.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("block") == "true" {
			entered <- r.URL.String()
			<-release
		}
		w.Write([]byte("ok"))
	})))
	defer srv.Close()
	get := func(path string) (int, http.Header, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	var wg sync.WaitGroup
	for _, p := range []string{"/api/v1/pods?block=true", "/api/v1/journal?block=true", "/api/v1/transitions?watch=true&block=true"} {
		wg.Add(1)
		go func() { defer wg.Done(); get(p) }()
	}
	for range 3 {
		<-entered // both API slots and the watch slot taken
	}
	for _, p := range []string{"/api/v1/pods", "/api/v1/pods/ns/name", "/api/v1/transitions?watch=true"} {
		code, h, b := get(p)
		var e struct{ Error string }
		if code != http.StatusTooManyRequests || h.Get("Retry-After") != "1" || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("GET %s at the limit: %d Retry-After %q %s, want 429, Retry-After 1 and a JSON error", p, code, h.Get("Retry-After"), b)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, _ := get(p); code != 200 {
			t.Errorf("GET %s at the limit: %d, want 200 (never refused)", p, code)
		}
	}
	if api, watch := ad.rejectedTotal(classAPI), ad.rejectedTotal(classWatch); api != 2 || watch != 1 {
		t.Errorf("rejected api %d watch %d, want 2 and 1", api, watch)
	}
	if n := ad.inFlight(classAPI); n != 2 {
		t.Errorf("api in flight %d, want 2", n)
	}
	close(release)
	wg.Wait()
	if code, _, _ := get("/api/v1/pods"); code != 200 {
		t.Errorf("GET /api/v1/pods after the slots were freed: %d, want 200", code)
	}
	if n := ad.inFlight(classAPI) + ad.inFlight(classWatch); n != 0 {
		t.Errorf("in flight %d after every request ended, want 0", n)
	}
}
