package lifecycle

import (
	"strings"
	"testing"
	"time"
)

// rac is a container restarted with its pod: restartPolicy Never of its
// own, and a rule that restarts every container on exit 42 (KEP-5532).
func rac(s ContainerStatus) ContainerStatus {
	s.RestartPolicy, s.RestartRules = "Never", "RestartAllContainers:In:42"
	return s
}

// racPod is a pod restarted in place as a whole, in the states a real 1.37.2
// kubelet's Pods API showed (kubelet TestRealKubelet, "RestartAllContainers"):
// pkg/kubelet/kubelet_pods.go getPhase and convertToAPIContainerStatuses,
// pkg/kubelet/status/generate.go GenerateAllContainersRestartingCondition.
func racPod(phase Phase, restarting string, cs ...ContainerStatus) *podB {
	p := pod("rac", phase, append(conds("True", "True", "False", "False"),
		Condition{Type: CondAllContainersRestarting, Status: restarting, LastTransitionTime: t0.Add(-2 * time.Second)}), cs...)
	p.RestartPolicy, p.Started = "Never", t0.Add(-time.Hour)
	if restarting == "True" {
		p.Conditions[len(p.Conditions)-1].Reason = "RestartAllContainersStarted"
	}
	return p
}

func removed(s ContainerStatus, n int32) ContainerStatus {
	s = restarts(n, 137, ReasonRestartingAllContainers, s)
	s.LastState.StartedAt, s.LastState.FinishedAt = time.Time{}, time.Time{}
	return s
}

func TestRestartAllContainers(t *testing.T) {
	setup := func(s ContainerStatus) ContainerStatus { return kind(KindInit, s) }
	wait := func(name, reason string) ContainerStatus {
		return ContainerStatus{Name: name, Kind: KindRegular, State: ContainerState{Kind: StateWaiting, Reason: reason}}
	}
	tests := []struct {
		name   string
		in     func() Input
		stage  Stage
		phase  Phase
		reason string
	}{
		{"the trigger exited, the condition True", func() Input {
			return input(racPod(PhaseRunning, "True", setup(cTerminated("setup", 0, ReasonCompleted)), rac(cTerminated("main", 42, ReasonError))))
		}, StageStarting, PhaseRunning, `restarting all containers in place: container "main" exited 42, which its RestartAllContainers rule matches`},
		{"every container removed", func() Input {
			in := input(racPod(PhaseRunning, "False", setup(removed(wait("setup", ReasonRestartingAllContainers), 1)),
				rac(removed(wait("main", ReasonRestartingAllContainers), 1))))
			in.Containers = nil // removed from the runtime too
			return in
		}, StageStarting, PhaseRunning, "restarting all containers in place: 2 removed (RestartingAllContainers)"},
		{"the init container runs again", func() Input {
			return input(racPod(PhasePending, "False", setup(removed(cRunning("setup", false), 1)),
				rac(removed(wait("main", ReasonPodInitializing), 1))))
		}, StageInitializing, PhasePending, `init container "setup" running`},
		{"serving again after one restart", func() Input {
			p := racPod(PhaseRunning, "False", setup(removed(cTerminated("setup", 0, ReasonCompleted), 1)), rac(removed(cRunning("main", true), 1)))
			p.Conditions = append(conds("True", "True", "True", "True"), p.Conditions[4])
			return input(p)
		}, StageServing, PhaseRunning, `restarted 1 times, last exit 137 RestartingAllContainers`},
		// The report: the runtime ahead of the kubelet's status.
		{"runtime ahead: the trigger exited, the kubelet still says running", func() Input {
			in := input(racPod(PhaseRunning, "False", setup(removed(cTerminated("setup", 0, ReasonCompleted), 1)), rac(removed(cRunning("main", true), 1))))
			c := in.Containers[1]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 42, ReasonError, t0.Add(-time.Second)
			return in
		}, StageStarting, PhaseRunning, `container "main" exited 42, which its RestartAllContainers rule matches`},
		{"runtime ahead: the init container done again, the kubelet still says running", func() Input {
			in := input(racPod(PhasePending, "False", setup(removed(cRunning("setup", false), 1)),
				rac(removed(wait("main", ReasonPodInitializing), 1))))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 0, ReasonCompleted, t0.Add(-time.Second)
			return in
		}, StageStarting, PhaseRunning, `container "main" not ready`},
		// The kubelet failing to kill or remove a container keeps the
		// condition True: past CrashLoopSettle the failure shows instead.
		{"a restart stuck for longer than a settle", func() Input {
			p := racPod(PhaseRunning, "True", setup(cTerminated("setup", 0, ReasonCompleted)), rac(cWaiting("main", ReasonImagePullBackOff)))
			p.Conditions[4].LastTransitionTime = t0.Add(-CrashLoopSettle)
			return input(p)
		}, StageFailing, PhaseRunning, `container "main" ImagePullBackOff`},
		// Without a matching rule, restartPolicy Never ends the pod.
		{"another exit code fails the pod", func() Input {
			in := input(racPod(PhaseRunning, "False", setup(cTerminated("setup", 0, ReasonCompleted)), rac(cRunning("main", true))))
			c := in.Containers[1]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 1, ReasonError, t0.Add(-time.Second)
			return in
		}, StageTerminated, PhaseFailed, `container "main" exit 1 Error`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(tc.in()))
			if v.Stage != tc.stage || v.Phase != tc.phase || !strings.Contains(v.StageReason, tc.reason) {
				t.Fatalf("%s %s %q; want %s %s containing %q", v.Stage, v.Phase, v.StageReason, tc.stage, tc.phase, tc.reason)
			}
		})
	}
}

