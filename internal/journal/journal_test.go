package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func tr(i int) lifecycle.Transition {
	return lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Namespace: "ns", Pod: fmt.Sprintf("p%d", i),
		Container: "c", ObservedAt: t0.Add(time.Duration(i) * time.Second), HappenedAt: t0.Add(time.Duration(i)*time.Second - 300*time.Millisecond)}
}

func open(t *testing.T, path string, o Options) *Journal {
	t.Helper()
	j, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func pods(es []Entry) (out []string) {
	for _, e := range es {
		out = append(out, e.Transition.Pod)
	}
	return out
}

func TestAppendAckSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	j := open(t, path, Options{})
	es, err := j.Append(t0, []lifecycle.Transition{tr(1), tr(2), tr(3)})
	if err != nil {
		t.Fatal(err)
	}
	if es[0].Seq != 1 || es[2].Seq != 3 || es[0].ID == es[1].ID {
		t.Fatalf("entries %+v", es)
	}
	if err := j.Ack(2); err != nil {
		t.Fatal(err)
	}
	if err := j.Ack(1); err != nil { // a retried, older ack is a no-op
		t.Fatal(err)
	}
	id := es[2].ID
	j.Close()

	j2 := open(t, path, Options{})
	p, err := j2.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || p[0].Seq != 3 || p[0].ID != id || !p[0].Transition.HappenedAt.Equal(tr(3).HappenedAt) {
		t.Fatalf("after restart pending = %+v", p)
	}
	more, _ := j2.Append(t0, []lifecycle.Transition{tr(4)})
	if more[0].Seq != 4 {
		t.Fatalf("sequence restarted: %d", more[0].Seq)
	}
	s, _ := j2.Stats()
	if s.Pending != 2 || s.Delivered != 2 || s.LastSeq != 4 || s.Dropped != 0 || !s.OldestPending.Equal(t0) {
		t.Fatalf("stats %+v", s)
	}
	if err := j2.Ack(9); !errors.Is(err, ErrAckAhead) {
		t.Fatalf("ack ahead: %v", err)
	}
}

