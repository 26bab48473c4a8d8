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
