package lifecycle_test

// Tests written against the exported API only (Correlate, Input, PodView),
// each with literal values, so that a one-line change of the behaviour they
// name fails them whatever the package's internals look like.

import (
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

var at = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// node is a node of one pod whose kubelet and runtime both answered at "at".
func node(p lifecycle.Pod, cs ...lifecycle.Container) lifecycle.Input {
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: at}
	sb := lifecycle.Sandbox{ID: "sb-" + p.Name, PodUID: p.UID, PodName: p.Name, PodNamespace: p.Namespace,
		State: lifecycle.SandboxReady, CreatedAt: p.Created}
	records := make([]*lifecycle.Container, len(cs))
	for i := range cs {
		cs[i].SandboxID, cs[i].PodUID, cs[i].PodName, cs[i].PodNamespace = sb.ID, p.UID, p.Name, p.Namespace
		records[i] = &cs[i]
	}
	return lifecycle.Input{Node: "node-a", Now: at, Pods: []*lifecycle.Pod{&p}, Kubelet: up, Runtime: up,
		Sandboxes: []lifecycle.Sandbox{sb}, Containers: records, RuntimeName: "containerd"}
}

// onePod is a pod of the given phase, restart policy and ready status
// (PodScheduled, Initialized, ContainersReady, Ready) with these containers.
func onePod(name string, phase lifecycle.Phase, policy, ready string, cs ...lifecycle.ContainerStatus) lifecycle.Pod {
	var conds []lifecycle.Condition
	for _, c := range []struct{ typ, status string }{{lifecycle.CondPodScheduled, "True"}, {lifecycle.CondInitialized, "True"},
		{lifecycle.CondContainersReady, ready}, {lifecycle.CondReady, ready}} {
		conds = append(conds, lifecycle.Condition{Type: c.typ, Status: c.status, LastTransitionTime: at.Add(-time.Hour)})
	}
	for i := range cs {
		cs[i].Kind = lifecycle.KindRegular
	}
	return lifecycle.Pod{UID: "uid-" + name, Namespace: "default", Name: name, Phase: phase, RestartPolicy: policy,
		StatusFrom: lifecycle.FromKubeletCache, Created: at.Add(-2 * time.Hour), Started: at.Add(-2 * time.Hour),
		Conditions: conds, Containers: cs}
}

// exited is a runtime attempt that ran from start to end and exited with code.
func exited(id, name string, attempt uint32, code int32, start, end time.Time) lifecycle.Container {
	reason := lifecycle.ReasonError
	if code == 0 {
		reason = lifecycle.ReasonCompleted
	}
	return lifecycle.Container{ID: id, Name: name, Attempt: attempt, State: lifecycle.RuntimeExited, ExitCode: code,
		Reason: reason, CreatedAt: start.Add(-time.Second), StartedAt: start, FinishedAt: end}
}

// running is a runtime attempt running since start.
func running(id, name string, attempt uint32, start time.Time) lifecycle.Container {
	return lifecycle.Container{ID: id, Name: name, Attempt: attempt, State: lifecycle.RuntimeRunning,
		CreatedAt: start.Add(-time.Second), StartedAt: start}
}

func correlateOne(t *testing.T, in lifecycle.Input) lifecycle.PodView {
	t.Helper()
	s := lifecycle.Correlate(in)
	if len(s.Pods) != 1 {
		t.Fatalf("want 1 pod, got %d: %+v", len(s.Pods), s.Pods)
	}
	return *s.Pods[0]
}

