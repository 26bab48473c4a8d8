package kubelet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A /pods answer whose headers come at once but whose body trickles in
// slower than the timeout is a timeout, said as one: not a truncated answer.
func TestTrickledBodyTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.Write([]byte(`{"kind":"PodList","items":[`))
		rc := http.NewResponseController(w)
		rc.Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(200 * time.Millisecond):
				w.Write([]byte(" "))
				rc.Flush()
			}
		}
	}))
	defer srv.Close()
	st := pollOnce(t, Config{URL: srv.URL, Timeout: time.Second})
	e := st.Health.LastError
	for _, want := range []string{"timed out after", "bytes of the answer", "slower than the 1s timeout"} {
		if st.Health.Up || !strings.Contains(e, want) || strings.Contains(e, "\n") || strings.Contains(e, "truncated") {
			t.Fatalf("error %q, want one line containing %q (and not called truncated)", e, want)
		}
	}
}

// A 404 says where to look; an answer past the limit is refused and its
// buffer not kept for the next polls.
func TestNotFoundAndOversizedAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("huge") != "" {
			w.Write([]byte(strings.Repeat(" ", 4<<20)))
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	st := pollOnce(t, Config{URL: srv.URL, Timeout: 10 * time.Second})
	if want := "/pods: HTTP 404 (kubelet: 404 page not found): nothing serves /pods there; is kubelet-url the kubelet's base URL"; !strings.Contains(st.Health.LastError, want) {
		t.Errorf("404: %q, want %q", st.Health.LastError, want)
	}
	s, err := New(Config{URL: srv.URL, Timeout: 10 * time.Second, MaxBodyBytes: 1 << 20, LinkInterval: -1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.podsURL += "?huge=1"
	s.Poll(context.Background())
	if e := s.State().Health.LastError; !strings.Contains(e, "answer larger than the 1048576-byte limit") {
		t.Fatalf("oversized: %q", e)
	}
	if c := s.buf.Cap(); c > 1<<20 {
		t.Errorf("the read buffer keeps %d bytes after an answer past the limit", c)
	}
}

// A 401 right after the token file changed is the new token's rejection: the
// kubelet's link to the API server is not judged from it (the old token was
// accepted, so a 401 with it would mean the kubelet cannot review tokens).
func TestRotatedTokenRejectedIsNotACutLink(t *testing.T) {
	var good atomic.Value
	good.Store("first")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+good.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"kind":"PodList","items":[]}`))
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("first"), 0o600)
	// Plain HTTP sends no token: give the source one as an HTTPS one would have it.
	s, err := New(Config{URL: srv.URL, LinkInterval: -1, Timeout: 5 * time.Second}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.token.path = tok
	ctx := context.Background()
	s.Poll(ctx)
	if st := s.State(); !st.Health.Up {
		t.Fatalf("first poll: %+v", st.Health)
	}
	rotate := func(content string) {
		os.WriteFile(tok, []byte(content), 0o600)
		later := time.Now().Add(time.Second)
		os.Chtimes(tok, later, later)
	}
	rotate("unknown-token")
	s.Poll(ctx)
	st := s.State()
	if st.Health.Up || !strings.Contains(st.Health.LastError, "401 Unauthorized: the token was rejected (check kubelet-token-file") || st.Link.CutOff {
		t.Fatalf("rotated to a rejected token: up=%v error %q link %+v; want down, the token named, the link not cut", st.Health.Up, st.Health.LastError, st.Link)
	}
	// The same token rejected on later polls is still the token's fault.
	s.Poll(ctx)
	if st := s.State(); st.Link.CutOff {
		t.Fatalf("second 401 with the rotated token cut the link: %+v", st.Link)
	}
	good.Store("second")
	rotate("second")
	s.Poll(ctx)
	if st := s.State(); !st.Health.Up || st.Health.LastError != "" {
		t.Fatalf("rotated to an accepted token: %+v", st.Health)
	}
	// Now the accepted token is refused: the kubelet cannot review it.
	good.Store("none")
	s.Poll(ctx)
	if st := s.State(); st.Health.Up || !st.Link.CutOff {
		t.Fatalf("the accepted token refused: up=%v link %+v; want the link cut", st.Health.Up, st.Link)
	}
}

// The token file is read by the /pods poll and the /metrics reader at once.
func TestTokenFileConcurrentReads(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("a"), 0o600)
	f := &tokenFile{path: tok}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			f.read()
		}
	}()
	for i := 0; i < 200; i++ {
		if i%20 == 0 {
			os.WriteFile(tok, []byte(strings.Repeat("b", i/20+1)), 0o600)
			later := time.Now().Add(time.Duration(i) * time.Millisecond)
			os.Chtimes(tok, later, later)
		}
		if _, err := f.read(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
