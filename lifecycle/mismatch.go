package lifecycle

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// mismatches compares a kubelet-known pod with the runtime. The kubelet's
// copy normally lags the runtime: a lag counts as a mismatch only once it has
// lasted the grace, and not at all while the copy is frozen (the kubelet is
// cut off from the API server; the cause says so once).
func (e *env) mismatches(pod *Pod, v *PodView, cs []*Container, lags []lag, frozen bool) []Mismatch {
	out := []Mismatch{}
	finished := pod.Phase == PhaseSucceeded || pod.Phase == PhaseFailed || !pod.Deleting.IsZero()
	grace := cmp.Or(e.in.MismatchGrace, DefaultMismatchGrace)
	lagging := func(since time.Time) bool {
		return frozen || e.before(since.Add(grace))
	}
	for _, l := range lags {
		st, rc, last := l.st, l.rc, l.last
		if lagging(l.since) {
			continue
		}
		switch {
		case st.State.Kind == StateRunning && rc != nil && rc.State == RuntimeExited:
			out = append(out, Mismatch{Kind: MismatchRunningButExited, Container: st.Name,
				Detail: fmt.Sprintf("kubelet says running; runtime says exited %d%s at %s",
					rc.ExitCode, parens(rc.Reason), rc.FinishedAt.UTC().Format(time.RFC3339Nano))})
		}
		if last.Attempt != uint32(st.RestartCount) && st.ContainerID != "" {
			out = append(out, Mismatch{Kind: MismatchRestartCount, Container: st.Name,
				Detail: fmt.Sprintf("kubelet restartCount %d; runtime's latest attempt is %d (%s) since %s",
					st.RestartCount, last.Attempt, last.State, l.since.UTC().Format(time.RFC3339))})
		}
	}
	for i := range pod.Containers {
		st := &pod.Containers[i]
		if st.ContainerID == "" || slices.ContainsFunc(lags, func(l lag) bool { return l.st == st }) {
			continue
		}
		rc := find(cs, st)
		if rc != nil && rc.State == RuntimeRunning && st.State.Kind == StateTerminated &&
			StripRuntimeScheme(st.State.ContainerID) == rc.ID {
			// No lag explains it: the kubelet learned of the exit from the runtime.
			out = append(out, Mismatch{Kind: MismatchZombie, Container: st.Name,
				Detail: fmt.Sprintf("kubelet says terminated at %s; the runtime still runs container %s",
					st.State.FinishedAt.UTC().Format(time.RFC3339), shortID(rc.ID))})
		}
		// The kubelet ahead of the runtime: more restarts than attempts. A
		// container whose state the kubelet lost (ContainerStatusUnknown)
		// counts one restart without a new attempt, which is no mismatch.
		if last := latest(cs, st.Name); last != nil && st.Kind != KindEphemeral && uint32(max(st.RestartCount, 0)) > last.Attempt &&
			!(st.LastState.Reason == ReasonContainerStatusUnknown && uint32(st.RestartCount) == last.Attempt+1) {
			out = append(out, Mismatch{Kind: MismatchRestartCount, Container: st.Name,
				Detail: fmt.Sprintf("kubelet restartCount %d; runtime's latest attempt is %d (%s)", st.RestartCount, last.Attempt, last.State)})
		}
		if finished {
			continue
		}
		if rc == nil {
			out = append(out, Mismatch{Kind: MismatchMissingInRuntime, Container: st.Name,
				Detail: fmt.Sprintf("kubelet references %s, which the runtime does not have", st.ContainerID)})
		}
	}
	if pod.Phase == PhaseRunning && pod.Deleting.IsZero() {
		switch {
		case v.Sandbox == nil:
			out = append(out, Mismatch{Kind: MismatchSandboxNotReady,
				Detail: "kubelet says Running; the runtime has no sandbox for the pod"})
		case v.Sandbox.State != SandboxReady && !lagging(v.Sandbox.CreatedAt):
			out = append(out, Mismatch{Kind: MismatchSandboxNotReady,
				Detail: fmt.Sprintf("kubelet says Running; sandbox %s is %s", shortID(v.Sandbox.ID), v.Sandbox.State)})
		}
	}
	return out
}

