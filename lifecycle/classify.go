package lifecycle

import (
	"fmt"
	"strings"
	"time"
)

// Waiting reasons the kubelet uses. The failing ones put a pod in StageFailing.
const (
	ReasonContainerCreating          = "ContainerCreating"
	ReasonPodInitializing            = "PodInitializing"
	ReasonCrashLoopBackOff           = "CrashLoopBackOff"
	ReasonErrImagePull               = "ErrImagePull"
	ReasonImagePullBackOff           = "ImagePullBackOff"
	ReasonInvalidImageName           = "InvalidImageName"
	ReasonErrImageNeverPull          = "ErrImageNeverPull"
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
	ReasonCreateContainerError       = "CreateContainerError"
	ReasonRunContainerError          = "RunContainerError"
	ReasonPreStartHookError          = "PreStartHookError"
	ReasonPostStartHookError         = "PostStartHookError"
	// ReasonRegistryUnavailable and ReasonSignatureValidationFailed are image
	// pull failures (pkg/kubelet/images/types.go).
	ReasonRegistryUnavailable       = "RegistryUnavailable"
	ReasonSignatureValidationFailed = "SignatureValidationFailed"
)

// Terminated reasons the runtime and kubelet use.
const (
	ReasonCompleted          = "Completed"
	ReasonError              = "Error"
	ReasonOOMKilled          = "OOMKilled"
	ReasonContainerCannotRun = "ContainerCannotRun"
	ReasonDeadlineExceeded   = "DeadlineExceeded"
	ReasonStartError         = "StartError"
	// ReasonRestartingAllContainers: the kubelet killed the container to
	// restart all of the pod's containers (RestartAllContainersOnContainerExits,
	// beta in 1.36); with condition AllContainersRestarting.
	ReasonRestartingAllContainers = "RestartingAllContainers"
	// ReasonContainerStatusUnknown: the kubelet lost a container's state; it
	// counts one restart without a new runtime attempt.
	ReasonContainerStatusUnknown = "ContainerStatusUnknown"
	// ReasonEvicted is the pod-level reason of an evicted pod.
	ReasonEvicted = "Evicted"
)

// FailingWaitingReason reports whether a Waiting reason means the container
// cannot make progress by itself: the listed kubelet reasons, and any other
// reason shaped like one (Err*, *Error, *BackOff) so that new kubelet reasons
// are not silently taken for normal start-up.
func FailingWaitingReason(reason string) bool {
	switch reason {
	case ReasonCrashLoopBackOff, ReasonErrImagePull, ReasonImagePullBackOff, ReasonInvalidImageName,
		ReasonErrImageNeverPull, ReasonRegistryUnavailable, ReasonSignatureValidationFailed, ReasonCreateContainerConfigError, ReasonCreateContainerError,
		ReasonRunContainerError, ReasonPreStartHookError, ReasonPostStartHookError:
		return true
	case "", ReasonContainerCreating, ReasonPodInitializing:
		return false
	}
	return strings.HasPrefix(reason, "Err") || strings.HasSuffix(reason, "Error") || strings.HasSuffix(reason, "BackOff")
}

// classify gives a pod its local stage and one-line reason, and the stage
// rules' own verdict of Unknown (phase-unknown, container-state-unknown;
// whatever else makes a pod Unknown is a cause rule's: causes.go). pod is
// nil for a pod only the runtime knows.
func (e *env) classify(pod *Pod, v *PodView) (Stage, string, Cause) {
	if pod == nil {
		stage, reason := e.runtimeOnlyStage(v)
		return stage, reason, CauseNone
	}
	return e.kubeletStage(pod, v)
}