// Entry IDs are Event names upstream: two journals never give one alike,
// whether a second journal, the same file recreated, or a file copied to
// another node; the same journal reopened on its node keeps its IDs going.
func TestEntryIDsAreUniqueAcrossJournals(t *testing.T) {
	first := func(t *testing.T, path, node string) Entry {
		t.Helper()
		j, err := Open(path, Options{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		es, err := j.Append(t0, []lifecycle.Transition{tr(1)})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(es[0].ID, j.ID()+"-") {
			t.Fatalf("entry ID %q does not start with the journal's ID %q", es[0].ID, j.ID())
		}
		return es[0]
	}
	copyFile := func(t *testing.T, from, to string) {
		t.Helper()
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(to, b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// second opens, after a first journal at a on node-a, the journal
		// whose first entry is compared.
		second func(t *testing.T, dir, a string) Entry
		same   bool
	}{
		{"another journal", func(t *testing.T, dir, _ string) Entry {
			return first(t, filepath.Join(dir, "b.db"), "node-b")
		}, false},
		{"the journal recreated", func(t *testing.T, _, a string) Entry {
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
			return first(t, a, "node-a")
		}, false},
		{"the file copied to another node", func(t *testing.T, dir, a string) Entry {
			b := filepath.Join(dir, "copy.db")
			copyFile(t, a, b)
			return first(t, b, "node-b")
		}, false},
		{"the journal reopened on its node", func(t *testing.T, _, a string) Entry {
			return first(t, a, "node-a")
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := filepath.Join(dir, "a.db")
			x := first(t, a, "node-a")
			y := tc.second(t, dir, a)
			prefix := func(id string) string { return id[:strings.LastIndex(id, "-")] }
			if tc.same {
				if prefix(x.ID) != prefix(y.ID) || y.Seq != x.Seq+1 {
					t.Fatalf("reopened journal: %s (seq %d) after %s (seq %d)", y.ID, y.Seq, x.ID, x.Seq)
				}
				return
			}
			if x.ID == y.ID || prefix(x.ID) == prefix(y.ID) {
				t.Fatalf("two journals' first entries are %q and %q", x.ID, y.ID)
			}
		})
	}
}

func TestBoundsDropOldestAndCount(t *testing.T) {
	j := open(t, filepath.Join(t.TempDir(), "j.db"), Options{MaxEntries: 3, MaxAge: time.Hour})
	for i := 1; i <= 5; i++ {
		if _, err := j.Append(t0, []lifecycle.Transition{tr(i)}); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := j.Pending(0)
	if got := fmt.Sprint(pods(p)); got != "[p3 p4 p5]" {
		t.Fatalf("pending %s", got)
	}
	// An hour later the old entries age out when the next one is appended.
	if _, err := j.Append(t0.Add(61*time.Minute), []lifecycle.Transition{tr(6)}); err != nil {
		t.Fatal(err)
	}
	p, _ = j.Pending(0)
	s, _ := j.Stats()
	if got := fmt.Sprint(pods(p)); got != "[p6]" || s.Dropped != 5 || s.Pending != 1 {
		t.Fatalf("pending %s stats %+v", got, s)
	}
	if p, _ := j.Pending(1); len(p) != 1 {
		t.Fatalf("limit ignored: %d", len(p))
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "dir", "j.db"), Options{}); err == nil {
		t.Fatal("opening in a missing directory succeeded")
	}
	path := filepath.Join(t.TempDir(), "j.db")
	open(t, path, Options{})
	_, err := Open(path, Options{OpenTimeout: 50 * time.Millisecond})
	if err == nil {
		t.Fatal("a second open of a locked journal succeeded")
	}
	t.Logf("locked: %v", err)
}

// BenchmarkAppend is the durable (fsynced) cost of journaling transitions,
// one transaction per batch, as the agent does once per correlation.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			j, err := Open(filepath.Join(b.TempDir(), "j.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			ts := make([]lifecycle.Transition, batch)
			for i := range ts {
				ts[i] = tr(i)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := j.Append(t0, ts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/transition")
		})
	}
}

// The journal keeps each pod's stage and since when, also once its entries
// are delivered and across a reopen, so the stuck-stage clock survives an
// agent restart.
func TestStagesSurviveDeliveryAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	es, err := j.Append(t0, []lifecycle.Transition{
		{Kind: lifecycle.TransitionPodAdded, UID: "a", To: "Starting", ObservedAt: t0},
		{Kind: lifecycle.TransitionStageChanged, UID: "a", From: "Starting", To: "Failing", ObservedAt: t0.Add(time.Minute)},
		{Kind: lifecycle.TransitionStageStuck, UID: "a", From: "Failing", To: "Failing", ObservedAt: t0.Add(7 * time.Minute), HappenedAt: t0.Add(time.Minute)},
		{Kind: lifecycle.TransitionPodAdded, UID: "b", To: "Serving", ObservedAt: t0},
		{Kind: lifecycle.TransitionPodRemoved, UID: "b", From: "Serving", ObservedAt: t0.Add(time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Ack(es[len(es)-1].Seq); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if j, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	got, err := j.Stages()
	want := map[string]lifecycle.StageSince{"a": {Stage: lifecycle.StageFailing, Since: t0.Add(time.Minute), Reported: true}}
	if err != nil || len(got) != 1 || got["a"].Stage != want["a"].Stage || !got["a"].Since.Equal(want["a"].Since) || !got["a"].Reported {
		t.Fatalf("stages %+v (%v), want %+v", got, err, want)
	}

	// The restarted agent sees every pod anew (PodAdded): a pod in the
	// stage recorded keeps its since and reported, so a second restart
	// still knows them. A pod in another stage starts a new stay.
	t1 := t0.Add(time.Hour)
	if _, err := j.Append(t1, []lifecycle.Transition{
		{Kind: lifecycle.TransitionPodAdded, UID: "a", To: "Failing", ObservedAt: t1},
		{Kind: lifecycle.TransitionPodAdded, UID: "c", To: "Starting", ObservedAt: t1},
	}); err != nil {
		t.Fatal(err)
	}
	got, err = j.Stages()
	if err != nil || !got["a"].Since.Equal(t0.Add(time.Minute)) || !got["a"].Reported || !got["c"].Since.Equal(t1) {
		t.Fatalf("after the restart's PodAdded: stages %+v (%v), want a since %s reported, c since %s", got, err, t0.Add(time.Minute), t1)
	}
	if _, err := j.Append(t1, []lifecycle.Transition{
		{Kind: lifecycle.TransitionStageChanged, UID: "a", From: "Failing", To: "Serving", ObservedAt: t1.Add(time.Minute)},
		{Kind: lifecycle.TransitionPodAdded, UID: "a", To: "Failing", ObservedAt: t1.Add(2 * time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	if got, err = j.Stages(); err != nil || !got["a"].Since.Equal(t1.Add(2*time.Minute)) || got["a"].Reported {
		t.Fatalf("a new stay in Failing: stages %+v (%v), want since %s, not reported", got, err, t1.Add(2*time.Minute))
	}
}