// TestCrashLoopSettleIsSixtySeconds pins the value of the crash-loop settle
// threshold (README, "Crash-loop settle": 60 s) with literal durations, on
// both of its sides: how long the last attempt ran, and how long the new one
// has run. The kubelet's crash-loop back-off starts at 10 s and doubles to
// 300 s (pkg/kubelet/kubelet.go backOffPeriod, MaxCrashLoopBackOff;
// pkg/kubelet/apis/config/v1beta1/defaults.go MaxContainerBackOff).
func TestCrashLoopSettleIsSixtySeconds(t *testing.T) {
	tests := []struct {
		name       string
		lastRan    time.Duration // how long the attempt that exited ran
		runningFor time.Duration // how long the new attempt has run
		want       lifecycle.Stage
	}{
		{"last attempt ran 59s, then restarted: crash-looping", 59 * time.Second, 5 * time.Second, lifecycle.StageFailing},
		{"last attempt ran 61s, then restarted: no crash loop", 61 * time.Second, 5 * time.Second, lifecycle.StageServing},
		{"new attempt running 59s after a 4s one: still Failing", 4 * time.Second, 59 * time.Second, lifecycle.StageFailing},
		{"new attempt running 61s after a 4s one: settled", 4 * time.Second, 61 * time.Second, lifecycle.StageServing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := at.Add(-tc.runningFor)
			prevEnd := start.Add(-2 * time.Second)
			prevStart := prevEnd.Add(-tc.lastRan)
			st := lifecycle.ContainerStatus{Name: "app", Ready: true, RestartCount: 1, ContainerID: "containerd://app-1",
				State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: start},
				LastState: lifecycle.ContainerState{Kind: lifecycle.StateTerminated, ExitCode: 2, Reason: lifecycle.ReasonError,
					StartedAt: prevStart, FinishedAt: prevEnd, ContainerID: "containerd://app-0"}}
			in := node(onePod("loop", lifecycle.PhaseRunning, "Always", "True", st),
				exited("app-0", "app", 0, 2, prevStart, prevEnd), running("app-1", "app", 1, start))
			v := correlateOne(t, in)
			if v.Stage != tc.want {
				t.Fatalf("stage %s (%s), want %s", v.Stage, v.StageReason, tc.want)
			}
			if looping := strings.Contains(v.StageReason, "crash-looping"); looping != (tc.want == lifecycle.StageFailing) {
				t.Fatalf("stage reason %q: crash-looping %v, want %v", v.StageReason, looping, !looping)
			}
			if tc.want == lifecycle.StageFailing && !strings.Contains(v.StageReason, "Failing until it has run 1m0s") {
				t.Fatalf("stage reason %q does not name the 60s threshold", v.StageReason)
			}
		})
	}
}

// TestDerivedWaitingButRunning: the kubelet's copy says a container is
// Waiting (created, not started: pkg/kubelet/kubelet_pods.go
// convertToAPIContainerStatuses turns ContainerStateCreated into Waiting,
// with the container's ID) while the runtime already runs it. The
// container's state is then derived from the runtime, Running since the
// runtime's start, and the pod's phase and readiness with it (getPhase:
// Running), with the kubelet's copy kept beside the derived status.
func TestDerivedWaitingButRunning(t *testing.T) {
	started := at.Add(-3 * time.Second)
	tests := []struct {
		name        string
		containerID string // what the kubelet's copy names
		reason      string
		probe       bool
		ready       bool
		lagsSince   time.Time // the runtime's first change the copy lacks
	}{
		{"created, the kubelet's copy not yet started", "containerd://web-app-0", "", false, true, started},
		// The copy has no container at all: it lags from the runtime's creation.
		{"ContainerCreating, no container yet in the copy", "", lifecycle.ReasonContainerCreating, false, true, started.Add(-time.Second)},
		// pkg/kubelet/prober/prober_manager.go UpdatePodStatus: with a
		// readiness probe a started container is not ready until it passes.
		{"created, with a readiness probe", "containerd://web-app-0", "", true, false, started},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := lifecycle.ContainerStatus{Name: "app", ContainerID: tc.containerID, ReadinessProbe: tc.probe,
				Image: "registry.example/app:1", State: lifecycle.ContainerState{Kind: lifecycle.StateWaiting, Reason: tc.reason}}
			p := onePod("web", lifecycle.PhasePending, "Always", "False", st)
			rc := running("web-app-0", "app", 0, started)
			v := correlateOne(t, node(p, rc))
			c := v.Containers[0]
			if c.State != lifecycle.StateRunning || c.From != lifecycle.FromRuntime || !c.StartedAt.Equal(started) || !c.Started {
				t.Fatalf("container %+v: want Running from the runtime since %s, started", c, started)
			}
			if c.Source != lifecycle.SourceKubelet || c.Runtime == nil || c.Runtime.ID != "web-app-0" ||
				c.ContainerID != "containerd://web-app-0" || c.Image != "registry.example/app:1" || c.RestartCount != 0 {
				t.Fatalf("container %+v: want the kubelet's container, joined to runtime web-app-0", c)
			}
			if c.Ready != tc.ready {
				t.Fatalf("ready %v, want %v (readiness probe %v)", c.Ready, tc.ready, tc.probe)
			}
			// An ID the kubelet has not written yet takes the runtime's own
			// name, as the kubelet will write it; one it wrote keeps its own.
			in := node(p, rc)
			in.RuntimeName = "cri-o"
			wantID := "cri-o://web-app-0"
			if tc.containerID != "" {
				wantID = tc.containerID
			}
			if id := correlateOne(t, in).Containers[0].ContainerID; id != wantID {
				t.Fatalf("on CRI-O: container ID %q, want %q", id, wantID)
			}
			if v.StatusFrom != lifecycle.FromRuntime || v.Phase != lifecycle.PhaseRunning {
				t.Fatalf("pod status from %q phase %s, want derived from the runtime: Running", v.StatusFrom, v.Phase)
			}
			want := lifecycle.CachedStatus{Phase: lifecycle.PhasePending, Ready: "False", Restarts: 0, LagsSince: tc.lagsSince}
			if v.KubeletCache == nil || *v.KubeletCache != want {
				t.Fatalf("kubelet's copy kept as %+v, want %+v", v.KubeletCache, want)
			}
			wantStage := lifecycle.StageServing
			if !tc.ready {
				wantStage = lifecycle.StageStarting
			}
			if v.Stage != wantStage || len(v.Mismatches) != 0 {
				t.Fatalf("stage %s (%s) mismatches %+v, want %s and none within the grace", v.Stage, v.StageReason, v.Mismatches, wantStage)
			}
		})
	}
}

