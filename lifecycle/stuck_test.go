package lifecycle

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestStageClock(t *testing.T) {
	var c StageClock
	at := func(d time.Duration, pods ...*podB) *Snapshot {
		in := input(pods...)
		in.Now = t0.Add(d)
		in.Kubelet.LastSuccess, in.Runtime.LastSuccess = in.Now, in.Now
		s := Correlate(in)
		return &s
	}
	starting := pod("p", PhaseRunning, conds("True", "True", "False", "False"), cRunning("app", false))
	steps := []struct {
		d     time.Duration
		pod   *podB
		stuck int
	}{
		{0, starting, 0},
		{4 * time.Minute, starting, 0},
		{5 * time.Minute, starting, 1},      // five minutes in Starting
		{9 * time.Minute, starting, 0},      // reported once per stay
		{10 * time.Minute, serving("p"), 0}, // Serving is not transient
		{11 * time.Minute, starting, 0},     // a new stay starts the clock again
		{16 * time.Minute, starting, 1},
	}
	for i, s := range steps {
		got := c.Stuck(at(s.d, s.pod), 5*time.Minute)
		if len(got) != s.stuck {
			t.Fatalf("step %d: %d stuck transitions, want %d", i, len(got), s.stuck)
		}
		if len(got) == 1 && (got[0].Kind != TransitionStageStuck || got[0].Detail != "in stage Starting for 5m0s (threshold 5m0s)") {
			t.Fatalf("step %d: %+v", i, got[0])
		}
	}
	if got := c.Stuck(at(20*time.Minute), time.Minute); len(got) != 0 || len(c.pods) != 0 {
		t.Fatal("a removed pod is still tracked")
	}
}

// A clock seeded from the journal keeps a pod's old since across an agent
// restart and does not report a stay it reported before.
func TestStageClockSeed(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	snap := &Snapshot{At: t0, Pods: []*PodView{{UID: "a", Name: "a", Stage: StageFailing}, {UID: "b", Name: "b", Stage: StageFailing},
		{UID: "c", Name: "c", Stage: StageStarting}}}
	var c StageClock
	c.Seed(map[string]StageSince{
		"a": {Stage: StageFailing, Since: t0.Add(-72 * time.Hour)},
		"b": {Stage: StageFailing, Since: t0.Add(-72 * time.Hour), Reported: true},
		"c": {Stage: StageServing, Since: t0.Add(-72 * time.Hour)}, // another stage now: starts afresh
	})
	got := c.Stuck(snap, 5*time.Minute)
	if len(got) != 1 || got[0].UID != "a" || !got[0].HappenedAt.Equal(t0.Add(-72*time.Hour)) || !strings.Contains(got[0].Detail, "72h0m0s") {
		t.Fatalf("stuck after a restart: %+v, want only a, in its stage for 72h", got)
	}
}

// A clock seeded late (the journal opened after the agent had begun) moves a
// pod's since back to the recorded one only where the recorded stay is the
// same stage and earlier; what the clock has seen since wins otherwise.
func TestStageClockSeedLate(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	snap := func(d time.Duration) *Snapshot {
		return &Snapshot{At: t0.Add(d), Pods: []*PodView{{UID: "a", Name: "a", Stage: StageFailing},
			{UID: "b", Name: "b", Stage: StageFailing}, {UID: "c", Name: "c", Stage: StageStarting},
			{UID: "d", Name: "d", Stage: StageFailing}}}
	}
	var c StageClock
	if got := c.Stuck(snap(0), 5*time.Minute); len(got) != 0 { // seen first at t0, nothing seeded
		t.Fatalf("stuck at first sight: %+v", got)
	}
	c.Seed(map[string]StageSince{
		"a": {Stage: StageFailing, Since: t0.Add(-72 * time.Hour)},                 // same stay, earlier: goes back
		"b": {Stage: StageFailing, Since: t0.Add(-72 * time.Hour), Reported: true}, // reported before: not again
		"c": {Stage: StageFailing, Since: t0.Add(-72 * time.Hour)},                 // another stage: the clock's stands
		"d": {Stage: StageFailing, Since: t0.Add(time.Hour)},                       // later than the clock's: the clock's stands
	})
	got := c.Stuck(snap(time.Minute), 5*time.Minute)
	if len(got) != 1 || got[0].UID != "a" || !strings.Contains(got[0].Detail, "in stage Failing for 72h1m0s") {
		t.Fatalf("stuck after a late seed: %+v, want only a, for 72h1m", got)
	}
	if got := c.Stuck(snap(5*time.Minute), 5*time.Minute); len(got) != 2 || got[0].UID == "b" || got[1].UID == "b" {
		t.Fatalf("five minutes on: %+v, want c and d (their own stays), not b", got)
	}
}

// ForgetOthers keeps exactly the snapshot's pods, whether or not the map
// held others.
func TestForgetOthers(t *testing.T) {
	s := &Snapshot{Pods: []*PodView{{UID: "a"}, {UID: "b"}}}
	for _, tc := range []struct {
		name string
		m    map[string]int
	}{
		{"the same pods", map[string]int{"a": 1, "b": 2}},
		{"one gone", map[string]int{"a": 1, "b": 2, "gone": 3}},
		{"all but one gone", map[string]int{"a": 1, "b": 2, "x": 3, "y": 4}},
	} {
		ForgetOthers(tc.m, s)
		if want := map[string]int{"a": 1, "b": 2}; !maps.Equal(tc.m, want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.m, want)
		}
	}
}

// Snapshots that hand a pod's view on unchanged (the one-change path) still
// have it reported stuck when its time comes, once, in the snapshot's order;
// a pod gone and back starts again.
func TestStageClockSharedViews(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	a := &PodView{Namespace: "ns", UID: "a", Name: "a", Stage: StageStarting}
	b := &PodView{Namespace: "ns", UID: "b", Name: "b", Stage: StageFailing}
	z := &PodView{Namespace: "ns", UID: "z", Name: "z", Stage: StageServing}
	pods := []*PodView{a, b, z}
	var c StageClock
	stuck := func(d time.Duration, pods []*PodView) []string {
		var uids []string
		for _, tr := range c.Stuck(&Snapshot{At: t0.Add(d), Pods: pods}, 5*time.Minute) {
			uids = append(uids, tr.UID)
		}
		return uids
	}
	for _, step := range []struct {
		d    time.Duration
		pods []*PodView
		want string
	}{
		{0, pods, ""},
		{4 * time.Minute, pods, ""},
		{5 * time.Minute, pods, "a,b"}, // the same views throughout
		{6 * time.Minute, pods, ""},    // once per stay
		{7 * time.Minute, []*PodView{b, z}, ""},
		{8 * time.Minute, pods, ""}, // a is back: a new stay
		{13 * time.Minute, pods, "a"},
	} {
		if got := strings.Join(stuck(step.d, step.pods), ","); got != step.want {
			t.Fatalf("at %s: stuck %q, want %q", step.d, got, step.want)
		}
	}
}
