package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// flakyKubelet serves /pods from body, or fails with fail while it is set.
type flakyKubelet struct {
	mu   sync.Mutex
	body []byte
	fail http.HandlerFunc
	hits int
}

func (f *flakyKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	body, fail := f.body, f.fail
	f.hits++
	f.mu.Unlock()
	if fail != nil {
		fail(w, r)
		return
	}
	w.Write(body)
}

func (f *flakyKubelet) set(body []byte, fail http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if body != nil {
		f.body = body
	}
	f.fail = fail
}

// drained reports whether an update was signalled since the last call.
func drained(s *Source) bool {
	select {
	case <-s.Updates():
		return true
	default:
		return false
	}
}

// A kubelet that was up and then fails is down until it answers again:
// Up flips both ways, the error is recorded and cleared, the generation
// moves and an update is signalled at each flip, and the last good pods are
// kept while it is down.
func TestSourceUpDownUp(t *testing.T) {
	tests := []struct {
		name string
		fail http.HandlerFunc
		want string
	}{
		{"connection dropped", func(w http.ResponseWriter, _ *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}, "EOF"},
		{"503", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "kubelet is shutting down")
		}, "HTTP 503: kubelet is shutting down"},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>") }, "decode /pods"},
		{"hung", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := &flakyKubelet{body: generated(t)}
			srv := httptest.NewServer(k)
			defer srv.Close()
			defer k.set(nil, nil) // release a hung handler before Close waits for it
			s, err := New(Config{URL: srv.URL, Timeout: 2 * time.Second}, quiet())
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			type step struct {
				fail http.HandlerFunc
				up   bool
			}
			var gen uint64
			for i, st := range []step{{nil, true}, {tc.fail, false}, {tc.fail, false}, {nil, true}} {
				k.set(nil, st.fail)
				s.Poll(ctx)
				got := s.State()
				h := got.Health
				if h.Up != st.up {
					t.Fatalf("poll %d: Up %v, want %v (error %q)", i, h.Up, st.up, h.LastError)
				}
				if st.up && h.LastError != "" || !st.up && !strings.Contains(h.LastError, tc.want) {
					t.Fatalf("poll %d: error %q, want %q", i, h.LastError, map[bool]string{true: "", false: tc.want}[st.up])
				}
				if len(got.Pods) != 10 {
					t.Fatalf("poll %d: %d pods: the last good answer must be kept while down", i, len(got.Pods))
				}
				// The second failure in a row changes nothing; every flip does.
				flip := i != 2
				if moved := got.Generation != gen; moved != flip {
					t.Fatalf("poll %d: generation %d -> %d, want a change: %v", i, gen, got.Generation, flip)
				}
				if signalled := drained(s); signalled != flip {
					t.Fatalf("poll %d: update signalled %v, want %v", i, signalled, flip)
				}
				gen = got.Generation
			}
		})
	}
}

// withRestarts is the generated /pods answer with the crash-looping worker's
// restart count set to n (one digit: every answer has the same length).
func withRestarts(t testing.TB, n int) []byte {
	t.Helper()
	body := generated(t)
	const old = `"restartCount":5,`
	if bytes.Count(body, []byte(old)) != 1 || n < 0 || n > 9 {
		t.Fatalf("the generated /pods has %d %s (restarts %d)", bytes.Count(body, []byte(old)), old, n)
	}
	return bytes.Replace(body, []byte(old), []byte(fmt.Sprintf(`"restartCount":%d,`, n)), 1)
}

// Successive /pods answers of the same length that differ in one pod are
// all seen (the source reads into a buffer it reuses: what it compares the
// next answer with must not be that buffer), and across polls the pods that
// did not change are the same values, not decoded again.
func TestSameLengthChangesAreSeen(t *testing.T) {
	k := &flakyKubelet{}
	srv := httptest.NewServer(k)
	defer srv.Close()
	s, err := New(Config{URL: srv.URL}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	const worker = 3 // index of worker-6f7c9-klmno
	var prev State
	for i, restarts := range []int{5, 6, 7, 7, 6, 9, 5} {
		body := withRestarts(t, restarts)
		if i > 0 && len(body) != len(withRestarts(t, 5)) {
			t.Fatal("answers differ in length")
		}
		k.set(body, nil)
		s.Poll(context.Background())
		st := s.State()
		if !st.Health.Up || len(st.Pods) != 10 || st.Pods[worker].Name != "worker-6f7c9-klmno" {
			t.Fatalf("poll %d: health %+v, %d pods", i, st.Health, len(st.Pods))
		}
		if got := st.Pods[worker].Containers[0].RestartCount; got != int32(restarts) {
			t.Fatalf("poll %d: worker restarts %d, the kubelet says %d: a same-length change was missed", i, got, restarts)
		}
		if i == 0 {
			prev = st
			continue
		}
		changed := restarts != int(prev.Pods[worker].Containers[0].RestartCount)
		if moved := st.Generation != prev.Generation; moved != changed {
			t.Fatalf("poll %d: generation %d -> %d with the answer changed: %v", i, prev.Generation, st.Generation, changed)
		}
		for j := range st.Pods {
			reused := unsafe.StringData(st.Pods[j].UID) == unsafe.StringData(prev.Pods[j].UID)
			if want := j != worker || !changed; reused != want {
				t.Fatalf("poll %d: pod %s reused %v, want %v", i, st.Pods[j].Name, reused, want)
			}
		}
		prev = st
	}
}