// TestOnFailureDoneForGood: under restartPolicy OnFailure a container that
// exits 0 is not restarted (pkg/api/v1/pod/util.go ContainerShouldRestart),
// so a pod with another container still running stays Running
// (pkg/kubelet/kubelet_pods.go getPhase: running > 0) but never Ready again:
// kubectl shows NotReady (pkg/printers/internalversion/printers.go printPod),
// podlife Failing. Once every container has exited 0 the pod has Succeeded
// (getPhase: stopped == stoppedNotRestartable == succeeded). Under Always the
// same exit is restarted: no such finding.
func TestOnFailureDoneForGood(t *testing.T) {
	t.Run("kubelet says one completed, one running", func(t *testing.T) {
		for _, tc := range []struct {
			policy string
			stage  lifecycle.Stage
		}{{"OnFailure", lifecycle.StageFailing}, {"Never", lifecycle.StageFailing}, {"Always", lifecycle.StageStarting}} {
			done := lifecycle.ContainerStatus{Name: "a", ContainerID: "containerd://a-0", State: lifecycle.ContainerState{
				Kind: lifecycle.StateTerminated, ExitCode: 0, Reason: lifecycle.ReasonCompleted,
				StartedAt: at.Add(-time.Hour), FinishedAt: at.Add(-time.Minute), ContainerID: "containerd://a-0"}}
			run := lifecycle.ContainerStatus{Name: "b", Ready: true, ContainerID: "containerd://b-0",
				State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: at.Add(-time.Hour)}}
			p := onePod("job", lifecycle.PhaseRunning, tc.policy, "False", done, run)
			v := correlateOne(t, node(p, exited("a-0", "a", 0, 0, at.Add(-time.Hour), at.Add(-time.Minute)),
				running("b-0", "b", 0, at.Add(-time.Hour))))
			if v.Stage != tc.stage {
				t.Fatalf("%s: stage %s (%s), want %s", tc.policy, v.Stage, v.StageReason, tc.stage)
			}
			want := `container "a" completed (exit 0) and restartPolicy ` + tc.policy + " will not restart it"
			if said := strings.Contains(v.StageReason, want); said != (tc.stage == lifecycle.StageFailing) {
				t.Fatalf("%s: stage reason %q, want %q: %v", tc.policy, v.StageReason, want, !said)
			}
		}
	})
	// The kubelet's copy says both run; the runtime has seen "a" exit 0 since
	// (its second attempt, after a failure was restarted).
	t.Run("derived from the runtime", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			bExits  bool
			phase   lifecycle.Phase
			stage   lifecycle.Stage
			aState  lifecycle.StateKind
			aReason string
		}{
			{"a exited 0, b runs", false, lifecycle.PhaseRunning, lifecycle.StageFailing, lifecycle.StateTerminated, lifecycle.ReasonCompleted},
			{"both exited 0", true, lifecycle.PhaseSucceeded, lifecycle.StageTerminated, lifecycle.StateTerminated, lifecycle.ReasonCompleted},
		} {
			a := lifecycle.ContainerStatus{Name: "a", Ready: true, RestartCount: 1, ContainerID: "containerd://a-1",
				State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: at.Add(-time.Hour)}}
			b := lifecycle.ContainerStatus{Name: "b", Ready: true, ContainerID: "containerd://b-0",
				State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: at.Add(-2 * time.Hour)}}
			p := onePod("once", lifecycle.PhaseRunning, "OnFailure", "True", a, b)
			cs := []lifecycle.Container{exited("a-0", "a", 0, 1, at.Add(-2*time.Hour), at.Add(-time.Hour-time.Second)),
				exited("a-1", "a", 1, 0, at.Add(-time.Hour), at.Add(-5*time.Second)), running("b-0", "b", 0, at.Add(-2*time.Hour))}
			if tc.bExits {
				cs[2] = exited("b-0", "b", 0, 0, at.Add(-2*time.Hour), at.Add(-4*time.Second))
			}
			v := correlateOne(t, node(p, cs...))
			c := v.Containers[0]
			if c.State != tc.aState || c.Reason != tc.aReason || c.ExitCode == nil || *c.ExitCode != 0 || c.From != lifecycle.FromRuntime {
				t.Fatalf("%s: container a %+v, want %s %s exit 0 from the runtime (no back-off: OnFailure does not restart exit 0)",
					tc.name, c, tc.aState, tc.aReason)
			}
			if v.Phase != tc.phase || v.Stage != tc.stage || v.StatusFrom != lifecycle.FromRuntime {
				t.Fatalf("%s: phase %s stage %s (%s) from %q, want %s %s from the runtime", tc.name, v.Phase, v.Stage, v.StageReason,
					v.StatusFrom, tc.phase, tc.stage)
			}
			if tc.stage == lifecycle.StageFailing && !strings.Contains(v.StageReason, "restartPolicy OnFailure will not restart it") {
				t.Fatalf("%s: stage reason %q", tc.name, v.StageReason)
			}
		}
	})
}