// kubeletStage classifies a pod the kubelet knows, with both sources fresh.
func (e *env) kubeletStage(pod *Pod, v *PodView) (Stage, string, Cause) {
	switch pod.Phase {
	case PhaseUnknown:
		return StageUnknown, "Unknown: the kubelet reports phase Unknown" + parens(pod.Reason), CausePhaseUnknown
	case PhaseSucceeded:
		return StageTerminated, fmt.Sprintf("Terminated: Succeeded, %d containers completed", countKind(v, StateTerminated)), CauseNone
	case PhaseFailed:
		return StageTerminated, "Terminated: Failed, " + failedWhy(pod, v), CauseNone
	}
	if v.Terminating {
		// deletionTimestamp is the DELETE's time plus the grace period
		// (k8s.io/apiserver registry/rest/delete.go BeforeDelete): the time by
		// which the kubelet is to have killed the containers.
		running := countKind(v, StateRunning)
		why := fmt.Sprintf("deleted, grace period ends %s, %d containers still running",
			pod.Deleting.UTC().Format(time.RFC3339), running)
		if running == 0 {
			return StageTerminated, "Terminated: " + why, CauseNone
		}
		if e.after(pod.Deleting) {
			why += fmt.Sprintf(" %s past it", e.elapsed(pod.Deleting, time.Second))
		}
		return StageTerminating, "Terminating: " + why, CauseNone
	}
	if why, ok := e.restartLoop(pod, v); ok {
		return StageFailing, "Failing: " + why, CauseNone
	}
	if why, ok := e.restartingAll(pod, v); ok {
		return StageStarting, "Starting: " + why, CauseNone
	}
	if why, ok := e.failingWhy(v); ok {
		return StageFailing, "Failing: " + why, CauseNone
	}
	for _, c := range v.Containers {
		if c.State == StateUnknown || (c.Runtime != nil && c.Runtime.State == RuntimeUnknown) {
			return StageUnknown, fmt.Sprintf("Unknown: container %q state unknown", c.Name), CauseContainerUnknown
		}
	}
	switch pod.Phase {
	case PhasePending, "":
		return StageInitializing, "Initializing: " + initializingWhy(v), CauseNone
	case PhaseRunning:
		if condTrue(pod, CondReady) && condTrue(pod, CondContainersReady) {
			return StageServing, "Serving: " + readySummary(v) + restartNote(v), CauseNone
		}
		if c, policy := doneForGood(pod, v); c != nil {
			// kubectl prints NotReady: a completed container that its
			// restart policy will not restart keeps the pod from ever
			// being Ready again (printers.go printPod).
			return StageFailing, fmt.Sprintf("Failing: NotReady: %s completed (exit %d) and restartPolicy %s will not restart it; %s",
				containerWho(*c), *c.ExitCode, policy, readySummary(v)), CauseNone
		}
		return StageStarting, "Starting: " + readySummary(v) + notReadyNote(pod, v), CauseNone
	}
	return StageUnknown, fmt.Sprintf("Unknown: unrecognised phase %q", pod.Phase), CausePhaseUnknown
}

// runtimeOnlyStage classifies a pod from the runtime alone (no kubelet
// configured): readiness is unknown, so a running pod is at most Starting.
func (e *env) runtimeOnlyStage(v *PodView) (Stage, string) {
	if why, ok := e.failingWhy(v); ok {
		return StageFailing, "Failing: " + why + " (runtime view only)"
	}
	switch {
	case countKind(v, StateRunning) > 0:
		return StageStarting, "Starting: runtime: " + runtimeSummary(v) + " (readiness unknown without the kubelet)"
	case len(v.Containers) > 0 && countKind(v, StateTerminated) == len(v.Containers):
		return StageTerminated, "Terminated: runtime: " + runtimeSummary(v)
	default:
		return StageInitializing, "Initializing: runtime: " + runtimeSummary(v)
	}
}

// failingWhy finds the first container that keeps the pod from progressing,
// including one running between the crashes of a crash loop.
func (e *env) failingWhy(v *PodView) (string, bool) {
	for _, c := range v.Containers {
		if c.Kind == KindEphemeral {
			continue // a debug container's fate does not change the pod's
		}
		if c.Kind == KindSidecar && c.State == StateTerminated && allRegularTerminated(v) {
			continue // sidecars are stopped once the regular containers end
		}
		who := containerWho(c)
		initTag := func(r string) string {
			if c.Kind == KindInit {
				return " (Init:" + r + ")"
			}
			return ""
		}
		switch {
		case c.State == StateWaiting && FailingWaitingReason(c.Reason):
			s := fmt.Sprintf("%s %s%s", who, c.Reason, initTag(c.Reason))
			if c.LastState != nil && c.LastState.Kind == StateTerminated {
				s += fmt.Sprintf(", last exit %d %s", c.LastState.ExitCode, orUnknown(c.LastState.Reason))
			} else if isImageReason(c.Reason) && c.Image != "" {
				s += fmt.Sprintf(" (image %q)", c.Image)
			}
			return s, true
		case c.State == StateTerminated && c.Reason == ReasonRestartingAllContainers:
			// Killed on purpose by RestartAllContainersOnContainerExits: not a failure.
		case c.State == StateTerminated && c.ExitCode != nil && *c.ExitCode != 0:
			return fmt.Sprintf("%s exited %d %s%s", who, *c.ExitCode, orUnknown(c.Reason), initTag("Error")), true
		case c.State == StateRunning && c.Runtime != nil && c.Runtime.State == RuntimeExited && c.Runtime.ExitCode != 0:
			return fmt.Sprintf("%s exited %d %s (runtime; the kubelet still says running)",
				who, c.Runtime.ExitCode, orUnknown(c.Runtime.Reason)), true
		}
	}
	for i := range v.Containers {
		c := &v.Containers[i]
		if c.Kind == KindEphemeral {
			continue
		}
		if until, ok := crashLoop(c); ok && (until.IsZero() || e.before(until)) {
			now := "being created again"
			if c.State == StateRunning {
				now = "running again since " + c.StartedAt.UTC().Format(time.RFC3339)
			}
			return fmt.Sprintf("%s crash-looping: restarted %d times, last exit %d %s after %s; %s (Failing until it has run %s)",
				containerWho(*c), c.RestartCount, c.LastState.ExitCode, orUnknown(c.LastState.Reason),
				c.LastState.FinishedAt.Sub(c.LastState.StartedAt).Round(time.Second), now, CrashLoopSettle), true
		}
	}
	return "", false
}

