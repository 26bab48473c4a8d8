package lifecycle

import (
	"cmp"
	"fmt"
	"slices"
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
func derivedContainer(pod *Pod, st *ContainerStatus, rc, last *Container, cs []*Container, runtimeName string) ContainerView {
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
	scheme := ""
	if i := strings.Index(st.ContainerID, "://"); i >= 0 {
		scheme = st.ContainerID[:i+3] // as the kubelet writes it
	} else if runtimeName != "" {
		scheme = runtimeName + "://"
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
		// An exit that restarts the whole pod shows as terminated until the
		// kubelet has removed every container (kubelet_pods.go
		// convertToAPIContainerStatuses): no back-off.
		if willRestart(pod, st, last.ExitCode) && !restartsAll(st, last.ExitCode) && pod.Deleting.IsZero() && last.Attempt > 0 {
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
// with this code (pkg/kubelet/container/helpers.go ShouldContainerBeRestarted,
// pkg/api/v1/pod/util.go ContainerShouldRestart): sidecars always; where the
// container sets its own restartPolicy, its restartPolicyRules first (the
// first rule whose exit codes match decides: Restart and, since 1.36,
// RestartAllContainers restart), then that policy; else the pod's (init
// containers restart only on failure).
func willRestart(pod *Pod, st *ContainerStatus, exitCode int32) bool {
	switch {
	case st.Kind == KindEphemeral:
		return false
	case st.Kind == KindSidecar:
		return true
	}
	if _, ok := restartRuleAction(st, exitCode); ok {
		return true
	}
	policy := effectivePolicy(pod, st)
	switch {
	case policy == "Never":
		return false
	case policy == "OnFailure" || st.Kind == KindInit:
		return exitCode != 0
	}
	return true
}

// effectivePolicy is the restart policy that applies to a container: its
// own where it sets one this build knows, else the pod's (ContainerShouldRestart).
func effectivePolicy(pod *Pod, st *ContainerStatus) string {
	switch st.RestartPolicy {
	case "Always", "OnFailure", "Never":
		return st.RestartPolicy
	}
	return cmp.Or(pod.RestartPolicy, "Always")
}

// restartsAll reports whether this exit makes the kubelet restart the whole
// pod in place (KEP-5532, RestartAllContainersOnContainerExits, beta and on
// since 1.36: pkg/kubelet/container/helpers.go ShouldAllContainersRestart).
func restartsAll(st *ContainerStatus, exitCode int32) bool {
	action, ok := restartRuleAction(st, exitCode)
	return ok && action == RuleRestartAllContainers
}

// Restart rule actions (restartPolicyRules[].action).
const (
	RuleRestart              = "Restart"
	RuleRestartAllContainers = "RestartAllContainers"
)

// restartRuleAction is the action of the first of a container's encoded
// restartPolicyRules whose exit codes match (FindMatchingContainerRestartRule);
// ok is false when none matches, or when the container sets no restartPolicy
// of its own (ContainerShouldRestart then ignores its rules) or an unknown action.
func restartRuleAction(st *ContainerStatus, exitCode int32) (action string, ok bool) {
	if st.RestartPolicy == "" || st.RestartRules == "" {
		return "", false
	}
	code := strconv.Itoa(int(exitCode))
	for _, rule := range strings.Split(st.RestartRules, ";") {
		parts := strings.SplitN(rule, ":", 3)
		if len(parts) != 3 {
			continue
		}
		in := slices.Contains(strings.Split(parts[2], ","), code)
		if (parts[1] == "In" && in) || (parts[1] == "NotIn" && !in) {
			return parts[0], parts[0] == RuleRestart || parts[0] == RuleRestartAllContainers
		}
	}
	return "", false
}

// derivePhase is the phase the kubelet computes from these container states:
// pkg/kubelet/kubelet_pods.go getPhase as of 1.37 (ContainerRestartRules and
// RestartAllContainersOnContainerExits on by default): a stopped container
// that will restart keeps the pod Running whatever the pod's restartPolicy,
// and one removed by a restart of the whole pod (RestartingAllContainers)
// will. A terminal phase is never undone.
func derivePhase(pod *Pod, cvs []ContainerView) Phase {
	if pod.Phase == PhaseSucceeded || pod.Phase == PhaseFailed {
		return pod.Phase
	}
	var n phaseCounts
	for i := range cvs {
		n.add(pod, &cvs[i])
	}
	switch {
	case n.failedInitForGood > 0:
		return PhaseFailed
	case n.pendingInit > 0 || (n.pendingSidecar > 0 && !condTrue(pod, CondInitialized)) || n.waiting > 0:
		return PhasePending
	case n.running > 0 && n.unknown == 0:
		return PhaseRunning
	case n.running == 0 && n.stopped > 0 && n.unknown == 0:
		switch {
		case n.stopped != n.stoppedForGood:
			return PhaseRunning // at least one is restarting
		case n.stopped == n.succeeded:
			return PhaseSucceeded
		}
		return PhaseFailed
	}
	return PhasePending
}

// phaseCounts are getPhase's counters.
type phaseCounts struct {
	pendingInit, pendingSidecar, failedInitForGood       int
	running, waiting, stopped, stoppedForGood, succeeded int
	unknown                                              int
}

// add counts one container as getPhase does.
func (n *phaseCounts) add(pod *Pod, c *ContainerView) {
	var last *ContainerState
	if c.LastState != nil && c.LastState.Kind == StateTerminated {
		last = c.LastState
	}
	// restarts: the container will run again after this exit.
	restarts := func(exit int32, reason string) bool {
		st := statusOf(pod, c)
		return reason == ReasonRestartingAllContainers || willRestart(pod, st, exit)
	}
	switch c.Kind {
	case KindInit:
		switch {
		case c.State == StateTerminated:
			if exit := exitOf(c); exit != 0 && !restarts(exit, c.Reason) {
				n.failedInitForGood++
			}
		case c.State == StateWaiting && last != nil:
			if last.ExitCode != 0 && !restarts(last.ExitCode, last.Reason) {
				n.failedInitForGood++
			}
		default:
			n.pendingInit++
		}
	case KindSidecar:
		switch {
		case c.State == StateRunning:
			if !c.Started {
				n.pendingSidecar++
			}
			n.running++
		case c.State == StateTerminated, c.State == StateWaiting && last != nil:
		case c.State == StateWaiting:
			n.pendingSidecar++
			n.waiting++
		default:
			n.pendingSidecar++
			n.unknown++
		}
	case KindRegular:
		switch {
		case c.State == StateRunning:
			n.running++
		case c.State == StateTerminated:
			n.stopped++
			if !restarts(exitOf(c), c.Reason) {
				n.stoppedForGood++
			}
			if exitOf(c) == 0 {
				n.succeeded++
			}
		case c.State == StateWaiting && last != nil:
			n.stopped++
			if !restarts(last.ExitCode, last.Reason) {
				n.stoppedForGood++
			}
		case c.State == StateWaiting:
			n.waiting++
		default:
			n.unknown++
		}
	}
}

func exitOf(c *ContainerView) int32 {
	if c.ExitCode == nil {
		return 0
	}
	return *c.ExitCode
}

// statusOf is the kubelet's status (and so the spec podlife keeps) of a
// container of the pod; a container the kubelet does not list follows the
// pod's restart policy.
func statusOf(pod *Pod, c *ContainerView) *ContainerStatus {
	for i := range pod.Containers {
		if pod.Containers[i].Name == c.Name {
			return &pod.Containers[i]
		}
	}
	return &ContainerStatus{Name: c.Name, Kind: c.Kind}
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

// CrashLooping reports whether a container of a Failing pod is in a crash
// loop: it has restarted, and it waits in CrashLoopBackOff, or its attempt
// that just ended ran less than CrashLoopSettle (it is not restarted yet),
// or it runs again after such an attempt and has not run that long (the pod
// leaves Failing when it has). A pure function of the view, so the metrics
// built from it change only with the view; it holds through a loop's every
// state, so a series of it does not blink between them.
func CrashLooping(p *PodView, c *ContainerView) bool {
	if p.Stage != StageFailing || c.Kind == KindEphemeral || c.RestartCount == 0 {
		return false
	}
	switch c.State {
	case StateWaiting:
		if c.Reason == ReasonCrashLoopBackOff {
			return true
		}
	case StateTerminated:
		return !c.StartedAt.IsZero() && c.FinishedAt.Sub(c.StartedAt) < CrashLoopSettle
	}
	_, ok := crashLoop(c)
	return ok
}

// crashLoop reports whether a container is in a crash loop: it restarted
// after an attempt that ran less than CrashLoopSettle, and is being created
// again (until is zero: for as long as it is) or is running (until is when
// its new attempt has run CrashLoopSettle and the loop is over).
func crashLoop(c *ContainerView) (until time.Time, ok bool) {
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
	return c.StartedAt.Add(CrashLoopSettle), true
}
