package agent

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/lifecycle"
)

// What comes with time alone appears on the agent's next tick, no source
// having changed, with or without an API server: here the kubelet's copy of
// a container lagging the runtime past the mismatch grace. (The tick once
// only renewed the snapshot's time where no API server was configured, and
// such a mismatch waited for a source to change.)
func TestTickCorrelatesWithoutChange(t *testing.T) {
	var mu sync.Mutex
	now := fixtures.Now
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, f := generatedAgent(t, func(o *Options) { o.Now, o.MismatchGrace = clock, 2*time.Second })
	// The runtime saw a container exit; the kubelet still says it runs.
	f.mu.Lock()
	var exited *lifecycle.Container
	for i := range f.rt.Containers {
		if c := *f.rt.Containers[i]; c.State == lifecycle.RuntimeRunning {
			c.State, c.FinishedAt, c.ExitCode, exited = lifecycle.RuntimeExited, fixtures.Now, 1, &c
			f.rt.Containers = slices.Clone(f.rt.Containers) // a change is a new record
			f.rt.Containers[i] = exited
			break
		}
	}
	f.rt.Generation++
	f.mu.Unlock()
	if exited == nil {
		t.Fatal("the generated node has no running container")
	}
	a.Correlate(context.Background())
	for _, r := range a.Since(time.Time{}) {
		if r.Kind == lifecycle.TransitionMismatchAppeared && r.UID == exited.PodUID {
			t.Fatalf("a mismatch within the grace: %+v", r)
		}
	}
	// Past the grace; the sources are as fresh as before and unchanged.
	sub := a.Subscribe(0)
	defer sub.Stop()
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	defer running(a)()
	timeout := time.After(15 * time.Second) // the agent ticks once a second
	for {
		select {
		case r := <-sub.C:
			if r.Kind == lifecycle.TransitionMismatchAppeared && r.UID == exited.PodUID && r.Container == exited.Name {
				return
			}
		case <-timeout:
			t.Fatalf("no MismatchAppeared for %s/%s %s past the grace (snapshot at %s)", exited.PodNamespace, exited.PodName,
				exited.Name, a.Snapshot().At)
		}
	}
}

// running runs a (its loop: sources, ticks, correlations) until stop is
// called, which returns once it has stopped.
func running(a *Agent) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// A correlation waits while each yield brings a change (a source applying
// the next event of a burst), until two yields in a row bring none or the
// window ends, and takes the signals it saw.
func TestSettle(t *testing.T) {
	start := time.Unix(0, 0)
	for _, tc := range []struct {
		name    string
		changes []bool // whether yield i brings a change; past the end, every yield does
		endless bool
		want    int
	}{
		{"nothing on its way", []bool{false, false}, false, 2},
		{"a burst of three", []bool{true, true, true, false, false}, false, 5},
		{"a lull of one yield", []bool{true, false, true, false, false}, false, 5},
		{"changes never stop: the window ends", nil, true, 30},
	} {
		rt, kl := make(chan struct{}, 1), make(chan struct{}, 1)
		clock := start
		yields := 0
		yield := func() {
			if yields < len(tc.changes) && tc.changes[yields] || yields >= len(tc.changes) && tc.endless {
				rt <- struct{}{}
				if yields%2 == 0 {
					kl <- struct{}{}
				}
			}
			yields++
			clock = clock.Add(100 * time.Microsecond)
		}
		got := settle([]<-chan struct{}{rt, kl, nil}, yield, start.Add(coalesceWindow), func() time.Time { return clock })
		if got != tc.want || yields != got {
			t.Errorf("%s: settled after %d yields (%d made), want %d", tc.name, got, yields, tc.want)
		}
		if len(rt) != 0 || len(kl) != 0 {
			t.Errorf("%s: signals left behind: runtime %d, kubelet %d", tc.name, len(rt), len(kl))
		}
	}
}