func isImageReason(r string) bool {
	return r == ReasonErrImagePull || r == ReasonImagePullBackOff || r == ReasonInvalidImageName || r == ReasonErrImageNeverPull ||
		r == ReasonRegistryUnavailable || r == ReasonSignatureValidationFailed
}

// restartingAll says why a pod is being restarted in place as a whole
// (KEP-5532): the kubelet's AllContainersRestarting condition, a container
// whose exit matches a RestartAllContainers rule, or containers removed for
// it (Waiting RestartingAllContainers; pkg/kubelet/kubelet_pods.go
// convertToAPIContainerStatuses). The init containers then run again.
func (e *env) restartingAll(pod *Pod, v *PodView) (string, bool) {
	// A restart that has not moved on within CrashLoopSettle (the kubelet
	// failing to kill or remove a container keeps the condition True) is no
	// longer one: the other rules then say what is wrong.
	recent := func(since time.Time) bool {
		return since.IsZero() || e.before(since.Add(CrashLoopSettle))
	}
	for i := range v.Containers {
		c := &v.Containers[i]
		if c.State == StateTerminated && c.ExitCode != nil && restartsAll(statusOf(pod, c), *c.ExitCode) && recent(c.FinishedAt) {
			return fmt.Sprintf("restarting all containers in place: %s exited %d, which its RestartAllContainers rule matches; %s",
				containerWho(*c), *c.ExitCode, readySummary(v)), true
		}
	}
	removed := 0
	for _, c := range v.Containers {
		if c.State == StateWaiting && c.Reason == ReasonRestartingAllContainers {
			removed++
		}
	}
	var since time.Time
	for _, c := range pod.Conditions {
		if c.Type == CondAllContainersRestarting {
			since = c.LastTransitionTime
		}
	}
	switch {
	case removed > 0 && recent(since):
		return fmt.Sprintf("restarting all containers in place: %d removed (%s), the init containers run again next",
			removed, ReasonRestartingAllContainers), true
	case condTrue(pod, CondAllContainersRestarting) && recent(since):
		return fmt.Sprintf("restarting all containers in place (%s %s since %s); %s", CondAllContainersRestarting,
			condReason(pod, CondAllContainersRestarting), since.UTC().Format(time.RFC3339), readySummary(v)), true
	}
	return "", false
}

// restartLoop finds a pod restarted in place as a whole again and again: its
// last two restarts (as this correlator saw them end, podHistory) less than
// CrashLoopSettle apart, the last less than CrashLoopSettle ago. The kubelet
// applies no back-off to it (the removed containers leave none), so it is
// Failing until it has run CrashLoopSettle, like a crash loop. A one-off
// Correlate has no history and sees no loop.
func (e *env) restartLoop(pod *Pod, v *PodView) (string, bool) {
	ends := e.restartEnds
	if len(ends) < 2 {
		return "", false
	}
	prev, last := ends[len(ends)-2], ends[len(ends)-1]
	until := last.Add(CrashLoopSettle)
	if last.Sub(prev) >= CrashLoopSettle || !e.before(until) {
		return "", false
	}
	var n int32
	for _, c := range v.Containers {
		n = max(n, c.RestartCount)
	}
	return fmt.Sprintf("restarting all containers in a loop: restarted in place at %s and again %s later (RestartAllContainers; %d restarts in all); %s (Failing until it has run %s)",
		prev.UTC().Format(time.RFC3339), last.Sub(prev).Round(time.Second), n, readySummary(v), CrashLoopSettle), true
}

