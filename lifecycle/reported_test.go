package lifecycle

import (
	"testing"
	"time"
)

// A container transition with a time of its own is news once: the same
// start reported again (the kubelet listing its containers afresh) is not;
// another start, another source, or a transition without a time is.
func TestReportedFresh(t *testing.T) {
	at := time.Date(2026, 12, 6, 21, 40, 8, 0, time.UTC)
	running := Transition{Kind: TransitionContainerState, Source: SourceKubelet, UID: "u", Container: "web", To: "Running", HappenedAt: at}
	var r Reported
	if got := r.Fresh([]Transition{running}); len(got) != 1 {
		t.Fatalf("first report: %v", got)
	}
	again := running
	again.From = "" // after the kubelet lost the container's status for a moment
	runtime := running
	runtime.Source, runtime.To = SourceRuntime, "RUNNING"
	next := running
	next.HappenedAt = at.Add(11 * time.Second)
	stage := Transition{Kind: TransitionStageChanged, UID: "u", To: "Serving", HappenedAt: at}
	got := r.Fresh([]Transition{again, runtime, next, stage, stage})
	if len(got) != 4 || got[0] != runtime || got[1] != next || got[2] != stage {
		t.Errorf("Fresh = %+v, want the runtime's, the next start and both stage changes (no time of their own as news)", got)
	}
	for i := range ReportedLimit {
		r.Fresh([]Transition{{Kind: TransitionContainerRestarted, UID: "x", HappenedAt: at.Add(time.Duration(i+1) * time.Hour)}})
	}
	if len(r.keys) != ReportedLimit || len(r.Fresh([]Transition{running})) != 1 {
		t.Errorf("after %d more: %d remembered, and the oldest forgotten?", ReportedLimit, len(r.keys))
	}
}
