package lifecycle

// Tests for behaviours that a mutation audit (issue 21, item 8: one operator
// flipped at a time) found no test guarding. Each drives Correlate, a
// Correlator or Diff with a whole node and checks what a user sees; where
// Kubernetes is the reference, the test names the upstream source it follows
// (kubernetes/kubernetes, v1.37).

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// rtAttempt is attempt n of container name of pod p in the runtime, with
// the ID the builders give it ("<pod>-<name>-<n>").
func rtAttempt(p *podB, name string, n uint32, state RuntimeState, created time.Time) Container {
	return Container{ID: fmt.Sprintf("%s-%s-%d", p.Name, name, n), SandboxID: "sb-" + p.Name, PodUID: p.UID,
		PodName: p.Name, PodNamespace: p.Namespace, Name: name, Attempt: n, State: state,
		CreatedAt: created, StartedAt: created.Add(time.Second)}
}

// exitedAt is c exited with code at end.
func exitedAt(c Container, code int32, reason string, end time.Time) Container {
	c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, code, reason, end
	return c
}

// withRuntime is the node where both sources are fresh, the runtime holding
// exactly cs for pod p (and its ready sandbox).
func withRuntime(p *podB, cs ...Container) Input {
	in := input(p)
	in.Containers = ptrs(cs...)
	return in
}

func containerOf(t *testing.T, v PodView, name string) ContainerView {
	t.Helper()
	for _, c := range v.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q in %+v", name, v.Containers)
	return ContainerView{}
}

// TestAuditDerivedPhaseWithSidecar: where the runtime is ahead of the
// kubelet's copy, the pod's phase is derived as getPhase computes it
// (pkg/kubelet/kubelet_pods.go getPhase, the restartable init containers'
// loop): a running sidecar counts as running, a terminated sidecar or one
// waiting after an exit (its restart back-off) is not counted at all, and
// one waiting with no earlier exit keeps the pod Pending.
func TestAuditDerivedPhaseWithSidecar(t *testing.T) {
	mk := func(proxy ContainerStatus) *podB {
		proxy.RestartPolicy = "Always"
		return pod("sc", PhaseRunning, conds("True", "True", "True", "True"), started(true, kind(KindSidecar, proxy)), cRunning("app", true))
	}
	since := t0.Add(-30 * time.Minute)
	tests := []struct {
		name string
		in   func() Input
		want Phase
	}{
		{"the sidecar's first exit, not restarted yet, the app running", func() Input {
			p := mk(cRunning("proxy", true))
			return withRuntime(p, exitedAt(rtAttempt(p, "proxy", 0, "", since), 1, ReasonError, t0.Add(-2*time.Second)),
				rtAttempt(p, "app", 0, RuntimeRunning, since))
		}, PhaseRunning},
		{"the sidecar in its restart back-off, the app running", func() Input {
			p := mk(restarts(1, 1, ReasonError, cRunning("proxy", true)))
			return withRuntime(p, exitedAt(rtAttempt(p, "proxy", 1, "", since), 1, ReasonError, t0.Add(-2*time.Second)),
				rtAttempt(p, "app", 0, RuntimeRunning, since))
		}, PhaseRunning},
		{"the app's first exit while the sidecar runs", func() Input {
			p := mk(cRunning("proxy", true))
			return withRuntime(p, rtAttempt(p, "proxy", 0, RuntimeRunning, since),
				exitedAt(rtAttempt(p, "app", 0, "", since), 1, ReasonError, t0.Add(-2*time.Second)))
		}, PhaseRunning},
		{"the sidecar being created again, no earlier exit on record", func() Input {
			p := mk(cRunning("proxy", true))
			return withRuntime(p, rtAttempt(p, "proxy", 1, RuntimeCreated, t0.Add(-time.Second)),
				rtAttempt(p, "app", 0, RuntimeRunning, since))
		}, PhasePending},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(tc.in()))
			if v.StatusFrom != FromRuntime || v.Phase != tc.want {
				t.Fatalf("phase %s from %s, want %s derived from the runtime (%s)", v.Phase, v.StatusFrom, tc.want, v.StageReason)
			}
		})
	}
}

