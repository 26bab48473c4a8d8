package lifecycle

import (
	"cmp"
	"fmt"
	"time"
)

// Cause says why a pod's truth cannot be fully established.
type Cause string

// Unknown causes. CauseNone means the local truth is complete.
const (
	CauseNone                 Cause = ""
	CauseRuntimeUnreachable   Cause = "runtime-unreachable"
	CauseKubeletUnreachable   Cause = "kubelet-unreachable"
	CauseSourcesUnreachable   Cause = "sources-unreachable"
	CauseAPIServerUnreachable Cause = "apiserver-unreachable"
	CauseNodeStatusStale      Cause = "node-status-stale"
	CausePhaseUnknown         Cause = "phase-unknown"
	CauseContainerUnknown     Cause = "container-state-unknown"
	// CauseOrphaned: the runtime runs containers of a pod the kubelet does not know.
	CauseOrphaned Cause = "orphaned"
	// CauseKubeletAPIServerUnreachable: the kubelet cannot reach the API
	// server, so its /pods status of API-managed pods is frozen and the
	// cluster hears nothing from this node; podlife derives the pods' state
	// from the runtime.
	CauseKubeletAPIServerUnreachable Cause = "kubelet-apiserver-unreachable"
	// CauseNodeCutOff: neither the kubelet nor podlife reaches the API server.
	CauseNodeCutOff Cause = "node-cut-off"
)

// A causeRule is one reason why a pod's truth cannot be fully established.
// The rules are tried in the order of causeRules, and the first that holds
// names the pod's cause: that order is the causes' precedence, and nothing
// else sets a pod's cause. Adding a cause is adding its constant above, its
// row, and its case in TestCauseRules (which fails until there is one); the
// README's table and the PodlifePodsUnknown alert then need its line
// (TestCausesDocumented fails until they have it); metrics follow Causes.
type causeRule struct {
	cause Cause
	// meaning says in one line what the cause means; the README's cause
	// table and the alerts name the same set (deploy/monitoring tests).
	meaning string
	// holds reports whether the cause applies to the pod.
	holds func(e *env, f *podFacts) bool
	// since is when the cause began, as far as the sources tell (nil or
	// zero: not known).
	since func(e *env, f *podFacts) time.Time
	// explain rewrites the view's stage and reason for the cause (nil: the
	// local stage and reason stand; the cause only says the cluster's view
	// of them is in doubt).
	explain func(e *env, f *podFacts)
}

// podFacts is what the cause rules read of one pod besides the sources.
type podFacts struct {
	// view is the pod's view with its local stage and reason, which a
	// rule's explanation rewrites.
	view PodView
	// pod is the kubelet's status of the pod; nil for a pod only the
	// runtime knows.
	pod *Pod
	// local is the stage rules' own verdict of Unknown (phase-unknown or
	// container-state-unknown: classify), CauseNone when they found a stage.
	local Cause
	// apiStale: the API server's copy of the pod was found stale.
	apiStale bool
}

