package lifecycle

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestStageTable(t *testing.T) {
	initDone := func(name string) ContainerStatus {
		return kind(KindInit, cTerminated(name, 0, ReasonCompleted))
	}
	tests := []struct {
		name   string
		pod    *podB
		stage  Stage
		reason string // substring of StageReason
	}{
		// The article's table, one row each.
		{"article Initializing", pod("p", PhasePending, conds("True", "False", "False", "False"),
			cWaiting("app", ReasonContainerCreating)), StageInitializing, `container "app" ContainerCreating`},
		{"article Starting", pod("p", PhaseRunning, conds("True", "True", "False", "False"),
			cRunning("app", false)), StageStarting, `0/1 containers ready; container "app" not ready (running)`},
		{"article Serving", pod("p", PhaseRunning, conds("True", "True", "True", "True"),
			cRunning("app", true), cRunning("side", true)), StageServing, "Serving: 2/2 containers ready"},
		{"article Terminated Succeeded", pod("p", PhaseSucceeded, conds("True", "True", "False", "False"),
			cTerminated("app", 0, ReasonCompleted)), StageTerminated, "Terminated: Succeeded, 1 containers completed"},
		{"article Terminated Failed", pod("p", PhaseFailed, conds("True", "True", "False", "False"),
			cTerminated("app", 1, ReasonError)), StageTerminated, `Terminated: Failed, container "app" exit 1 Error`},
		{"article Failing", pod("p", PhaseRunning, conds("True", "False", "False", "False"),
			restarts(3, 137, ReasonOOMKilled, cWaiting("web", ReasonCrashLoopBackOff))),
			StageFailing, `Failing: container "web" CrashLoopBackOff, last exit 137 OOMKilled`},
		{"article Failing while Pending", pod("p", PhasePending, conds("True", "False", "False", "False"),
			cWaiting("web", ReasonImagePullBackOff)), StageFailing, `container "web" ImagePullBackOff (image "127.0.0.1:1/none/ghost:1")`},

		// Init containers.
		{"init running", pod("p", PhasePending, conds("True", "False", "False", "False"),
			initDone("a"), kind(KindInit, cRunning("b", false)), cWaiting("app", ReasonPodInitializing)),
			StageInitializing, `init container "b" running (Init:1/2)`},
		{"init not started", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindInit, ContainerStatus{Name: "a"}), cWaiting("app", ReasonPodInitializing)),
			StageInitializing, `init container "a" not started (Init:0/1)`},
		{"init waiting PodInitializing", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindInit, cWaiting("a", ReasonPodInitializing))), StageInitializing, `init container "a" waiting podinitializing (Init:0/1)`},
		{"Init:CrashLoopBackOff", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindInit, restarts(2, 1, ReasonError, cWaiting("migrate", ReasonCrashLoopBackOff))), cWaiting("app", ReasonPodInitializing)),
			StageFailing, `init container "migrate" CrashLoopBackOff (Init:CrashLoopBackOff), last exit 1 Error`},
		{"Init:Error", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindInit, cTerminated("migrate", 2, ReasonError)), cWaiting("app", ReasonPodInitializing)),
			StageFailing, `init container "migrate" exited 2 Error (Init:Error)`},
		{"init failed pod (restartPolicy Never)", pod("p", PhaseFailed, conds("True", "False", "False", "False"),
			kind(KindInit, cTerminated("migrate", 2, ReasonError))), StageTerminated, `Failed, init container "migrate" exit 2 Error`},
		{"all inits done, app creating", pod("p", PhasePending, conds("True", "True", "False", "False"),
			initDone("a"), cWaiting("app", ReasonContainerCreating)), StageInitializing, `container "app" ContainerCreating`},

		// Sidecars (restartable init containers).
		{"sidecar starting", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindSidecar, started(false, cRunning("proxy", false))), cWaiting("app", ReasonPodInitializing)),
			StageInitializing, `sidecar "proxy" running (Init:0/1)`},
		// A sidecar counts as initialized once Started, not once Ready
		// (pkg/kubelet/status/generate.go isInitContainerInitialized; kubectl printPod).
		{"sidecar started, not ready, then an init container", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindSidecar, started(true, cRunning("proxy", false))), kind(KindInit, cRunning("migrate", false))),
			StageInitializing, `init container "migrate" running (Init:1/2)`},
		{"sidecar ready counts for Init", pod("p", PhasePending, conds("True", "False", "False", "False"),
			kind(KindSidecar, cRunning("proxy", true)), kind(KindInit, cRunning("b", false))),
			StageInitializing, `init container "b" running (Init:1/2)`},
		{"sidecar serving", pod("p", PhaseRunning, conds("True", "True", "True", "True"),
			kind(KindSidecar, cRunning("proxy", true)), cRunning("app", true)), StageServing, "2/2 containers ready"},
		{"sidecar crash-looping", pod("p", PhaseRunning, conds("True", "True", "False", "False"),
			kind(KindSidecar, restarts(4, 1, ReasonError, cWaiting("proxy", ReasonCrashLoopBackOff))), cRunning("app", true)),
			StageFailing, `sidecar "proxy" CrashLoopBackOff, last exit 1 Error`},
		{"sidecar still running when job done", pod("p", PhaseRunning, conds("True", "True", "False", "False"),
			kind(KindSidecar, cRunning("proxy", true)), cTerminated("job", 0, ReasonCompleted)),
			StageStarting, `1/2 containers ready; container "job" not ready (terminated)`},

		// Jobs, eviction, deletion, unknowns.
		{"completed Job", pod("p", PhaseSucceeded, conds("True", "True", "False", "False"),
			kind(KindInit, cTerminated("fetch", 0, ReasonCompleted)), cTerminated("job", 0, ReasonCompleted)),
			StageTerminated, "Succeeded, 2 containers completed"},
		{"Evicted", func() *podB {
			p := pod("p", PhaseFailed, conds("True", "True", "False", "False"), cTerminated("app", 137, ReasonError))
			p.Reason, p.Message = ReasonEvicted, "The node was low on resource: memory. \n Threshold quantity: 100Mi"
			return p
		}(), StageTerminated, "Terminated: Failed, Evicted: The node was low on resource: memory. Threshold quantity: 100Mi"},
		{"DeadlineExceeded pod", func() *podB {
			p := pod("p", PhaseFailed, conds("True", "True", "False", "False"), cTerminated("app", 137, ReasonError))
			p.Reason = ReasonDeadlineExceeded
			return p
		}(), StageTerminated, "Failed, DeadlineExceeded"},
		{"Terminating", func() *podB {
			p := pod("p", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
			p.Deleting = t0.Add(-5 * time.Second)
			return p
		}(), StageTerminating, "Terminating: deleted, grace period ends 2026-11-25T09:59:55Z, 1 containers still running 5s past it"},
		{"deleted, every container stopped", func() *podB {
			p := pod("p", PhaseRunning, conds("True", "True", "False", "False"), cTerminated("app", 0, ReasonCompleted))
			p.Deleting = t0.Add(-5 * time.Second)
			return p
		}(), StageTerminated, "Terminated: deleted, grace period ends 2026-11-25T09:59:55Z, 0 containers still running"},
		{"phase Unknown", pod("p", PhaseUnknown, nil, cRunning("app", true)), StageUnknown, "kubelet reports phase Unknown"},
		// getPhase ignores sidecars, SIGTERMed (143) after the job container
		// failed (pkg/kubelet/kubelet_pods.go); kubectl shows Error.
		{"Job failed by its container, not by its stopped sidecar", func() *podB {
			p := pod("p", PhaseFailed, conds("True", "True", "False", "False"),
				kind(KindSidecar, cTerminated("proxy", 143, ReasonError)), cTerminated("job", 1, ReasonError))
			p.RestartPolicy = "Never"
			return p
		}(), StageTerminated, `Terminated: Failed, container "job" exit 1 Error`},
		// kubectl printPod prints NotReady: a completed container that
		// restartPolicy Never keeps down; ContainersReady is False for good.
		{"restartPolicy Never, one completed, one running", func() *podB {
			p := pod("p", PhaseRunning, conds("True", "True", "False", "False"),
				cTerminated("a", 0, ReasonCompleted), cRunning("b", true))
			p.RestartPolicy = "Never"
			return p
		}(), StageFailing, `NotReady: container "a" completed (exit 0) and restartPolicy Never will not restart it; 1/2 containers ready`},
		// Image pull failures (pkg/kubelet/images/types.go) are failures, not start-up.
		{"RegistryUnavailable", pod("p", PhasePending, conds("True", "True", "False", "False"),
			cWaiting("app", ReasonRegistryUnavailable)), StageFailing, `container "app" RegistryUnavailable (image`},
		{"SignatureValidationFailed", pod("p", PhasePending, conds("True", "True", "False", "False"),
			cWaiting("app", ReasonSignatureValidationFailed)), StageFailing, `SignatureValidationFailed`},
		// pkg/kubelet/status/generate.go GeneratePodReadyCondition: Ready is
		// False with ReadinessGatesNotReady while ContainersReady is True.
		{"readiness gate unmet", func() *podB {
			p := pod("p", PhaseRunning, conds("True", "True", "True", "False"), cRunning("app", true))
			p.Conditions[3].Reason = "ReadinessGatesNotReady"
			p.Conditions[3].Message = `corresponding condition of pod readiness gate "example.com/lb" does not exist.`
			return p
		}(), StageStarting, `readiness gates not ready: corresponding condition of pod readiness gate "example.com/lb" does not exist.`},
		{"container state Unknown", pod("p", PhaseRunning, conds("True", "True", "False", "False"),
			ContainerStatus{Name: "app", Kind: KindRegular, State: ContainerState{Kind: StateUnknown}}),
			StageUnknown, `container "app" state unknown`},
		{"unrecognised phase", pod("p", Phase("Exploded"), nil), StageUnknown, `unrecognised phase "Exploded"`},
		{"empty phase is Pending", pod("p", "", nil), StageInitializing, "no container statuses yet"},
		{"ephemeral exit does not fail the pod", pod("p", PhaseRunning, conds("True", "True", "True", "True"),
			cRunning("app", true), kind(KindEphemeral, cTerminated("debug", 1, ReasonError))), StageServing, "1/1 containers ready"},
		{"serving after restarts", pod("p", PhaseRunning, conds("True", "True", "True", "True"),
			restarts(2, 137, ReasonOOMKilled, cRunning("web", true))), StageServing,
			`Serving: 1/1 containers ready; container "web" restarted 2 times, last exit 137 OOMKilled`},
		{"ready flipped false", pod("p", PhaseRunning, conds("True", "True", "False", "False"),
			cRunning("web", false)), StageStarting, "ContainersReady False: ContainersNotReady"},
		{"completed container in running pod is fine", pod("p", PhaseRunning, conds("True", "True", "True", "True"),
			cRunning("web", true), kind(KindRegular, cTerminated("once", 0, ReasonCompleted))), StageServing, "Serving"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(input(tc.pod)))
			if v.Stage != tc.stage || !strings.Contains(v.StageReason, tc.reason) {
				t.Fatalf("stage %s %q, want %s containing %q", v.Stage, v.StageReason, tc.stage, tc.reason)
			}
			if !strings.HasPrefix(v.StageReason, string(tc.stage)+":") && !strings.HasPrefix(v.StageReason, "Terminating:") {
				t.Errorf("reason %q does not start with the stage", v.StageReason)
			}
			if len(v.Mismatches) != 0 {
				t.Errorf("agreeing views gave mismatches %+v", v.Mismatches)
			}
		})
	}
}