// doneForGood finds a regular container of a running pod that completed and
// that its restart policy (its own, since ContainerRestartRules, else the
// pod's: willRestart) will not restart, while another still runs; and names
// that policy.
func doneForGood(pod *Pod, v *PodView) (*ContainerView, string) {
	if countKind(v, StateRunning) == 0 {
		return nil, ""
	}
	for i := range v.Containers {
		c := &v.Containers[i]
		if c.Kind != KindRegular || c.State != StateTerminated || c.ExitCode == nil || *c.ExitCode != 0 {
			continue
		}
		if st := statusOf(pod, c); !willRestart(pod, st, 0) {
			return c, effectivePolicy(pod, st)
		}
	}
	return nil, ""
}

// condReason is a pod condition's reason, "unknown" when it has none.
func condReason(pod *Pod, t string) string {
	for _, c := range pod.Conditions {
		if c.Type == t {
			return orUnknown(c.Reason)
		}
	}
	return "unknown"
}

// allRegularTerminated reports whether every regular container has terminated.
func allRegularTerminated(v *PodView) bool {
	n := 0
	for _, c := range v.Containers {
		if c.Kind == KindRegular {
			if c.State != StateTerminated {
				return false
			}
			n++
		}
	}
	return n > 0
}

// initializingWhy says what a Pending pod waits for.
func initializingWhy(v *PodView) string {
	total, done := initProgress(v)
	for _, c := range v.Containers {
		if c.Kind != KindInit && c.Kind != KindSidecar {
			continue
		}
		if initDone(c) {
			continue
		}
		state := string(c.State)
		if c.Reason != "" {
			state += " " + c.Reason
		}
		if c.State == StateNone {
			state = "not started"
		}
		return fmt.Sprintf("%s %s (Init:%d/%d)", containerWho(c), strings.ToLower(state), done, total)
	}
	for _, c := range v.Containers {
		if c.Kind != KindRegular || c.State == StateRunning {
			continue
		}
		if c.Reason != "" {
			return fmt.Sprintf("%s %s", containerWho(c), c.Reason)
		}
		return fmt.Sprintf("%s %s", containerWho(c), strings.ToLower(orUnknown(string(c.State))))
	}
	if len(v.Containers) == 0 {
		return "no container statuses yet"
	}
	return "containers created, waiting for the kubelet to report Running"
}

// initProgress counts init containers (incl. sidecars) and how many are done.
func initProgress(v *PodView) (total, done int) {
	for _, c := range v.Containers {
		if c.Kind == KindInit || c.Kind == KindSidecar {
			total++
			if initDone(c) {
				done++
			}
		}
	}
	return total, done
}

// initDone: an init container completed successfully, or a sidecar has
// started (pkg/kubelet/status/generate.go isInitContainerInitialized: a
// sidecar counts once Started, not once Ready).
func initDone(c ContainerView) bool {
	if c.Kind == KindSidecar {
		return c.State == StateRunning && c.Started
	}
	return c.State == StateTerminated && c.ExitCode != nil && *c.ExitCode == 0
}

// failedWhy says why a Failed pod failed.
func failedWhy(pod *Pod, v *PodView) string {
	if pod.Reason != "" {
		s := pod.Reason
		if pod.Message != "" {
			s += ": " + oneLine(pod.Message, 120)
		}
		return s
	}
	// getPhase ignores sidecars, which are SIGTERMed once the regular
	// containers end (pkg/kubelet/kubelet_pods.go): blame a regular one first.
	for _, kind := range []ContainerKind{KindRegular, KindInit, KindSidecar} {
		for _, c := range v.Containers {
			if c.Kind == kind && c.State == StateTerminated && c.ExitCode != nil && *c.ExitCode != 0 {
				return fmt.Sprintf("%s exit %d %s", containerWho(c), *c.ExitCode, orUnknown(c.Reason))
			}
		}
	}
	return "no container reports a failure"
}

// readySummary is "2/3 containers ready" over regular containers and sidecars.
func readySummary(v *PodView) string {
	r, t := v.ReadyCount()
	return fmt.Sprintf("%d/%d containers ready", r, t)
}

// ReadyCount counts ready containers among regular containers and sidecars,
// as kubectl's READY column does.
func (p *PodView) ReadyCount() (ready, total int) {
	for _, c := range p.Containers {
		if c.Kind == KindRegular || c.Kind == KindSidecar {
			total++
			if c.Ready {
				ready++
			}
		}
	}
	return ready, total
}

