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

// Views handed on unchanged are not looked at again, and a view that changed
// in place of another (the one-change path) is: its start-up is measured.
func TestStartupSeesChangedViewsOnly(t *testing.T) {
	a := New(Options{Node: "n", Log: slog.New(slog.DiscardHandler)})
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	x := &lifecycle.PodView{UID: "x", Name: "x", Stage: lifecycle.StageStarting, Created: t0}
	y := &lifecycle.PodView{UID: "y", Name: "y", Stage: lifecycle.StageStarting, Created: t0}
	a.observeStartups(&lifecycle.Snapshot{Pods: []*lifecycle.PodView{x, y}})
	y2 := &lifecycle.PodView{UID: "y", Name: "y", Stage: lifecycle.StageServing, Created: t0,
		Conditions: []lifecycle.Condition{{Type: lifecycle.CondReady, Status: "True", LastTransitionTime: t0.Add(3 * time.Second)}}}
	for range 2 {
		a.observeStartups(&lifecycle.Snapshot{Pods: []*lifecycle.PodView{x, y2}})
	}
	if n := gathered(t, a)["podlife_pod_startup_duration_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(); n != 1 {
		t.Fatalf("y's start-up gave %d samples, want 1", n)
	}
}
