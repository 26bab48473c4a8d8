package lifecycle

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultMismatchGrace is how long the kubelet's copy of a container's state
// may lag the runtime before the difference is reported as a mismatch, when
// Input.MismatchGrace is zero. The kubelet's copy of an API-managed pod moves
// only after PLEG has seen the change (relist every 1 s), the pod worker has
// synced, the status manager has patched the API server (at once, else at its
// 10 s periodic sync) and the watch has brought the patch back; 12 s covers
// that periodic sync plus two 1 s polls of /pods. The agent passes 10 s plus
// two of its poll intervals.
const DefaultMismatchGrace = 12 * time.Second

// CrashLoopSettle is how long a container that restarted after a short-lived
// attempt must run before its pod counts as recovered. Until then the pod
// stays Failing, so a crash loop does not flap Failing↔Serving on every
// restart. The kubelet's back-off doubles from 10 s (10, 20, 40, ... 300 s);
// a crash-looping container runs far less than a minute between back-offs in
// the common case, and a container that ran 60 s has outlived its first three
// back-off steps.
const CrashLoopSettle = 60 * time.Second

// runtimeAhead reports whether the runtime shows a change to container st
// that the kubelet's status does not, and since when: a newer attempt, or an
// exit or start the status has not caught up with. rc is the runtime record
// the status names (nil when it names none the runtime has) and last the
// runtime's latest attempt of the container.
func runtimeAhead(st *ContainerStatus, rc, last *Container) (time.Time, bool) {
	switch {
	case last == nil:
		return time.Time{}, false
	case st.ContainerID == "":
		// The kubelet has not seen any container of this name yet.
		return last.CreatedAt, true
	case rc == nil:
		// The status names a container the runtime no longer has (the
		// kubelet keeps one dead attempt per container): ahead only when the
		// runtime has a newer attempt than the status counts.
		return last.CreatedAt, last.Attempt > uint32(max(st.RestartCount, 0))
	case last.Attempt > rc.Attempt:
		if st.State.Kind == StateRunning && rc.State == RuntimeExited {
			return rc.FinishedAt, true
		}
		return last.CreatedAt, true
	case st.State.Kind == StateRunning && rc.State == RuntimeExited:
		return rc.FinishedAt, true
	case st.State.Kind == StateWaiting && rc.State == RuntimeRunning:
		return rc.StartedAt, true
	}
	return time.Time{}, false
}

// derivedContainer is the view of a kubelet-listed container whose state is
// derived from the runtime's latest attempt, because the kubelet's copy lags.
// It says what the kubelet will report once it catches up (the rules of
// pkg/kubelet/kuberuntime's computePodActions and pkg/kubelet/kubelet_pods.go
// convertToAPIContainerStatuses): running, created (ContainerCreating), or
// exited — then waiting to restart (back-off) where the restart policy
// restarts it, else terminated.
func derivedContainer(pod *Pod, st *ContainerStatus, rc, last *Container, cs []*Container) ContainerView {
	cached := uint32(max(st.RestartCount, 0))
	if rc != nil {
		cached = rc.Attempt
	} else if st.ContainerID == "" {
		cached = 0
	}
	restarts := st.RestartCount
	if last.Attempt > cached {
		restarts += int32(last.Attempt - cached)
	}
	scheme := "containerd://"
	if i := strings.Index(st.ContainerID, "://"); i >= 0 {
		scheme = st.ContainerID[:i+3]
	}
	v := ContainerView{Name: st.Name, Kind: st.Kind, Source: SourceKubelet, From: FromRuntime,
		RestartCount: restarts, ContainerID: scheme + last.ID, Image: st.Image, Runtime: last}
	if prev := previousAttempt(cs, last); prev != nil {
		ls := terminatedState(prev, scheme)
		v.LastState = &ls
	} else if st.LastState.Kind != StateNone {
		ls := st.LastState
		v.LastState = &ls
	}
	switch last.State {
	case RuntimeRunning:
		v.State, v.StartedAt, v.Started = StateRunning, last.StartedAt, true
		// Without a readiness probe the kubelet calls a started container
		// ready (pkg/kubelet/prober/prober_manager.go UpdatePodStatus); with
		// one, a new attempt is not ready until the probe passes, and the
		// same attempt keeps what the kubelet last said.
		v.Ready = !st.ReadinessProbe || (rc == last && st.Ready)
	case RuntimeCreated:
		v.State, v.Reason = StateWaiting, ReasonContainerCreating
	case RuntimeExited:
		// The first exit is restarted at once and shows as terminated until
		// then; later ones wait out the back-off.
		if willRestart(pod, st, last.ExitCode) && pod.Deleting.IsZero() && last.Attempt > 0 {
			ls := terminatedState(last, scheme)
			v.LastState = &ls
			v.State, v.Reason = StateWaiting, ReasonCrashLoopBackOff
			v.Message = fmt.Sprintf("exited %d at %s; waiting to restart (back-off)", last.ExitCode, last.FinishedAt.UTC().Format(time.RFC3339))
		} else {
			ts := terminatedState(last, scheme)
			ec := ts.ExitCode
			v.State, v.Reason, v.Message, v.ExitCode = StateTerminated, ts.Reason, ts.Message, &ec
			v.StartedAt, v.FinishedAt = ts.StartedAt, ts.FinishedAt
		}
	default:
		v.State = StateUnknown
	}
	return v
}