// TestRestartAllLoop: a pod restarted in place again and again is Failing
// while its restarts come less than CrashLoopSettle apart, as this
// correlator saw them end (the AllContainersRestarting condition back to
// False, a new transition time each time).
func TestRestartAllLoop(t *testing.T) {
	// ended is the pod serving again after its n-th restart, which ended at end.
	ended := func(n int32, end, now time.Time) Input { return restartedInPlace(n, end, now, true) }
	type step struct {
		in    Input
		stage Stage
		why   string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"restarts 10 s apart: a loop, until it has run a settle", []step{
			{ended(1, t0.Add(-15*time.Second), t0.Add(-14*time.Second)), StageServing, "1/1 containers ready"},
			{ended(2, t0.Add(-5*time.Second), t0), StageFailing, "restarting all containers in a loop: restarted in place at 2026-11-25T09:59:45Z and again 10s later (RestartAllContainers; 2 restarts in all)"},
			{ended(2, t0.Add(-5*time.Second), t0.Add(CrashLoopSettle)), StageServing, "1/1 containers ready"}}},
		// A pod that served for a long time, then loops: the gap between the
		// last two restarts counts, not the pod's age.
		{"a long-lived pod that starts looping", []step{
			{ended(1, t0.Add(-24*time.Hour), t0.Add(-24*time.Hour)), StageServing, ""},
			{ended(2, t0.Add(-20*time.Second), t0.Add(-19*time.Second)), StageServing, ""},
			{ended(3, t0.Add(-5*time.Second), t0), StageFailing, "again 15s later"}}},
		{"restarts a day apart: no loop", []step{
			{ended(1, t0.Add(-24*time.Hour), t0.Add(-24*time.Hour)), StageServing, ""},
			{ended(2, t0.Add(-5*time.Second), t0), StageServing, ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Correlator
			for i, st := range tc.steps {
				v := onlyPod(c.Correlate(st.in))
				if v.Stage != st.stage || !strings.Contains(v.StageReason, st.why) {
					t.Fatalf("step %d: %s %q; want %s containing %q", i, v.Stage, v.StageReason, st.stage, st.why)
				}
			}
		})
	}
}
