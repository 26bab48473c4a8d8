package agent

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// A running agent whose sources stay fresh and unchanged while time moves on
// (its periodic tick, no source having changed) raises StageStuck for every
// pod in a transient stage past the threshold, once, and journals it.
func TestStuckStagesAreRaisedAndJournaled(t *testing.T) {
	j, err := journal.Open(filepath.Join(t.TempDir(), "journal.db"), journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var mu sync.Mutex
	now := fixtures.Now
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, _ := generatedAgent(t, func(o *Options) { o.Journal, o.StuckAfter, o.Now = j, 2*time.Second, clock })
	var want []string
	for _, p := range a.Snapshot().Pods {
		if p.Stage != lifecycle.StageServing && p.Stage != lifecycle.StageTerminated {
			want = append(want, p.UID)
		}
	}
	if len(want) == 0 {
		t.Fatal("the generated node has no pod in a transient stage")
	}
	sort.Strings(want)

	// Past the threshold, within the sources' freshness: the next tick raises them.
	mu.Lock()
	now = now.Add(3 * time.Second)
	mu.Unlock()
	defer running(a)()
	stuck := func() (uids []string) {
		for _, r := range a.Since(time.Time{}) {
			if r.Kind == lifecycle.TransitionStageStuck {
				uids = append(uids, r.UID)
			}
		}
		sort.Strings(uids)
		return uids
	}
	deadline := time.Now().Add(15 * time.Second) // the agent ticks once a second
	for len(stuck()) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("StageStuck for %d pods, want %d in transient stages", len(stuck()), len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Join(stuck(), " "); got != strings.Join(want, " ") {
		t.Fatalf("StageStuck for %s, want %s", got, strings.Join(want, " "))
	}
	if !a.Snapshot().At.Equal(clock()) {
		t.Fatal("the stuck stages did not come from the tick")
	}
	pending, err := j.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	var journaled []string
	for _, e := range pending {
		if e.Transition.Kind == lifecycle.TransitionStageStuck {
			journaled = append(journaled, e.Transition.UID)
			if !e.Transition.HappenedAt.Equal(fixtures.Now) || !e.Transition.ObservedAt.Equal(clock()) {
				t.Errorf("stuck entry %+v: want happened at the stage's start, observed now", e.Transition)
			}
		}
	}
	sort.Strings(journaled)
	if got := strings.Join(journaled, " "); got != strings.Join(want, " ") {
		t.Fatalf("journaled StageStuck for %q, want %q", got, strings.Join(want, " "))
	}
	// Once per stay in a stage: later ticks raise nothing more.
	time.Sleep(1500 * time.Millisecond)
	if n := len(stuck()); n != len(want) {
		t.Fatalf("%d StageStuck after another tick, want still %d", n, len(want))
	}
}

// An agent restarted on its journal goes on with the stage clock where the
// last one left it: a pod Failing for three days says so, at once, and a
// pod already reported stuck is not reported again.
func TestStageClockSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	first, _ := generatedAgent(t)
	var failing, reported lifecycle.PodView
	for _, p := range first.Snapshot().Pods {
		if p.Stage == lifecycle.StageFailing {
			if failing.UID == "" {
				failing = *p
			} else if reported.UID == "" {
				reported = *p
			}
		}
	}
	if reported.UID == "" {
		t.Fatal("the generated node has fewer than two Failing pods")
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	longAgo := fixtures.Now.Add(-72 * time.Hour)
	if _, err := j.Append(longAgo, []lifecycle.Transition{
		{Kind: lifecycle.TransitionPodAdded, UID: failing.UID, Pod: failing.Name, To: string(lifecycle.StageFailing), ObservedAt: longAgo},
		{Kind: lifecycle.TransitionPodAdded, UID: reported.UID, Pod: reported.Name, To: string(lifecycle.StageFailing), ObservedAt: longAgo},
		{Kind: lifecycle.TransitionStageStuck, UID: reported.UID, Pod: reported.Name, From: string(lifecycle.StageFailing),
			To: string(lifecycle.StageFailing), ObservedAt: longAgo.Add(5 * time.Minute), HappenedAt: longAgo},
	}); err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	a, _ := generatedAgent(t, func(o *Options) { o.Journal, o.StuckAfter = j, 5*time.Minute })
	var got []string
	for _, r := range a.Since(time.Time{}) {
		if r.Kind == lifecycle.TransitionStageStuck {
			got = append(got, r.Pod+": "+r.Detail)
		}
	}
	want := failing.Name + ": in stage Failing for 72h0m0s (threshold 5m0s)"
	if len(got) != 1 || got[0] != want {
		t.Fatalf("StageStuck after the restart: %q, want only %q", got, want)
	}
	// The restarted agent saw every pod anew (PodAdded, journaled): the
	// journal still has the old stays, for the restart after this one.
	stages, err := j.Stages()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []lifecycle.PodView{failing, reported} {
		if s := stages[p.UID]; !s.Since.Equal(longAgo) || !s.Reported {
			t.Errorf("journaled stage of %s after the restart: %+v, want since %s, reported", p.Name, s, longAgo)
		}
	}
}

// A journal that could not be opened at start (another agent still held
// it) seeds the stage clock when it opens: a pod Failing for three days says
// so then, though the agent first saw it minutes ago.
func TestStageClockSeededByLateJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	probe, _ := generatedAgent(t)
	var failing lifecycle.PodView
	for _, p := range probe.Snapshot().Pods {
		if p.Stage == lifecycle.StageFailing {
			failing = *p
			break
		}
	}
	j, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	longAgo := fixtures.Now.Add(-72 * time.Hour)
	if _, err := j.Append(longAgo, []lifecycle.Transition{{Kind: lifecycle.TransitionPodAdded, UID: failing.UID, Pod: failing.Name,
		To: string(lifecycle.StageFailing), ObservedAt: longAgo}}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	var mu sync.Mutex
	locked := true
	open := func() (*journal.Journal, *journal.MovedAside, error) {
		mu.Lock()
		defer mu.Unlock()
		if locked {
			return nil, nil, errors.New("timeout: the journal is locked by another process")
		}
		j, err := journal.Open(path, journal.Options{})
		return j, nil, err
	}
	a, _ := generatedAgent(t, func(o *Options) { o.OpenJournal, o.StuckAfter = open, 5*time.Minute })
	defer a.journal.close(fixtures.Now)
	stuck := func() (got []string) {
		for _, r := range a.Since(time.Time{}) {
			if r.Kind == lifecycle.TransitionStageStuck {
				got = append(got, r.Pod+": "+r.Detail)
			}
		}
		return got
	}
	if got := stuck(); len(got) != 0 {
		t.Fatalf("StageStuck before the journal opened: %q", got)
	}
	mu.Lock()
	locked = false
	mu.Unlock()
	a.journal.retry(fixtures.Now.Add(time.Minute)) // past the reopen backoff
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, h := a.journal.snapshot(); h.Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the journal did not open")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Correlate(context.Background())
	want := failing.Name + ": in stage Failing for 72h0m0s (threshold 5m0s)"
	if got := stuck(); len(got) != 1 || got[0] != want {
		t.Fatalf("StageStuck once the journal opened: %q, want only %q", got, want)
	}
}
