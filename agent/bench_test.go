package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/kubelet"
)

// benchAgent runs an agent with the real sources against an in-process
// simulated node of n pods × 4 containers and waits for its first full
// snapshot.
func benchAgent(b *testing.B, n int) *Agent {
	b.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dir, err := os.MkdirTemp("", "podlife-bench-") // short: a unix socket path must fit 108 bytes
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	node, err := simnode.Start(ctx, simnode.Options{Dir: dir, Pods: n}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Close() })
	rt, err := cri.New(cri.Config{Endpoint: node.CRIEndpoint}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	kl, err := kubelet.New(kubelet.Config{URL: node.KubeletURL}, quiet)
	if err != nil {
		b.Fatal(err)
	}
	a := New(Options{Node: "bench", Runtime: rt, Kubelet: kl, Log: quiet})
	go a.Run(ctx)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s := a.Snapshot(); a.Ready() && len(s.Pods) >= n {
			return a
		}
		if time.Now().After(deadline) {
			b.Fatalf("no snapshot of %d pods within 20s", n)
		}
	}
}

// BenchmarkMetricsScrape is one /metrics answer at 250 pods: "changed" right
// after a snapshot in which one pod's view changed (its const metrics built
// again, the pod families gathered again), "all-changed" when every view is
// new (the first scrape), "cached" between changes (a new snapshot of the
// same views, as most correlations make, included).
func BenchmarkMetricsScrape(b *testing.B) {
	a := benchAgent(b, 250)
	uid := a.Snapshot().Pods[0].UID
	for _, changed := range []string{"changed", "all-changed", "cached"} {
		b.Run(changed, func(b *testing.B) {
			var buf bytes.Buffer
			b.ReportAllocs()
			for b.Loop() {
				a.podText.mu.Lock()
				switch changed {
				case "changed":
					delete(a.podText.byUID, uid)
				case "all-changed":
					a.podText.byUID = nil
				}
				a.podText.mu.Unlock()
				buf.Reset()
				if err := a.exposition(&buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len()), "bytes/scrape")
		})
	}
}

// BenchmarkPodsAPI is one GET /api/v1/pods answer at 250 pods: "cached"
// between changes, "one-changed" right after a snapshot in which one pod's
// view changed (the common case), "all-changed" when every view is new (the
// first answer, or after a source came back).
func BenchmarkPodsAPI(b *testing.B) {
	a := benchAgent(b, 250)
	h := a.Handler()
	req := httptest.NewRequest("GET", "/api/v1/pods", nil)
	uid := a.Snapshot().Pods[0].UID
	for _, changed := range []string{"cached", "one-changed", "all-changed"} {
		b.Run(changed, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				a.podJSON.mu.Lock()
				switch changed {
				case "one-changed":
					a.podJSON.key = nil
					delete(a.views.byUID, uid)
				case "all-changed":
					a.podJSON.key = nil
					a.views.byUID = nil
				}
				a.podJSON.mu.Unlock()
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
				n = w.Body.Len()
			}
			b.ReportMetric(float64(n), "bytes/answer")
		})
	}
}