// Every waiting reason of the reference: the failing ones make the stage
// Failing and are named in the reason; the others are normal start-up.
func TestWaitingReasons(t *testing.T) {
	tests := []struct {
		reason  string
		failing bool
	}{
		{ReasonContainerCreating, false}, {ReasonPodInitializing, false},
		{ReasonCrashLoopBackOff, true}, {ReasonErrImagePull, true}, {ReasonImagePullBackOff, true},
		{ReasonInvalidImageName, true}, {ReasonErrImageNeverPull, true}, {ReasonCreateContainerConfigError, true},
		{ReasonCreateContainerError, true}, {ReasonRunContainerError, true}, {ReasonPreStartHookError, true},
		{ReasonPostStartHookError, true},
		// Reasons not in the reference, by shape.
		{"ErrSomethingNew", true}, {"SomethingBackOff", true}, {"VolumeMountError", true}, {"Scheduling", false},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			if got := FailingWaitingReason(tc.reason); got != tc.failing {
				t.Fatalf("FailingWaitingReason(%q) = %v", tc.reason, got)
			}
			v := onlyPod(Correlate(input(pod("p", PhasePending, conds("True", "True", "False", "False"), cWaiting("app", tc.reason)))))
			want := StageInitializing
			if tc.failing {
				want = StageFailing
			}
			if v.Stage != want || !strings.Contains(v.StageReason, `container "app" `+tc.reason) {
				t.Fatalf("stage %s %q, want %s naming %s", v.Stage, v.StageReason, want, tc.reason)
			}
		})
	}
}