// apiMismatches compares the API server's copy of a pod with the local truth.
// A difference counts only once it has outlived the staleness allowance, so
// the normal lag of a status update is not reported.
func (e *env) apiMismatches(pod *Pod, v *PodView) []Mismatch {
	api := v.APIServer
	running := runningInRuntime(v)
	var out []Mismatch
	if api.Phase == PhaseRunning && running == 0 {
		var last time.Time
		exited := 0
		for _, c := range v.Containers {
			if c.Runtime != nil && c.Runtime.State == RuntimeExited && c.Kind != KindInit {
				exited++
				if c.Runtime.FinishedAt.After(last) {
					last = c.Runtime.FinishedAt
				}
			}
		}
		if exited > 0 && e.after(last.Add(e.stale)) {
			out = append(out, Mismatch{Kind: MismatchAPIRunningButExited,
				Detail: fmt.Sprintf("API server says Running; the runtime says all %d containers exited, the last at %s",
					exited, last.UTC().Format(time.RFC3339))})
		}
	}
	if running > 0 {
		kubeletReady := false
		var changed time.Time
		for _, c := range v.Conditions {
			if c.Type == CondReady {
				kubeletReady, changed = c.Status == "True", c.LastTransitionTime
			}
		}
		switch {
		// During an eviction or node shutdown the kubelet writes Failed
		// before it kills the containers (pkg/kubelet/kubelet.go
		// syncTerminatingPod): a copy that agrees with the kubelet is not stale.
		case (api.Phase == PhaseFailed && pod.Phase != PhaseFailed) || api.Phase == PhaseUnknown:
			out = append(out, Mismatch{Kind: MismatchAPIStale,
				Detail: fmt.Sprintf("API server says %s; %d containers are running here", api.Phase, running)})
		case kubeletReady && api.Ready != "True" && e.after(changed.Add(e.stale)):
			out = append(out, Mismatch{Kind: MismatchAPIStale,
				Detail: fmt.Sprintf("API server says Ready=%s; the kubelet has said Ready=True since %s",
					orUnknown(api.Ready), changed.UTC().Format(time.RFC3339))})
		}
	}
	return out
}

// apiBehind compares the kubelet's own live status of a pod (its Pods API,
// or a static pod's status) with the API server's copy: a phase, readiness or
// restart count the copy lacks for longer than APIBehindGrace, timed from
// when this correlator first saw the difference (*since; the kubelet's
// status manager posts within its 10 s sync period, pkg/kubelet/status
// status_manager.go), means the cluster's view of the pod is behind the
// node. A terminal phase the kubelet holds back while containers still run
// (status_manager.go mergePodStatus keeps the copy's phase) is no difference.
func (e *env) apiBehind(pod *Pod, v *PodView, since *time.Time) []Mismatch {
	api := v.APIServer
	if v.StatusFrom != FromKubelet {
		*since = time.Time{}
		return nil // /pods' copy is the API server's own; a derived view is not the kubelet's
	}
	var restarts int32
	for _, st := range pod.Containers {
		if st.Kind != KindEphemeral {
			restarts += st.RestartCount
		}
	}
	ready := condStatus(pod, CondReady)
	phase := pod.Phase
	if (phase == PhaseSucceeded || phase == PhaseFailed) && runningInRuntime(v) > 0 {
		phase = api.Phase
	}
	if api.Phase == phase && api.Ready == ready && api.Restarts == restarts {
		*since = time.Time{}
		return nil
	}
	e.firstSeen(since)
	if e.before(since.Add(APIBehindGrace)) {
		return nil
	}
	return []Mismatch{{Kind: MismatchAPIBehindKubelet,
		Detail: fmt.Sprintf("API server's copy: %s, Ready=%s, %d restarts; the kubelet's own live status: %s, Ready=%s, %d restarts; differing since %s",
			orUnknown(string(api.Phase)), orUnknown(api.Ready), api.Restarts, orUnknown(string(pod.Phase)), orUnknown(ready), restarts,
			since.UTC().Format(time.RFC3339))}}
}

// APIBehindGrace is how long the API server's copy may lack the kubelet's
// live status before it is a finding: three of the status manager's 10 s
// sync periods, so one failed post retried at the next is not one.
const APIBehindGrace = 30 * time.Second

func runningInRuntime(v *PodView) int {
	n := 0
	for _, c := range v.Containers {
		if c.Runtime != nil && c.Runtime.State == RuntimeRunning {
			n++
		}
	}
	return n
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