// previousAttempt is the runtime's attempt just before c, if it still has it.
func previousAttempt(cs []*Container, c *Container) *Container {
	var prev *Container
	for _, x := range cs {
		if x.Name == c.Name && x.Attempt < c.Attempt && (prev == nil || x.Attempt > prev.Attempt) {
			prev = x
		}
	}
	return prev
}

// terminatedState is the kubelet's Terminated state for an exited runtime container.
func terminatedState(c *Container, scheme string) ContainerState {
	reason := c.Reason
	if reason == "" {
		reason = ReasonError
		if c.ExitCode == 0 {
			reason = ReasonCompleted
		}
	}
	return ContainerState{Kind: StateTerminated, Reason: reason, Message: c.Message, ExitCode: c.ExitCode,
		StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, ContainerID: scheme + c.ID}
}

// willRestart reports whether the kubelet restarts a container that exited
// with this code (pkg/kubelet/container/helpers.go ShouldContainerBeRestarted):
// sidecars always; a container's restartPolicyRules first, the first rule
// whose exit codes match deciding (ContainerRestartRules, 1.34+); then the
// container's own restart policy; then the pod's (init containers restart
// only on failure).
func willRestart(pod *Pod, st *ContainerStatus, exitCode int32) bool {
	switch {
	case st.Kind == KindEphemeral:
		return false
	case st.Kind == KindSidecar:
		return true
	}
	if restart, ok := matchRestartRule(st.RestartRules, exitCode); ok {
		return restart
	}
	policy := cmp.Or(st.RestartPolicy, pod.RestartPolicy, "Always")
	switch {
	case policy == "Never":
		return false
	case policy == "OnFailure" || st.Kind == KindInit:
		return exitCode != 0
	}
	return true
}

// matchRestartRule evaluates encoded restartPolicyRules in order; ok is
// false when none matches. Both actions (Restart, RestartAllContainers)
// restart the container.
func matchRestartRule(rules string, exitCode int32) (restart, ok bool) {
	for _, rule := range strings.Split(rules, ";") {
		parts := strings.SplitN(rule, ":", 3)
		if len(parts) != 3 {
			continue
		}
		in := false
		for _, v := range strings.Split(parts[2], ",") {
			if v == strconv.Itoa(int(exitCode)) {
				in = true
			}
		}
		if (parts[1] == "In" && in) || (parts[1] == "NotIn" && !in) {
			return parts[0] == "Restart" || parts[0] == "RestartAllContainers", true
		}
	}
	return false, false
}

