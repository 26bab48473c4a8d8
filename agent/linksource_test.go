package agent

import (
	"context"
	"testing"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/lifecycle"
)

// The kubelet's link to the API server is one source among the others: a
// cut is one SourceDown, also across the agent's periodic ticks (each one a
// correlation with no source changed), which must not forget it.
func TestKubeletLinkSourceSurvivesTicks(t *testing.T) {
	a, f := generatedAgent(t)
	f.mu.Lock()
	f.kl.Link = lifecycle.KubeletLink{CutOff: true, Since: fixtures.Now, Evidence: "test"}
	f.kl.Generation++
	f.mu.Unlock()
	a.Correlate(context.Background())
	a.Correlate(context.Background()) // a tick: nothing changed
	if h := a.Snapshot().Sources[lifecycle.SourceKubeletLink]; !h.Configured || h.Up {
		t.Fatalf("after a tick the kubelet link is %+v, want configured and down", h)
	}
	f.mu.Lock()
	f.kl.Generation++ // another poll, same state
	f.mu.Unlock()
	a.Correlate(context.Background())
	downs := 0
	for _, r := range a.Since(fixtures.Now.Add(-1)) {
		if r.Kind == lifecycle.TransitionSourceDown && r.Source == lifecycle.SourceKubeletLink {
			downs++
		}
	}
	if downs != 1 {
		t.Fatalf("%d SourceDown transitions of the kubelet link, want 1", downs)
	}
}