// TestReadinessUnknownWhileProbesUnreadable: while the kubelet is cut off
// from the API server, /pods serves the API server's copy, frozen
// (pkg/kubelet/kubelet_getters.go GetPods; pkg/kubelet/status
// status_manager.go cannot post), and readiness then comes from the kubelet's
// prober (/metrics/probes, pkg/kubelet/prober/prober_manager.go). When that
// cannot be read (Readiness nil), or has no result for the container, a
// container with a readiness probe is not ready, ReadyFrom unknown, and the
// pod is not Serving on the frozen copy's word; one without a probe is
// ready as its state says.
func TestReadinessUnknownWhileProbesUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		readiness map[string]lifecycle.ProbeReadiness
	}{
		{"prober unreadable", nil},
		{"prober read, no result for the container", map[string]lifecycle.ProbeReadiness{"uid-other/app": {Ready: true, At: at}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			probed := lifecycle.ContainerStatus{Name: "app", Ready: true, ReadinessProbe: true, ContainerID: "containerd://web-app-0",
				State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: at.Add(-time.Hour)}}
			plain := lifecycle.ContainerStatus{Name: "log", Ready: true, ContainerID: "containerd://web-log-0",
				State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: at.Add(-time.Hour)}}
			in := node(onePod("web", lifecycle.PhaseRunning, "Always", "True", probed, plain),
				running("web-app-0", "app", 0, at.Add(-time.Hour)), running("web-log-0", "log", 0, at.Add(-time.Hour)))
			in.KubeletLink = lifecycle.KubeletLink{CutOff: true, Since: at.Add(-time.Minute), Evidence: "test"}
			in.Readiness = tc.readiness
			v := correlateOne(t, in)
			app, log := v.Containers[0], v.Containers[1]
			if app.Ready || app.ReadyFrom != lifecycle.FromUnknown {
				t.Fatalf("probed container ready=%v from %q, want not ready, from %q", app.Ready, app.ReadyFrom, lifecycle.FromUnknown)
			}
			if !log.Ready || log.ReadyFrom != "" {
				t.Fatalf("container without a probe ready=%v from %q, want ready from its state", log.Ready, log.ReadyFrom)
			}
			for _, c := range v.Conditions {
				if (c.Type == lifecycle.CondReady || c.Type == lifecycle.CondContainersReady) && c.Status != "False" {
					t.Fatalf("condition %s=%s, want False while readiness is unknown", c.Type, c.Status)
				}
			}
			if v.Stage == lifecycle.StageServing || !strings.Contains(v.StageReason, "readiness unknown") {
				t.Fatalf("stage %s (%s), want not Serving, readiness unknown", v.Stage, v.StageReason)
			}
			if v.KubeletCache == nil || v.KubeletCache.Ready != "True" || v.UnknownCause != lifecycle.CauseKubeletAPIServerUnreachable {
				t.Fatalf("kubelet's copy %+v cause %q: want its frozen Ready=True kept and the cut as the cause", v.KubeletCache, v.UnknownCause)
			}
		})
	}
}