// derivePhase is the phase the kubelet computes from these container states:
// pkg/kubelet/kubelet_pods.go getPhase. A terminal phase is never undone.
func derivePhase(pod *Pod, cvs []ContainerView) Phase {
	if pod.Phase == PhaseSucceeded || pod.Phase == PhaseFailed {
		return pod.Phase
	}
	pendingInit, failedInit := 0, 0
	var unknown, running, waiting, stopped, succeeded int
	for i := range cvs {
		c := &cvs[i]
		terminatedBefore := c.LastState != nil && c.LastState.Kind == StateTerminated
		switch c.Kind {
		case KindInit:
			switch {
			case c.State == StateTerminated && c.ExitCode != nil && *c.ExitCode != 0:
				failedInit++
			case c.State == StateTerminated:
			case c.State == StateWaiting && terminatedBefore:
				if c.LastState.ExitCode != 0 {
					failedInit++
				}
			default:
				pendingInit++
			}
		case KindSidecar:
			if c.State != StateRunning {
				pendingInit++
			}
		case KindRegular:
			switch c.State {
			case StateRunning:
				running++
			case StateTerminated:
				stopped++
				if c.ExitCode != nil && *c.ExitCode == 0 {
					succeeded++
				}
			case StateWaiting:
				if terminatedBefore {
					stopped++
				} else {
					waiting++
				}
			default:
				unknown++
			}
		}
	}
	initialized := condTrue(pod, CondInitialized)
	switch {
	case failedInit > 0 && pod.RestartPolicy == "Never":
		return PhaseFailed
	case pendingInit > 0 && !initialized, waiting > 0:
		return PhasePending
	case running > 0 && unknown == 0:
		return PhaseRunning
	case running == 0 && stopped > 0 && unknown == 0:
		switch {
		case pod.RestartPolicy == "Always" || pod.RestartPolicy == "":
			return PhaseRunning
		case stopped == succeeded:
			return PhaseSucceeded
		case pod.RestartPolicy == "Never":
			return PhaseFailed
		}
		return PhaseRunning
	}
	return PhasePending
}

// deriveConditions recomputes ContainersReady and Ready from derived
// container states (pkg/kubelet/status/generate.go GenerateContainersReadyCondition
// and GeneratePodReadyCondition), keeping the other conditions as the
// kubelet's copy has them. A condition that changes gets at as its transition time.
func deriveConditions(pod *Pod, phase Phase, cvs []ContainerView, at time.Time) []Condition {
	allReady, notReady := true, []string{}
	for _, c := range cvs {
		if (c.Kind == KindRegular || c.Kind == KindSidecar) && !c.Ready {
			allReady = false
			notReady = append(notReady, c.Name)
		}
	}
	status, reason, msg := "True", "", ""
	switch {
	case phase == PhaseSucceeded || phase == PhaseFailed:
		status, reason = "False", "PodCompleted"
	case !allReady:
		status, reason = "False", "ContainersNotReady"
		msg = "containers with unready status: [" + strings.Join(notReady, " ") + "]"
	}
	out := make([]Condition, 0, len(pod.Conditions)+2)
	seen := map[string]bool{}
	set := func(c Condition, typ string) Condition {
		seen[typ] = true
		if c.Status != status {
			c.LastTransitionTime = at
		}
		c.Type, c.Status, c.Reason, c.Message = typ, status, reason, msg
		return c
	}
	for _, c := range pod.Conditions {
		switch c.Type {
		case CondContainersReady:
			c = set(c, CondContainersReady)
		case CondReady:
			if c.Reason == "ReadinessGatesNotReady" && status == "True" {
				seen[CondReady] = true // the gates still decide
				break
			}
			c = set(c, CondReady)
		}
		out = append(out, c)
	}
	for _, typ := range []string{CondContainersReady, CondReady} {
		if !seen[typ] {
			out = append(out, set(Condition{}, typ))
		}
	}
	return out
}

// crashLooping reports whether a container is between crashes: it restarted
// after an attempt that ran less than CrashLoopSettle, and is being created
// again or has itself run less than CrashLoopSettle. until is when that
// stops being true (zero while it is not running yet).
func crashLooping(c *ContainerView, now time.Time) (until time.Time, ok bool) {
	ls := c.LastState
	if c.RestartCount == 0 || ls == nil || ls.Kind != StateTerminated ||
		ls.StartedAt.IsZero() || ls.FinishedAt.Sub(ls.StartedAt) >= CrashLoopSettle {
		return time.Time{}, false
	}
	if c.State == StateWaiting {
		return time.Time{}, true // being created again: not running yet
	}
	if c.State != StateRunning || c.StartedAt.IsZero() {
		return time.Time{}, false
	}
	until = c.StartedAt.Add(CrashLoopSettle)
	return until, now.Before(until)
}
