package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/lifecycle"
)

// patcher fails its first fail PATCHes, then takes them, counting each.
type patcher struct {
	mu          sync.Mutex
	fail, calls int
}

func (p *patcher) PatchNodeStatus(context.Context, string, []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.calls <= p.fail {
		return errors.New("the server is currently unable to handle the request")
	}
	return nil
}

func (p *patcher) count() int { p.mu.Lock(); defer p.mu.Unlock(); return p.calls }

// A node-condition PATCH that failed is sent again RetryAfter later though
// nothing changed in between (a quiet node: no transition follows), and not
// before; once it landed, nothing more is sent.
func TestNodeConditionsRetriedOnAQuietNode(t *testing.T) {
	p := &patcher{fail: 1}
	a := New(Options{Node: "n", Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Upstream: &Upstream{Conditions: upstream.NewNodeConditions(p, "n", slog.New(slog.NewTextHandler(io.Discard, nil)))}})
	sources := map[string]lifecycle.SourceHealth{
		lifecycle.SourceKubelet: {Configured: true, LastError: "connection refused"},
		lifecycle.SourceRuntime: {Configured: true, Up: true},
	}
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	steps := []struct {
		at      time.Duration
		changed bool
		calls   int
	}{
		{0, true, 1},            // the change: its PATCH fails
		{time.Second, false, 1}, // quiet, too soon to retry
		{upstream.RetryAfter - time.Millisecond, false, 1}, // still too soon
		{upstream.RetryAfter, false, 2},                    // retried: lands
		{2 * upstream.RetryAfter, false, 2},                // landed: nothing to send
	}
	for _, s := range steps {
		a.syncConditions(ctx, sources, true, s.changed, t0.Add(s.at))
		if got := p.count(); got != s.calls {
			t.Fatalf("at +%s: %d PATCHes, want %d", s.at, got, s.calls)
		}
	}
	sources[lifecycle.SourceKubelet] = lifecycle.SourceHealth{Configured: true, Up: true}
	a.syncConditions(ctx, sources, false, true, t0.Add(time.Hour)) // a change, but the API server is down: nothing sent
	if p.count() != 2 {
		t.Fatalf("%d PATCHes with the API server down", p.count())
	}
}
