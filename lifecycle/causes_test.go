package lifecycle

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Each cause rule holds where it should, with its since, and the rules'
// order decides between causes that hold together: the first in Causes wins.
func TestCauseRules(t *testing.T) {
	running := func() Input { return input(serving("p")) }
	cut := func(in *Input) {
		in.KubeletLink = KubeletLink{CutOff: true, Since: t0.Add(-2 * time.Minute), Evidence: "e"}
	}
	apiDown := func(in *Input) { in.APIServer = downH("api") }
	staleNode := func(in *Input) {
		in.APIServer = upH()
		in.APINode = &APINode{Ready: "Unknown", Reason: "NodeStatusUnknown", LastHeartbeat: t0.Add(-3 * time.Minute)}
	}
	orphan := func(in *Input) {
		in.Containers = append(in.Containers, &Container{ID: "o", PodUID: "uid-o", PodName: "o", PodNamespace: "ns", Name: "x", State: RuntimeRunning})
	}
	tests := []struct {
		name  string
		edit  []func(*Input)
		pod   string // the pod looked at: "p", or "o" the orphan
		cause Cause
		since time.Time
		stage Stage
	}{
		{"sources-unreachable", []func(*Input){func(in *Input) { in.Kubelet, in.Runtime = downH("k"), downH("r") }, apiDown},
			"p", CauseSourcesUnreachable, t0.Add(-time.Minute), StageUnknown},
		{"kubelet-unreachable", []func(*Input){func(in *Input) { in.Kubelet = downH("k"); in.Pods[0].Phase = PhaseUnknown }},
			"p", CauseKubeletUnreachable, t0.Add(-time.Minute), StageUnknown},
		{"orphaned", []func(*Input){orphan, func(in *Input) { in.Runtime = downH("r") }}, "o", CauseOrphaned, time.Time{}, StageUnknown},
		{"runtime-unreachable", []func(*Input){func(in *Input) { in.Runtime = downH("r"); in.Pods[0].Phase = PhaseUnknown }, cut},
			"p", CauseRuntimeUnreachable, t0.Add(-time.Minute), StageUnknown},
		{"phase-unknown", []func(*Input){func(in *Input) { in.Pods[0].Phase = PhaseUnknown }, cut, apiDown},
			"p", CausePhaseUnknown, time.Time{}, StageUnknown},
		{"container-state-unknown", []func(*Input){func(in *Input) { in.Containers[0].State = RuntimeUnknown }, cut, apiDown},
			"p", CauseContainerUnknown, time.Time{}, StageUnknown},
		{"node-cut-off", []func(*Input){cut, apiDown}, "p", CauseNodeCutOff, t0.Add(-2 * time.Minute), StageServing},
		{"kubelet-apiserver-unreachable", []func(*Input){cut, staleNode}, "p", CauseKubeletAPIServerUnreachable, t0.Add(-2 * time.Minute), StageServing},
		{"apiserver-unreachable", []func(*Input){apiDown}, "p", CauseAPIServerUnreachable, t0.Add(-time.Minute), StageServing},
		{"node-status-stale", []func(*Input){staleNode}, "p", CauseNodeStatusStale, t0.Add(-3 * time.Minute), StageServing},
	}
	var covered []Cause
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := running()
			for _, edit := range tc.edit {
				edit(&in)
			}
			var v *PodView
			s := Correlate(in)
			for i := range s.Pods {
				if s.Pods[i].Name == tc.pod {
					v = s.Pods[i]
				}
			}
			if v == nil {
				t.Fatalf("no pod %q in %+v", tc.pod, s.Pods)
			}
			if v.UnknownCause != tc.cause || !v.UnknownSince.Equal(tc.since) || v.Stage != tc.stage {
				t.Fatalf("got %s since %v, stage %s (%s); want %s since %v, stage %s",
					v.UnknownCause, v.UnknownSince, v.Stage, v.StageReason, tc.cause, tc.since, tc.stage)
			}
			if CauseMeaning(v.UnknownCause) == "" {
				t.Errorf("cause %s has no meaning", v.UnknownCause)
			}
		})
		covered = append(covered, tc.cause)
	}
	// Every cause has its case, in the order of precedence.
	if !slices.Equal(covered, Causes) {
		t.Fatalf("the cases cover %v; Causes, in precedence order, are %v", covered, Causes)
	}
}

// The reason of a pod whose local truth stands says after it why the
// cluster's view of it is in doubt.
func TestCauseExplanations(t *testing.T) {
	in := input(serving("p"))
	in.KubeletLink = KubeletLink{CutOff: true, Since: t0.Add(-2 * time.Minute), Evidence: "e"}
	in.Kubelet.Up, in.Kubelet.LastError = false, "401"
	v := onlyPod(Correlate(in))
	for _, want := range []string{"Serving: 1/1 containers ready", "; the kubelet cannot reach the API server since 2026-11-25T09:58:00Z",
		"the cluster does not hear of this pod", "(and it no longer answers podlife: 401)"} {
		if !strings.Contains(v.StageReason, want) {
			t.Errorf("reason %q lacks %q", v.StageReason, want)
		}
	}
	in = input(serving("p"))
	in.APIServer = upH()
	in.APINode = &APINode{Ready: "Unknown", Reason: "NodeStatusUnknown"}
	if v := onlyPod(Correlate(in)); !strings.HasSuffix(v.StageReason, "; the API server shows the node Ready=Unknown (NodeStatusUnknown) while its containers run") {
		t.Errorf("reason %q", v.StageReason)
	}
	in.APINode.Ready = "False" // posted by a live kubelet: accurate
	if v := onlyPod(Correlate(in)); v.UnknownCause != CauseNone {
		t.Errorf("node Ready=False gave cause %s", v.UnknownCause)
	}
}
