package agent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// podlife_pod_startup_duration_seconds measures only start-ups the agent
// watched: a pod already Serving when the agent first sees it (after an
// agent restart, say) is not measured from its latest Ready flip.
func TestStartupMeasuredOnlyWhenWatched(t *testing.T) {
	a := New(Options{Node: "n", Log: slog.New(slog.DiscardHandler)})
	t0 := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	view := func(uid string, stage lifecycle.Stage, ready time.Time) *lifecycle.PodView {
		return &lifecycle.PodView{UID: uid, Name: uid, Stage: stage, Created: t0,
			Conditions: []lifecycle.Condition{{Type: lifecycle.CondReady, Status: "True", LastTransitionTime: ready}}}
	}
	count := func() uint64 {
		return gathered(t, a)["podlife_pod_startup_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount()
	}
	snap := func(pods ...*lifecycle.PodView) { a.observeStartups(&lifecycle.Snapshot{Pods: pods}) }
	snap(view("old", lifecycle.StageServing, t0.Add(72*time.Hour)), view("new", lifecycle.StageStarting, time.Time{}))
	if n := count(); n != 0 {
		t.Fatalf("a pod already serving when first seen was measured (%d samples)", n)
	}
	snap(view("old", lifecycle.StageServing, t0.Add(72*time.Hour)), view("new", lifecycle.StageServing, t0.Add(7*time.Second)))
	if n := count(); n != 1 {
		t.Fatalf("the watched start-up gave %d samples, want 1", n)
	}
	snap(view("new", lifecycle.StageStarting, time.Time{}))
	snap(view("new", lifecycle.StageServing, t0.Add(time.Hour)))
	if n := count(); n != 1 {
		t.Fatalf("a Ready flip after start-up was measured again (%d samples)", n)
	}
	snap()
	if len(a.started) != 0 {
		t.Fatalf("gone pods kept: %v", a.started)
	}
}
