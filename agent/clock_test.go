package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// The wall clock stepped back and forward (an injected clock: the agent's
// Options.Now). The rule: sequence order is time order. A transition never
// has an observedAt before the previous one's: while the clock is behind
// (stepped back) transitions keep the last observation time, until the clock
// catches up; a step forward is taken as it comes. So the history, the
// journal and ?since= stay in order, and the step back is said once.
func TestClockSteps(t *testing.T) {
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var mu sync.Mutex
	now := fixtures.Now
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	logs := &syncBuffer{}
	a, f := generatedAgent(t, func(o *Options) {
		o.Journal, o.Now, o.Log = j, clock, slog.New(slog.NewJSONHandler(logs, nil))
	})
	up := true
	steps := []struct {
		clock time.Duration // the wall clock, from fixtures.Now
		want  time.Duration // the observedAt of what this step sees
	}{
		{time.Second, time.Second},
		{2 * time.Second, 2 * time.Second},
		{2*time.Second - time.Hour, 2 * time.Second},                       // stepped back an hour: held
		{3*time.Second - time.Hour, 2 * time.Second},                       // still behind: held
		{2 * time.Second, 2 * time.Second},                                 // caught up exactly
		{3 * time.Second, 3 * time.Second},                                 // past it: the clock again
		{2*time.Hour + 3*time.Second, 2*time.Hour + 3*time.Second},         // stepped forward two hours: taken
		{2*time.Hour + 2990*time.Millisecond, 2*time.Hour + 3*time.Second}, // a small step back: held
		{2*time.Hour + 4*time.Second, 2*time.Hour + 4*time.Second},
	}
	firstSeq := a.seq + 1
	for i, st := range steps {
		mu.Lock()
		now = fixtures.Now.Add(st.clock)
		at := now
		mu.Unlock()
		// The kubelet goes down or comes back: at least one transition.
		up = !up
		f.mu.Lock()
		f.kl.Health = lifecycle.SourceHealth{Configured: true, Up: up, LastSuccess: at}
		if !up {
			f.kl.Health = lifecycle.SourceHealth{Configured: true, LastSuccess: at.Add(-time.Second), LastError: "connection refused"}
		}
		f.kl.Generation++
		f.mu.Unlock()
		before := a.seq
		if !a.Correlate(context.Background()) {
			t.Fatalf("step %d (clock %s): no transition", i, st.clock)
		}
		for _, r := range a.Since(time.Time{}) {
			if r.Seq > before && !r.ObservedAt.Equal(fixtures.Now.Add(st.want)) {
				t.Errorf("step %d (clock %s): %s observed at %s, want %s", i, st.clock, r.Kind, r.ObservedAt.Sub(fixtures.Now),
					st.want)
			}
		}
	}

	hist := a.Since(time.Time{})
	for i := 1; i < len(hist); i++ {
		if hist[i].Seq != hist[i-1].Seq+1 || hist[i].ObservedAt.Before(hist[i-1].ObservedAt) {
			t.Fatalf("history out of order at %d: seq %d at %s after seq %d at %s", i, hist[i].Seq, hist[i].ObservedAt,
				hist[i-1].Seq, hist[i-1].ObservedAt)
		}
	}
	// ?since= gives a suffix of the history, whatever the time asked.
	for _, r := range hist {
		got := a.Since(r.ObservedAt)
		k := 0
		for k < len(hist) && hist[k].ObservedAt.Before(r.ObservedAt) {
			k++
		}
		if !reflect.DeepEqual(got, hist[k:]) {
			t.Fatalf("since %s: %d records, not the history's last %d", r.ObservedAt, len(got), len(hist)-k)
		}
	}
	// The journal holds the same, in the same order.
	es, err := j.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	var fromSteps []journal.Entry
	for _, e := range es {
		if e.Seq >= firstSeq {
			fromSteps = append(fromSteps, e)
		}
	}
	for i, e := range es {
		if i > 0 && (e.Seq != es[i-1].Seq+1 || e.Transition.ObservedAt.Before(es[i-1].Transition.ObservedAt)) {
			t.Fatalf("journal out of order at entry %d", e.Seq)
		}
		if !reflect.DeepEqual(jsonRound(t, e.Transition), jsonRound(t, hist[i].Transition)) {
			t.Fatalf("journal entry %d is not history record %d", e.Seq, hist[i].Seq)
		}
	}
	if len(es) != len(hist) || len(fromSteps) == 0 {
		t.Fatalf("journal %d entries, history %d", len(es), len(hist))
	}
	if n := len(logs.lines("clock stepped back")); n != 2 {
		t.Errorf("%d log lines on the clock stepping back, want 2 (two steps back):\n%s", n, logs)
	}
	if n := len(logs.lines("clock caught up")); n != 2 {
		t.Errorf("%d log lines on the clock catching up, want 2:\n%s", n, logs)
	}
	t.Logf("%d transitions over %d clock steps, in order; journal the same", len(hist)-int(firstSeq)+1, len(steps))
}