// Every terminated reason of the reference, in a running pod (the container
// will be restarted: Failing unless it exited 0) and in a Failed pod.
func TestTerminatedReasons(t *testing.T) {
	tests := []struct {
		reason string
		code   int32
	}{
		{ReasonCompleted, 0}, {ReasonError, 1}, {ReasonOOMKilled, 137}, {ReasonContainerCannotRun, 128},
		{ReasonDeadlineExceeded, 137}, {ReasonStartError, 128},
	}
	for _, tc := range tests {
		t.Run(tc.reason, func(t *testing.T) {
			running := onlyPod(Correlate(input(pod("p", PhaseRunning, conds("True", "True", "False", "False"),
				cRunning("web", true), cTerminated("worker", tc.code, tc.reason)))))
			if tc.code == 0 {
				if running.Stage != StageStarting {
					t.Fatalf("exit 0: stage %s %q, want Starting", running.Stage, running.StageReason)
				}
			} else if want := `container "worker" exited ` + itoa(tc.code) + " " + tc.reason; running.Stage != StageFailing ||
				!strings.Contains(running.StageReason, want) {
				t.Fatalf("running pod: %s %q, want Failing with %q", running.Stage, running.StageReason, want)
			}
			failed := onlyPod(Correlate(input(pod("p", PhaseFailed, conds("True", "True", "False", "False"),
				cTerminated("web", 0, ReasonCompleted), cTerminated("worker", tc.code, tc.reason)))))
			if tc.code != 0 && !strings.Contains(failed.StageReason, `container "worker" exit `+itoa(tc.code)+" "+tc.reason) {
				t.Fatalf("failed pod: %q does not name the failure", failed.StageReason)
			}
			if failed.Stage != StageTerminated {
				t.Fatalf("failed pod: stage %s", failed.Stage)
			}
			if ec := running.Containers[1].ExitCode; ec == nil || *ec != tc.code {
				t.Fatalf("exit code not kept: %v", ec)
			}
		})
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