// causeRules in precedence order: a source that cannot be read first, then
// what the kubelet itself reports as unknown, then what only puts the
// cluster's view of the local truth in doubt.
var causeRules = []causeRule{
	{cause: CauseSourcesUnreachable, meaning: "podlife can read neither the kubelet nor the runtime",
		holds: func(e *env, _ *podFacts) bool { return e.kubelet == down && e.runtime == down },
		since: func(e *env, _ *podFacts) time.Time {
			return earliest(e.in.Runtime.LastSuccess, e.in.Kubelet.LastSuccess)
		},
		explain: func(e *env, f *podFacts) {
			v := &f.view
			v.Stage, v.StageReason = StageUnknown, fmt.Sprintf("Unknown: kubelet and runtime unreachable (kubelet: %s; runtime: %s)",
				orUnknown(e.in.Kubelet.LastError), orUnknown(e.in.Runtime.LastError))
		}},
	{cause: CauseKubeletUnreachable, meaning: "podlife cannot read the kubelet; the runtime's view stands alone",
		holds: func(e *env, _ *podFacts) bool { return e.kubelet == down },
		since: func(e *env, _ *podFacts) time.Time { return e.in.Kubelet.LastSuccess },
		explain: func(e *env, f *podFacts) {
			v := &f.view
			v.Stage, v.StageReason = StageUnknown, fmt.Sprintf("Unknown: kubelet unreachable (%s); runtime: %s",
				orUnknown(e.in.Kubelet.LastError), runtimeSummary(v))
		}},
	{cause: CauseOrphaned, meaning: "the runtime runs containers of a pod the kubelet does not know",
		holds: func(e *env, f *podFacts) bool { return f.pod == nil && e.kubelet == fresh },
		explain: func(_ *env, f *podFacts) {
			v := &f.view
			v.Stage, v.StageReason = StageUnknown, fmt.Sprintf("Unknown: the kubelet does not know this pod; the runtime runs %d of its containers",
				runningInRuntime(v))
		}},
	{cause: CauseRuntimeUnreachable, meaning: "podlife cannot read the runtime; the kubelet's last word stands alone",
		holds: func(e *env, _ *podFacts) bool { return e.runtime == down },
		since: func(e *env, _ *podFacts) time.Time { return e.in.Runtime.LastSuccess },
		explain: func(e *env, f *podFacts) {
			v := &f.view
			last := "no kubelet view"
			if f.pod != nil {
				last = fmt.Sprintf("kubelet last said %s, %s", orUnknown(string(v.Phase)), readySummary(v))
			}
			v.Stage, v.StageReason = StageUnknown, fmt.Sprintf("Unknown: runtime unreachable (%s); %s",
				orUnknown(e.in.Runtime.LastError), last)
		}},
	{cause: CausePhaseUnknown, meaning: "the kubelet reports the pod's phase as Unknown (or one podlife does not know)",
		holds: func(_ *env, f *podFacts) bool { return f.local == CausePhaseUnknown }},
	{cause: CauseContainerUnknown, meaning: "the kubelet or the runtime reports a container's state as unknown",
		holds: func(_ *env, f *podFacts) bool { return f.local == CauseContainerUnknown }},
	{cause: CauseNodeCutOff, meaning: "neither the kubelet nor podlife reaches the API server: the whole node is cut off",
		holds: func(e *env, f *podFacts) bool { return f.pod != nil && e.in.KubeletLink.CutOff && e.apiserver == down },
		since: func(e *env, _ *podFacts) time.Time {
			if !e.in.KubeletLink.Since.IsZero() {
				return e.in.KubeletLink.Since
			}
			return e.in.APIServer.LastSuccess
		},
		explain: explainCutOff},
	{cause: CauseKubeletAPIServerUnreachable,
		meaning: "the kubelet cannot reach the API server: its copy of API pods is frozen and the cluster hears nothing from the node",
		holds:   func(e *env, f *podFacts) bool { return f.pod != nil && e.in.KubeletLink.CutOff },
		since:   func(e *env, _ *podFacts) time.Time { return e.in.KubeletLink.Since },
		explain: explainCutOff},
	{cause: CauseAPIServerUnreachable, meaning: "podlife itself cannot reach the API server (its Events wait in the journal)",
		holds: func(e *env, _ *podFacts) bool { return e.apiserver == down },
		since: func(e *env, _ *podFacts) time.Time { return e.in.APIServer.LastSuccess }},
	{cause: CauseNodeStatusStale, meaning: "the API server shows the node Ready=Unknown while its containers run",
		holds: func(e *env, f *podFacts) bool { return f.pod != nil && e.apiserver == fresh && nodeStatusStale(e, f) },
		since: func(e *env, _ *podFacts) time.Time { return e.in.APINode.LastHeartbeat },
		explain: func(e *env, f *podFacts) {
			v := &f.view
			if runningInRuntime(v) > 0 {
				n := e.in.APINode
				v.StageReason += fmt.Sprintf("; the API server shows the node Ready=%s (%s) while its containers run", n.Ready, orUnknown(n.Reason))
			}
		}},
}

// Causes lists every non-empty cause, in precedence order; metrics export a
// series per value.
var Causes = causeNames()

func causeNames() []Cause {
	out := make([]Cause, len(causeRules))
	for i, r := range causeRules {
		out[i] = r.cause
	}
	return out
}

// CauseMeaning says in one line what a cause means ("" for none).
func CauseMeaning(c Cause) string {
	for _, r := range causeRules {
		if r.cause == c {
			return r.meaning
		}
	}
	return ""
}

// applyCause names the pod's cause: the first rule that holds. f.view holds
// the local stage and reason; the rule's explanation rewrites them. f is the
// env's own (e.facts): the rules are called through their table, and a
// pointer to anything else would escape to the heap, for every pod.
func (e *env) applyCause(f *podFacts) {
	v := &f.view
	v.UnknownCause, v.UnknownSince = CauseNone, time.Time{}
	for i := range causeRules {
		r := &causeRules[i]
		if !r.holds(e, f) {
			continue
		}
		v.UnknownCause = r.cause
		if r.since != nil {
			v.UnknownSince = r.since(e, f)
		}
		if r.explain != nil {
			r.explain(e, f)
		}
		return
	}
}

// nodeStatusStale: only the node lifecycle controller's Ready=Unknown means
// the API server's copy is stale — a Ready=False posted by a live kubelet
// (KubeletNotReady) is accurate — and only while the pod's containers run or
// its copy was found stale.
func nodeStatusStale(e *env, f *podFacts) bool {
	n := e.in.APINode
	return n != nil && n.Ready == "Unknown" && (f.apiStale || runningInRuntime(&f.view) > 0)
}

// explainCutOff says, after the local truth, that the kubelet cannot reach
// the API server and what that means for the cluster's view of the pod.
func explainCutOff(e *env, f *podFacts) {
	v := &f.view
	frozen := "its copy of this pod is frozen"
	if cmp.Or(f.pod.StatusFrom, FromKubelet) == FromKubelet {
		frozen = "the cluster does not hear of this pod (its status here is the kubelet's own)"
	}
	v.StageReason += fmt.Sprintf("; the kubelet cannot reach the API server since %s, %s",
		e.in.KubeletLink.Since.UTC().Format(time.RFC3339), frozen)
	if !e.in.Kubelet.Up {
		v.StageReason += " (and it no longer answers podlife: " + e.in.Kubelet.LastError + ")"
	}
}

// earliest is the earlier of two times, ignoring a zero one.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