// Restarts counts restarts as kubectl's RESTARTS column does
// (pkg/printers/internalversion/printers.go printPod): while the pod
// initializes, the init containers' restarts up to the first one not done;
// after, the regular containers' and sidecars' only.
func (p *PodView) Restarts() int32 {
	var initRestarts, sidecarRestarts, n int32
	initializing := false
	for _, c := range p.Containers {
		if c.Kind != KindInit && c.Kind != KindSidecar {
			continue
		}
		initRestarts += c.RestartCount
		if c.Kind == KindSidecar {
			sidecarRestarts += c.RestartCount
		}
		if !initDone(c) {
			initializing = true
			break
		}
	}
	if initializing && !p.condTrue(CondInitialized) {
		return initRestarts
	}
	n = sidecarRestarts
	for _, c := range p.Containers {
		if c.Kind == KindRegular {
			n += c.RestartCount
		}
	}
	return n
}

// condTrue reports whether the view's condition t is True.
func (p *PodView) condTrue(t string) bool {
	for _, c := range p.Conditions {
		if c.Type == t {
			return c.Status == "True"
		}
	}
	return false
}

// restartNote mentions the most restarted container of a serving pod.
func restartNote(v *PodView) string {
	var top *ContainerView
	for i := range v.Containers {
		c := &v.Containers[i]
		if c.RestartCount > 0 && (top == nil || c.RestartCount > top.RestartCount) {
			top = c
		}
	}
	if top == nil {
		return ""
	}
	s := fmt.Sprintf("; %s restarted %d times", containerWho(*top), top.RestartCount)
	if top.LastState != nil && top.LastState.Kind == StateTerminated {
		s += fmt.Sprintf(", last exit %d %s", top.LastState.ExitCode, orUnknown(top.LastState.Reason))
	}
	return s
}

// notReadyNote names the first container that is not ready and the Ready
// condition's reason.
func notReadyNote(pod *Pod, v *PodView) string {
	s := ""
	for _, c := range v.Containers {
		if (c.Kind == KindRegular || c.Kind == KindSidecar) && !c.Ready {
			s = fmt.Sprintf("; %s not ready (%s)", containerWho(c), strings.ToLower(orUnknown(string(c.State))))
			if c.ReadyFrom == FromUnknown {
				s = fmt.Sprintf("; %s readiness unknown (%s; the kubelet's prober cannot be read while it is cut off)",
					containerWho(c), strings.ToLower(orUnknown(string(c.State))))
			}
			break
		}
	}
	for _, c := range pod.Conditions {
		if c.Type == CondContainersReady && c.Status != "True" && c.Reason != "" {
			s += "; ContainersReady " + c.Status + ": " + c.Reason
		}
		// Ready is also gated by spec.readinessGates (pkg/kubelet/status/generate.go
		// GeneratePodReadyCondition): name the unmet gate.
		if c.Type == CondReady && c.Status != "True" && c.Reason == "ReadinessGatesNotReady" {
			s += "; readiness gates not ready: " + oneLine(c.Message, 160)
		}
	}
	return s
}

// runtimeSummary counts the runtime's view of the pod's containers.
func runtimeSummary(v *PodView) string {
	var running, exited, other int
	var lastExit *Container
	for _, c := range v.Containers {
		switch {
		case c.Runtime == nil:
			other++
		case c.Runtime.State == RuntimeRunning:
			running++
		case c.Runtime.State == RuntimeExited:
			exited++
			if lastExit == nil || c.Runtime.FinishedAt.After(lastExit.FinishedAt) {
				lastExit = c.Runtime
			}
		default:
			other++
		}
	}
	s := fmt.Sprintf("%d/%d containers running", running, len(v.Containers))
	if exited > 0 {
		s += fmt.Sprintf(", %d exited (last exit %d %s)", exited, lastExit.ExitCode, orUnknown(lastExit.Reason))
	}
	return s
}

func countKind(v *PodView, k StateKind) int {
	n := 0
	for _, c := range v.Containers {
		if c.State == k {
			n++
		}
	}
	return n
}

func condTrue(pod *Pod, t string) bool {
	for _, c := range pod.Conditions {
		if c.Type == t {
			return c.Status == "True"
		}
	}
	return false
}

func containerWho(c ContainerView) string {
	switch c.Kind {
	case KindInit:
		return fmt.Sprintf("init container %q", c.Name)
	case KindSidecar:
		return fmt.Sprintf("sidecar %q", c.Name)
	case KindEphemeral:
		return fmt.Sprintf("ephemeral container %q", c.Name)
	}
	return fmt.Sprintf("container %q", c.Name)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// oneLine flattens s to one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