// TestAuditDerivedLastState: a container derived from the runtime's newer
// attempt takes its last state from the attempt just before it, as the
// kubelet's status will (pkg/kubelet/kubelet_pods.go
// convertToAPIContainerStatuses: lastTerminationState from the previous
// dead container); where the runtime no longer has that attempt, the
// kubelet's own last state is kept.
func TestAuditDerivedLastState(t *testing.T) {
	t.Run("from the runtime's previous attempt", func(t *testing.T) {
		p := pod("web", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
		in := withRuntime(p, exitedAt(rtAttempt(p, "app", 0, "", t0.Add(-30*time.Minute)), 137, ReasonOOMKilled, t0.Add(-20*time.Second)),
			rtAttempt(p, "app", 1, RuntimeRunning, t0.Add(-6*time.Second)))
		c := containerOf(t, onlyPod(Correlate(in)), "app")
		ls := c.LastState
		if c.State != StateRunning || c.RestartCount != 1 || ls == nil || ls.ExitCode != 137 || ls.Reason != ReasonOOMKilled ||
			ls.ContainerID != "containerd://web-app-0" || !ls.FinishedAt.Equal(t0.Add(-20*time.Second)) {
			t.Fatalf("derived %s, %d restarts, last state %+v; want running, 1 restart, last state attempt 0's OOMKilled exit 137", c.State, c.RestartCount, ls)
		}
	})
	// restartPolicy OnFailure: an exit 0 is not restarted, the pod is done.
	t.Run("the kubelet's, where the runtime removed the earlier attempt", func(t *testing.T) {
		p := pod("job", PhaseRunning, conds("True", "True", "True", "True"), restarts(1, 1, ReasonError, cRunning("work", true)))
		p.RestartPolicy = "OnFailure"
		in := withRuntime(p, exitedAt(rtAttempt(p, "work", 1, "", t0.Add(-time.Minute)), 0, ReasonCompleted, t0.Add(-2*time.Second)))
		v := onlyPod(Correlate(in))
		c := containerOf(t, v, "work")
		if c.State != StateTerminated || c.LastState == nil || c.LastState.ExitCode != 1 || c.RestartCount != 1 {
			t.Fatalf("derived %s, %d restarts, last state %+v; want terminated, 1 restart, the kubelet's last exit 1", c.State, c.RestartCount, c.LastState)
		}
		if v.Phase != PhaseSucceeded || v.Stage != StageTerminated {
			t.Fatalf("%s %s (%s); want Succeeded (getPhase: OnFailure does not restart an exit 0)", v.Phase, v.Stage, v.StageReason)
		}
	})
}

// TestAuditDerivedRestartCount: where the kubelet's copy names an attempt the
// runtime no longer has, the derived restart count adds to the kubelet's
// count only the attempts made since (the kubelet reports the new attempt's
// own restart count: kuberuntime's container status, annotation
// io.kubernetes.container.restartCount), not all of them again.
func TestAuditDerivedRestartCount(t *testing.T) {
	p := pod("web", PhaseRunning, conds("True", "True", "True", "True"), restarts(2, 1, ReasonError, cRunning("app", true)))
	in := withRuntime(p, rtAttempt(p, "app", 3, RuntimeRunning, t0.Add(-3*time.Second)))
	v := onlyPod(Correlate(in))
	c := containerOf(t, v, "app")
	if v.StatusFrom != FromRuntime || c.RestartCount != 3 || c.ContainerID != "containerd://web-app-3" || v.Restarts() != 3 {
		t.Fatalf("from %s: %d restarts (pod %d), ID %s; want derived, 3 restarts, containerd://web-app-3", v.StatusFrom, c.RestartCount, v.Restarts(), c.ContainerID)
	}
}

// TestAuditLagTimedFromTheNewAttempt: the kubelet's copy already shows a
// container's exit (Waiting in back-off); the runtime has since started the
// next attempt. The copy lags from that start, not from the exit it already
// shows: within the mismatch grace there is no restart-count mismatch, and
// the copy is said to lag since the new attempt's creation.
func TestAuditLagTimedFromTheNewAttempt(t *testing.T) {
	w := restarts(1, 1, ReasonError, cWaiting("app", ReasonCrashLoopBackOff))
	p := pod("loop", PhaseRunning, conds("True", "True", "False", "False"), w)
	created := t0.Add(-6 * time.Second)
	in := withRuntime(p, exitedAt(rtAttempt(p, "app", 1, "", t0.Add(-90*time.Second)), 1, ReasonError, t0.Add(-time.Minute)),
		rtAttempt(p, "app", 2, RuntimeRunning, created))
	v := onlyPod(Correlate(in))
	if v.KubeletCache == nil || !v.KubeletCache.LagsSince.Equal(created) {
		t.Fatalf("kubelet's copy %+v: want it lagging since %s, the new attempt's creation", v.KubeletCache, created)
	}
	if len(v.Mismatches) != 0 {
		t.Fatalf("mismatches %+v within the %s grace of the new attempt", v.Mismatches, DefaultMismatchGrace)
	}
	if c := containerOf(t, v, "app"); c.State != StateRunning || c.RestartCount != 2 {
		t.Fatalf("derived %s with %d restarts, want running with 2", c.State, c.RestartCount)
	}
	// Ready turns True with the derived running container (no readiness
	// probe): a changed condition's lastTransitionTime moves to when the
	// change began, an unchanged one keeps its own (pkg/kubelet/status
	// status_manager.go updateLastTransitionTime).
	for _, c := range v.Conditions {
		want := t0.Add(-time.Minute) // conds' time
		if c.Type == CondReady || c.Type == CondContainersReady {
			want = created
		}
		if !c.LastTransitionTime.Equal(want) {
			t.Errorf("condition %s=%s changed at %s, want %s", c.Type, c.Status, c.LastTransitionTime, want)
		}
	}
}

// TestAuditUnknownRuntimeStateIsNotCompletion: a container whose newest
// attempt the runtime reports in an unknown state has not completed: the pod
// is Unknown (container-state-unknown), its derived phase not terminal.
func TestAuditUnknownRuntimeStateIsNotCompletion(t *testing.T) {
	p := pod("web", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	in := withRuntime(p, exitedAt(rtAttempt(p, "app", 0, "", t0.Add(-30*time.Minute)), 1, ReasonError, t0.Add(-5*time.Second)),
		rtAttempt(p, "app", 1, RuntimeUnknown, t0.Add(-3*time.Second)))
	v := onlyPod(Correlate(in))
	if v.Phase == PhaseSucceeded || v.Phase == PhaseFailed || v.Stage != StageUnknown || v.UnknownCause != CauseContainerUnknown {
		t.Fatalf("%s %s %q cause %q; want a non-terminal phase, Unknown, %s", v.Phase, v.Stage, v.StageReason, v.UnknownCause, CauseContainerUnknown)
	}
}

// restartedInPlace is the node at now of a pod restarted in place as a whole
// n times (KEP-5532), the last restart ended at end (AllContainersRestarting
// back to False), its container ready or not.
func restartedInPlace(n int32, end, now time.Time, ready bool) Input {
	r := map[bool]string{true: "True", false: "False"}[ready]
	p := racPod(PhaseRunning, "False", kind(KindInit, removed(cTerminated("setup", 0, ReasonCompleted), n)), rac(removed(cRunning("main", ready), n)))
	p.Conditions = append(conds("True", "True", r, r), p.Conditions[4])
	p.Conditions[4].LastTransitionTime = end
	in := input(p)
	in.Now, in.Kubelet.LastSuccess, in.Runtime.LastSuccess = now, now, now
	return in
}

// TestAuditRestartLoopBoundary: a pod restarted in place as a whole is in a
// loop when its last two restarts ended less than 60 s (CrashLoopSettle)
// apart; exactly 60 s apart is no loop.
func TestAuditRestartLoopBoundary(t *testing.T) {
	for _, tc := range []struct {
		apart time.Duration
		want  Stage
	}{{59 * time.Second, StageFailing}, {60 * time.Second, StageServing}} {
		t.Run(tc.apart.String(), func(t *testing.T) {
			var c Correlator
			c.Correlate(restartedInPlace(1, t0.Add(-5*time.Second-tc.apart), t0.Add(-4*time.Second-tc.apart), true))
			v := onlyPod(c.Correlate(restartedInPlace(2, t0.Add(-5*time.Second), t0, true)))
			if v.Stage != tc.want || (tc.want == StageFailing) != strings.Contains(v.StageReason, "in a loop") {
				t.Fatalf("restarts %s apart: %s %q, want %s", tc.apart, v.Stage, v.StageReason, tc.want)
			}
		})
	}
}

// TestAuditOneRestartIsNoLoop: a pod restarted in place once, whose view is
// built again (its container turned unready), has still restarted once: the
// correlator counts each restart's end once, so it sees no loop.
func TestAuditOneRestartIsNoLoop(t *testing.T) {
	end := t0.Add(-20 * time.Second)
	var c Correlator
	if v := onlyPod(c.Correlate(restartedInPlace(1, end, t0.Add(-19*time.Second), true))); v.Stage != StageServing {
		t.Fatalf("after one restart: %s %q, want Serving", v.Stage, v.StageReason)
	}
	if v := onlyPod(c.Correlate(restartedInPlace(1, end, t0, false))); v.Stage != StageStarting || strings.Contains(v.StageReason, "loop") {
		t.Fatalf("the same restart, container unready: %s %q, want Starting, no loop", v.Stage, v.StageReason)
	}
}

// TestAuditInRuntime: a pod is in the runtime's view when the runtime has its
// sandbox, even before any of its containers exists.
func TestAuditInRuntime(t *testing.T) {
	p := pod("boot", PhasePending, conds("True", "True", "False", "False"), cWaiting("app", ReasonContainerCreating))
	in := input(p)
	if v := onlyPod(Correlate(in)); !v.InRuntime || v.Sandbox == nil {
		t.Fatalf("a sandbox, no container: in runtime %v, sandbox %v; want in the runtime", v.InRuntime, v.Sandbox)
	}
	in.Sandboxes = nil
	if v := onlyPod(Correlate(in)); v.InRuntime {
		t.Fatal("no sandbox, no container: in the runtime, want not")
	}
}

// TestAuditFinishedPodsLoseTheirContainers: the runtime removing the
// containers of a pod that has finished (Succeeded, Failed) or is being
// deleted is garbage collection, not a container missing in the runtime; a
// running pod's container that vanished is.
func TestAuditFinishedPodsLoseTheirContainers(t *testing.T) {
	tests := []struct {
		name string
		p    *podB
		want int
	}{
		{"Succeeded", pod("done", PhaseSucceeded, conds("True", "True", "False", "False"), cTerminated("app", 0, ReasonCompleted)), 0},
		{"Failed", pod("failed", PhaseFailed, conds("True", "True", "False", "False"), cTerminated("app", 1, ReasonError)), 0},
		{"being deleted", func() *podB {
			p := pod("going", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
			p.Deleting = t0.Add(20 * time.Second)
			return p
		}(), 0},
		{"running", pod("live", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true)), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.RestartPolicy = "Never"
			in := input(tc.p)
			in.Containers = nil
			v := onlyPod(Correlate(in))
			n := 0
			for _, m := range v.Mismatches {
				if m.Kind == MismatchMissingInRuntime {
					n++
				}
			}
			if n != tc.want {
				t.Fatalf("%d container-missing-in-runtime mismatches (%+v), want %d", n, v.Mismatches, tc.want)
			}
		})
	}
}

// TestAuditJoinWithoutContainerID: a container the kubelet lists without an
// ID is joined to the runtime's container of the same name and attempt (its
// restart count), never to another container of the pod.
func TestAuditJoinWithoutContainerID(t *testing.T) {
	debug := ContainerStatus{Name: "debug", Kind: KindEphemeral, State: ContainerState{Kind: StateWaiting}}
	p := pod("j", PhasePending, conds("True", "True", "False", "False"), cRunning("a", false), cWaiting("b", ReasonContainerCreating), debug)
	in := withRuntime(p, rtAttempt(p, "a", 0, RuntimeRunning, t0.Add(-time.Hour)), rtAttempt(p, "debug", 0, RuntimeRunning, t0.Add(-time.Second)))
	v := onlyPod(Correlate(in))
	if b := containerOf(t, v, "b"); b.Runtime != nil {
		t.Fatalf("container b, not in the runtime, joined to %s", b.Runtime.ID)
	}
	if d := containerOf(t, v, "debug"); d.Runtime == nil || d.Runtime.ID != "j-debug-0" {
		t.Fatalf("ephemeral container debug joined to %+v, want the runtime's j-debug-0", d.Runtime)
	}
}

// TestAuditRestartNoteWithoutLastState: a serving pod's restarted container
// whose last state the kubelet no longer reports is still named with its
// restarts.
func TestAuditRestartNoteWithoutLastState(t *testing.T) {
	c := cRunning("app", true)
	c.RestartCount = 2
	v := onlyPod(Correlate(input(pod("web", PhaseRunning, conds("True", "True", "True", "True"), c))))
	if v.Stage != StageServing || !strings.HasSuffix(v.StageReason, `; container "app" restarted 2 times`) {
		t.Fatalf("%s %q; want Serving, naming the 2 restarts", v.Stage, v.StageReason)
	}
}

// TestAuditLatestSandbox: of two sandboxes of a pod with the same attempt,
// the newer one is the pod's, whatever order the runtime lists them in
// (pkg/kubelet/kuberuntime/helpers.go podSandboxByCreatedThenID: newest
// first; kuberuntime_manager.go uses the first).
func TestAuditLatestSandbox(t *testing.T) {
	p := pod("web", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	in := input(p)
	newer := in.Sandboxes[0]
	older := newer
	older.ID, older.State, older.CreatedAt = "sb-web-old", SandboxNotReady, newer.CreatedAt.Add(-time.Hour)
	for _, order := range [][]Sandbox{{older, newer}, {newer, older}} {
		in.Sandboxes = order
		v := onlyPod(Correlate(in))
		if v.Sandbox == nil || v.Sandbox.ID != newer.ID || len(v.Mismatches) != 0 {
			t.Fatalf("listed %s, %s: sandbox %+v, mismatches %+v; want %s, none", order[0].ID, order[1].ID, v.Sandbox, v.Mismatches, newer.ID)
		}
	}
}

// TestAuditProbedReadinessWhateverTheOrder: while the kubelet is cut off,
// every container with a readiness probe takes the prober's result, also one
// listed after a container without a probe.
func TestAuditProbedReadinessWhateverTheOrder(t *testing.T) {
	plain := cRunning("log", true)
	probed := cRunning("app", true)
	probed.ReadinessProbe = true
	p := pod("web", PhaseRunning, conds("True", "True", "True", "True"), plain, probed)
	p.StatusFrom = FromKubeletCache
	in := input(p)
	in.KubeletLink = KubeletLink{CutOff: true, Since: t0.Add(-time.Minute), Evidence: "test"}
	in.Readiness = map[string]ProbeReadiness{p.UID + "/app": {Ready: false, At: t0}}
	v := onlyPod(Correlate(in))
	if app := containerOf(t, v, "app"); app.Ready || app.ReadyFrom != FromProbes {
		t.Fatalf("probed container ready=%v from %q; want the prober's not ready", app.Ready, app.ReadyFrom)
	}
	if v.Stage == StageServing {
		t.Fatalf("%s %q; want not Serving", v.Stage, v.StageReason)
	}
}

// TestAuditCompletedInitContainerIsNotDoneForGood: under restartPolicy
// Never, a completed init container is how every start goes; the pod whose
// app runs but is not ready yet is Starting. kubectl's NotReady looks at the
// regular containers only (pkg/printers/internalversion/printers.go printPod).
func TestAuditCompletedInitContainerIsNotDoneForGood(t *testing.T) {
	app := cRunning("app", false)
	app.ReadinessProbe = true
	p := pod("web", PhaseRunning, conds("True", "True", "False", "False"), kind(KindInit, cTerminated("setup", 0, ReasonCompleted)), app)
	p.RestartPolicy = "Never"
	v := onlyPod(Correlate(input(p)))
	if v.Stage != StageStarting {
		t.Fatalf("%s %q; want Starting", v.Stage, v.StageReason)
	}
}

// TestAuditExitBeforeRestartIsFailing: a running pod's only container just
// exited with an error, and the kubelet shows it terminated before it
// restarts it: the pod is Failing, naming the exit.
func TestAuditExitBeforeRestartIsFailing(t *testing.T) {
	v := onlyPod(Correlate(input(pod("web", PhaseRunning, conds("True", "True", "False", "False"), cTerminated("app", 1, ReasonError)))))
	if v.Stage != StageFailing || !strings.Contains(v.StageReason, `container "app" exited 1 Error`) {
		t.Fatalf("%s %q; want Failing, container \"app\" exited 1 Error", v.Stage, v.StageReason)
	}
}

// TestAuditRestartsWhileInitializing: while a pod initializes (Initialized
// not True), its restarts are the init containers' (kubectl's RESTARTS,
// pkg/printers/internalversion/printers.go printPod).
func TestAuditRestartsWhileInitializing(t *testing.T) {
	setup := restarts(3, 1, ReasonError, kind(KindInit, cWaiting("setup", ReasonCrashLoopBackOff)))
	p := pod("init", PhasePending, conds("True", "False", "False", "False"), setup, cWaiting("app", ReasonPodInitializing))
	v := onlyPod(Correlate(input(p)))
	if n := v.Restarts(); n != 3 {
		t.Fatalf("restarts %d, want the init container's 3", n)
	}
}

// TestAuditNotReadyNoteOnce: a starting pod's reason names the
// ContainersReady condition's reason once (the Ready condition, False for
// the same reason, adds nothing).
func TestAuditNotReadyNoteOnce(t *testing.T) {
	v := onlyPod(Correlate(input(pod("web", PhaseRunning, conds("True", "True", "False", "False"), cRunning("app", false)))))
	if v.Stage != StageStarting || strings.Count(v.StageReason, "ContainersReady False: ContainersNotReady") != 1 ||
		strings.Count(v.StageReason, "ContainersNotReady") != 1 {
		t.Fatalf("%s %q; want Starting, naming ContainersReady False: ContainersNotReady once", v.Stage, v.StageReason)
	}
}

// TestAuditDiffSameMismatch: two snapshots of the same node with the same
// mismatch, built apart, give no transition (Diff: identical snapshots give
// none).
func TestAuditDiffSameMismatch(t *testing.T) {
	p := pod("z", PhaseRunning, conds("True", "True", "False", "False"), cTerminated("app", 0, ReasonCompleted), cRunning("side", true))
	p.Containers[0].State.ContainerID = p.Containers[0].ContainerID
	in := input(p)
	in.Containers[0].State = RuntimeRunning // the runtime still runs what the kubelet calls terminated
	a, b := Correlate(in), Correlate(in)
	if len(onlyPod(a).Mismatches) == 0 {
		t.Fatalf("no mismatch in %+v", onlyPod(a))
	}
	if d := Diff(&a, &b); len(d) != 0 {
		t.Fatalf("transitions between equal snapshots: %+v", d)
	}
}

// TestAuditLagTimedFromTheExit: the kubelet's copy still says running an
// attempt that exited a minute ago, and the runtime has restarted it since:
// the copy lags from the exit it does not show, so past the mismatch grace
// both the exit and the restart count are mismatches.
func TestAuditLagTimedFromTheExit(t *testing.T) {
	p := pod("stuck", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	exit := t0.Add(-time.Minute)
	in := withRuntime(p, exitedAt(rtAttempt(p, "app", 0, "", t0.Add(-30*time.Minute)), 1, ReasonError, exit),
		rtAttempt(p, "app", 1, RuntimeRunning, t0.Add(-5*time.Second)))
	v := onlyPod(Correlate(in))
	if v.KubeletCache == nil || !v.KubeletCache.LagsSince.Equal(exit) {
		t.Fatalf("kubelet's copy %+v: want it lagging since the exit at %s", v.KubeletCache, exit)
	}
	kinds := map[MismatchKind]bool{}
	for _, m := range v.Mismatches {
		kinds[m.Kind] = true
	}
	if !kinds[MismatchRunningButExited] || !kinds[MismatchRestartCount] {
		t.Fatalf("mismatches %+v; want %s and %s a minute after the exit", v.Mismatches, MismatchRunningButExited, MismatchRestartCount)
	}
}

// TestAuditSidecarAndAppBothKilled: a running pod whose sidecar and only
// app container were both killed (before the kubelet restarts them) is
// Failing for the app's exit; a sidecar stopped while the regular containers
// are all stopped is not itself the failure (getPhase leaves sidecars out).
func TestAuditSidecarAndAppBothKilled(t *testing.T) {
	proxy := kind(KindSidecar, cTerminated("proxy", 137, ReasonOOMKilled))
	proxy.RestartPolicy = "Always"
	p := pod("oom", PhaseRunning, conds("True", "True", "False", "False"), proxy, cTerminated("app", 137, ReasonOOMKilled))
	v := onlyPod(Correlate(input(p)))
	if v.Stage != StageFailing || !strings.Contains(v.StageReason, `container "app" exited 137 OOMKilled`) {
		t.Fatalf("%s %q; want Failing for container \"app\" exited 137 OOMKilled", v.Stage, v.StageReason)
	}
}

// TestAuditCrashLoopingSidecarBetweenAppRestarts: a sidecar in its crash
// back-off is Failing also while the app is between two of its restarts.
func TestAuditCrashLoopingSidecarBetweenAppRestarts(t *testing.T) {
	proxy := restarts(3, 1, ReasonError, kind(KindSidecar, cWaiting("proxy", ReasonCrashLoopBackOff)))
	proxy.RestartPolicy = "Always"
	p := pod("loop", PhaseRunning, conds("True", "True", "False", "False"), proxy, cTerminated("app", 0, ReasonCompleted))
	v := onlyPod(Correlate(input(p)))
	if v.Stage != StageFailing || !strings.Contains(v.StageReason, `sidecar "proxy" CrashLoopBackOff`) {
		t.Fatalf("%s %q; want Failing for sidecar \"proxy\" CrashLoopBackOff", v.Stage, v.StageReason)
	}
}

// TestAuditRestartingAllNamesTheConditionReason: a pod whose kubelet says it
// is restarting all containers (AllContainersRestarting True,
// pkg/kubelet/status/generate.go RestartAllContainersStarted) is Starting,
// with the condition's reason.
func TestAuditRestartingAllNamesTheConditionReason(t *testing.T) {
	p := racPod(PhaseRunning, "True", kind(KindInit, cTerminated("setup", 0, ReasonCompleted)), rac(cRunning("main", true)))
	v := onlyPod(Correlate(input(p)))
	if v.Stage != StageStarting || !strings.Contains(v.StageReason, "(AllContainersRestarting RestartAllContainersStarted since ") {
		t.Fatalf("%s %q; want Starting, naming AllContainersRestarting RestartAllContainersStarted", v.Stage, v.StageReason)
	}
}

// TestAuditRestartsCountSidecars: once a pod has initialized, its restarts
// are its regular containers' and its sidecars' (kubectl's RESTARTS,
// pkg/printers/internalversion/printers.go printPod:
// restartableInitContainerRestarts).
func TestAuditRestartsCountSidecars(t *testing.T) {
	proxy := started(true, restarts(2, 1, ReasonError, kind(KindSidecar, cRunning("proxy", true))))
	proxy.RestartPolicy = "Always"
	p := pod("web", PhaseRunning, conds("True", "True", "True", "True"), kind(KindInit, cTerminated("setup", 0, ReasonCompleted)),
		proxy, restarts(1, 1, ReasonError, cRunning("app", true)))
	v := onlyPod(Correlate(input(p)))
	if n := v.Restarts(); n != 3 {
		t.Fatalf("restarts %d, want 3: the sidecar's 2 and the app's 1", n)
	}
}

// TestAuditReadinessGateNote: containers ready, the Ready condition False for
// an unmet readiness gate (pkg/kubelet/status/generate.go
// GeneratePodReadyCondition, ReadinessGatesNotReady): the pod is Starting,
// naming the gate, and says nothing of ContainersReady, which is True.
func TestAuditReadinessGateNote(t *testing.T) {
	p := pod("gated", PhaseRunning, conds("True", "True", "True", "False"), cRunning("app", true))
	ready := &p.Conditions[3]
	ready.Reason, ready.Message = "ReadinessGatesNotReady", `corresponding condition of pod readiness gate "lb/registered" does not exist.`
	v := onlyPod(Correlate(input(p)))
	if v.Stage != StageStarting || !strings.Contains(v.StageReason, `readiness gates not ready: corresponding condition of pod readiness gate "lb/registered"`) ||
		strings.Contains(v.StageReason, "ContainersReady") {
		t.Fatalf("%s %q; want Starting, naming the gate and not ContainersReady", v.Stage, v.StageReason)
	}
}

// TestAuditDiffSameKindOtherContainer: a mismatch of a kind already shown
// for one container, appearing for another, is a transition.
func TestAuditDiffSameKindOtherContainer(t *testing.T) {
	p := pod("z", PhaseRunning, conds("True", "True", "False", "False"), cTerminated("a", 0, ReasonCompleted), cTerminated("b", 0, ReasonCompleted), cRunning("c", true))
	for i := range 2 {
		p.Containers[i].State.ContainerID = p.Containers[i].ContainerID
	}
	in := input(p)
	in.Containers[0].State = RuntimeRunning
	before := Correlate(in)
	in.Containers[1].State = RuntimeRunning
	after := Correlate(in)
	var got []string
	for _, tr := range Diff(&before, &after) {
		if tr.Kind == TransitionMismatchAppeared || tr.Kind == TransitionMismatchCleared {
			got = append(got, string(tr.Kind)+" "+tr.Container+" "+tr.To)
		}
	}
	if want := string(TransitionMismatchAppeared) + " b " + string(MismatchZombie); len(got) != 1 || got[0] != want {
		t.Fatalf("mismatch transitions %q, want [%q]", got, want)
	}
}

// TestAuditRestartEndsOnlyAfterARestart: the kubelet keeps the
// AllContainersRestarting condition False on a pod it has not restarted
// (pkg/kubelet/status/generate.go GenerateAllContainersRestartingCondition),
// and True while a restart is under way: neither is the end of a restart,
// so the first restart that ends soon after is one restart, no loop.
func TestAuditRestartEndsOnlyAfterARestart(t *testing.T) {
	setup := func(s ContainerStatus) ContainerStatus { return kind(KindInit, s) }
	wait := func(name string) ContainerStatus {
		return removed(ContainerStatus{Name: name, Kind: KindRegular, State: ContainerState{Kind: StateWaiting, Reason: ReasonRestartingAllContainers}}, 1)
	}
	at := func(p *podB, since, now time.Time) Input {
		p.Conditions[len(p.Conditions)-1].LastTransitionTime = since
		in := input(p)
		in.Now, in.Kubelet.LastSuccess, in.Runtime.LastSuccess = now, now, now
		return in
	}
	for _, tc := range []struct {
		name  string
		first Input
	}{
		{"False before any restart", func() Input {
			p := racPod(PhaseRunning, "False", setup(cTerminated("setup", 0, ReasonCompleted)), rac(cRunning("main", true)))
			p.Conditions = append(conds("True", "True", "True", "True"), p.Conditions[4])
			return at(p, t0.Add(-50*time.Second), t0.Add(-49*time.Second))
		}()},
		{"True while restarting", func() Input {
			in := at(racPod(PhaseRunning, "True", setup(wait("setup")), rac(wait("main"))), t0.Add(-10*time.Second), t0.Add(-9*time.Second))
			in.Containers = nil
			return in
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Correlator
			c.Correlate(tc.first)
			if v := onlyPod(c.Correlate(restartedInPlace(1, t0.Add(-2*time.Second), t0, true))); v.Stage != StageServing {
				t.Fatalf("after the first restart: %s %q, want Serving", v.Stage, v.StageReason)
			}
		})
	}
}

// TestAuditKubeletAheadOfTheRuntime: the kubelet counting one restart more
// than the runtime has attempts is a restart-count mismatch, unless it lost
// the container's state (ContainerStatusUnknown counts one restart without
// a new attempt: pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses).
func TestAuditKubeletAheadOfTheRuntime(t *testing.T) {
	for _, tc := range []struct {
		reason string
		want   bool
	}{{ReasonError, true}, {ReasonContainerStatusUnknown, false}} {
		t.Run(tc.reason, func(t *testing.T) {
			p := pod("ahead", PhaseRunning, conds("True", "True", "True", "True"), restarts(2, 137, tc.reason, cRunning("app", true)))
			in := input(p)
			in.Containers[0].Attempt = 1
			got := false
			for _, m := range onlyPod(Correlate(in)).Mismatches {
				got = got || m.Kind == MismatchRestartCount
			}
			if got != tc.want {
				t.Fatalf("last state %s, restartCount 2, runtime attempt 1: restart-count mismatch %v, want %v", tc.reason, got, tc.want)
			}
		})
	}
}
