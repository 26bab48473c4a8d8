package lifecycle

import (
	"strings"
	"testing"
	"time"
)

// Each test below pins one rule that a one-line breakage (a comparison or a
// loop's continue turned around) changed without any other test noticing.

// derivePhase follows getPhase for init containers waiting after an exit
// (pkg/kubelet/kubelet_pods.go getPhase, "regular init containers"): a
// failure that will not be retried fails the pod; one that will, or a
// success, does not; Never retries nothing.
func TestDerivePhaseInitWaitingAfterExit(t *testing.T) {
	initWaiting := func(exit int32) ContainerView {
		return ContainerView{Name: "init", Kind: KindInit, State: StateWaiting,
			LastState: &ContainerState{Kind: StateTerminated, ExitCode: exit}}
	}
	app := ContainerView{Name: "app", Kind: KindRegular, State: StateWaiting, Reason: ReasonPodInitializing}
	tests := []struct {
		policy string
		exit   int32
		want   Phase
	}{
		{"Never", 1, PhaseFailed},
		{"Never", 0, PhasePending},
		{"OnFailure", 1, PhasePending},
		{"Always", 1, PhasePending},
	}
	for _, tc := range tests {
		pod := &Pod{Phase: PhasePending, RestartPolicy: tc.policy,
			Containers: []ContainerStatus{{Name: "init", Kind: KindInit}, {Name: "app", Kind: KindRegular}}}
		if got := derivePhase(pod, []ContainerView{initWaiting(tc.exit), app}); got != tc.want {
			t.Errorf("restartPolicy %s, init waiting after exit %d: phase %s, want %s", tc.policy, tc.exit, got, tc.want)
		}
	}
}

// A container that completed after restarts is not in a crash loop, however
// short its previous attempt: only a running or re-created one is.
func TestCompletedContainerIsNoCrashLoop(t *testing.T) {
	c := ContainerView{Name: "app", Kind: KindRegular, State: StateTerminated, RestartCount: 2,
		StartedAt: t0.Add(-5 * time.Second), FinishedAt: t0.Add(-time.Second), ExitCode: new(int32),
		LastState: &ContainerState{Kind: StateTerminated, ExitCode: 1, StartedAt: t0.Add(-20 * time.Second), FinishedAt: t0.Add(-15 * time.Second)}}
	if _, ok := crashLoop(&c); ok {
		t.Fatal("a terminated container was taken for a crash loop")
	}
}

// The API server saying Running while nothing runs is a finding only when
// the runtime says the containers exited (a created, never started one is
// not an exit).
func TestAPIRunningNeedsAnExit(t *testing.T) {
	p := pod("p", PhasePending, conds("True", "True", "False", "False"), cWaiting("app", ReasonContainerCreating))
	in := input(p)
	in.Containers = []*Container{{ID: "c1", PodUID: p.UID, PodName: "p", PodNamespace: "default", Name: "app", State: RuntimeCreated,
		CreatedAt: t0.Add(-time.Minute)}}
	in.APIServer = upH()
	in.APIPods = []APIPod{{UID: p.UID, Namespace: "default", Name: "p", Phase: PhaseRunning}}
	for _, m := range onlyPod(Correlate(in)).Mismatches {
		if m.Kind == MismatchAPIRunningButExited {
			t.Fatalf("mismatch %+v with no container exited", m)
		}
	}
}

// Every lag and every container is looked at: one within its grace, or one
// with nothing to compare, does not hide the next.
func TestMismatchesLookAtEveryContainer(t *testing.T) {
	t.Run("a lag within its grace before one past it", func(t *testing.T) {
		p := pod("p", PhaseRunning, conds("True", "True", "True", "True"), cRunning("a", true), cRunning("b", true))
		in := input(p)
		in.Containers[0].State, in.Containers[0].ExitCode, in.Containers[0].FinishedAt = RuntimeExited, 1, t0.Add(-time.Second)
		in.Containers[1].State, in.Containers[1].ExitCode, in.Containers[1].FinishedAt = RuntimeExited, 1, t0.Add(-time.Minute)
		v := onlyPod(Correlate(in))
		if len(v.Mismatches) != 1 || v.Mismatches[0].Container != "b" || v.Mismatches[0].Kind != MismatchRunningButExited {
			t.Fatalf("mismatches %+v, want b's running-but-exited only", v.Mismatches)
		}
	})
	t.Run("a container without an ID before a zombie", func(t *testing.T) {
		p := pod("p", PhaseRunning, conds("True", "True", "False", "False"), cWaiting("a", ReasonContainerCreating),
			cTerminated("b", 0, ReasonCompleted))
		in := input(p)
		in.Containers[0].State = RuntimeRunning // b still runs in the runtime
		in.Pods[0].Containers[1].State.ContainerID = in.Pods[0].Containers[1].ContainerID
		v := onlyPod(Correlate(in))
		found := false
		for _, m := range v.Mismatches {
			found = found || (m.Kind == MismatchZombie && m.Container == "b")
		}
		if !found {
			t.Fatalf("mismatches %+v, want b a zombie", v.Mismatches)
		}
	})
}

// While the kubelet is cut off, each running container with a readiness
// probe takes the prober's result, or unknown where podlife cannot read it;
// a container that is not running keeps its own.
func TestProbeReadinessEveryContainer(t *testing.T) {
	probe := func(s ContainerStatus) ContainerStatus { s.ReadinessProbe = true; return s }
	p := pod("p", PhaseRunning, conds("True", "True", "True", "True"),
		probe(cRunning("a", true)), probe(cRunning("b", true)), probe(cWaiting("c", ReasonContainerCreating)))
	in := cutOff(input(p))
	in.Readiness = map[string]ProbeReadiness{p.UID + "/a": {Ready: true}}
	got := map[string]string{}
	for _, c := range onlyPod(Correlate(in)).Containers {
		got[c.Name] = c.ReadyFrom
	}
	if got["a"] != FromProbes || got["b"] != FromUnknown || got["c"] != "" {
		t.Fatalf("readiness from %v, want a probes, b unknown, c the kubelet's", got)
	}
}

// A sidecar that failed while a regular container still runs fails the pod;
// it is ignored only once every regular container has ended.
func TestFailedSidecarWhileRegularRuns(t *testing.T) {
	p := pod("p", PhaseRunning, conds("True", "True", "False", "False"), kind(KindSidecar, cTerminated("proxy", 1, ReasonError)),
		cRunning("app", true))
	if v := onlyPod(Correlate(input(p))); v.Stage != StageFailing || !strings.Contains(v.StageReason, `sidecar "proxy" exited 1`) {
		t.Fatalf("%s: %s", v.Stage, v.StageReason)
	}
}

// RESTARTS while initializing counts the init containers' restarts up to the
// first that is not done; a failed one is not done
// (pkg/printers/internalversion/printers.go printPod).
func TestRestartsStopAtFailedInit(t *testing.T) {
	one := int32(1)
	v := PodView{Conditions: []Condition{{Type: CondInitialized, Status: "False"}}, Containers: []ContainerView{
		{Name: "i1", Kind: KindInit, State: StateTerminated, ExitCode: &one, RestartCount: 2},
		{Name: "i2", Kind: KindInit, State: StateWaiting, RestartCount: 1},
		{Name: "app", Kind: KindRegular, State: StateWaiting, RestartCount: 5},
	}}
	if got := v.Restarts(); got != 2 {
		t.Fatalf("restarts %d, want 2", got)
	}
}

// The note on a serving pod names the most restarted container, the first
// of those restarted as often.
func TestRestartNoteNamesTheFirstMostRestarted(t *testing.T) {
	p := pod("p", PhaseRunning, conds("True", "True", "True", "True"),
		restarts(2, 1, ReasonError, cRunning("a", true)), restarts(2, 137, ReasonOOMKilled, cRunning("b", true)))
	if v := onlyPod(Correlate(input(p))); !strings.HasSuffix(v.StageReason, `; container "a" restarted 2 times, last exit 1 Error`) {
		t.Fatalf("%s", v.StageReason)
	}
}

// Derived readiness counts regular containers and sidecars, not init
// containers (pkg/kubelet/status/generate.go GenerateContainersReadyCondition).
func TestDerivedContainersReady(t *testing.T) {
	pod := &Pod{Phase: PhaseRunning, Conditions: conds("True", "True", "True", "True")}
	cond := func(cvs []ContainerView) string {
		for _, c := range deriveConditions(pod, PhaseRunning, cvs, t0) {
			if c.Type == CondContainersReady {
				return c.Status
			}
		}
		return ""
	}
	if got := cond([]ContainerView{{Name: "app", Kind: KindRegular, State: StateRunning}}); got != "False" {
		t.Errorf("a regular container not ready: ContainersReady %s", got)
	}
	if got := cond([]ContainerView{{Name: "init", Kind: KindInit, State: StateTerminated},
		{Name: "app", Kind: KindRegular, State: StateRunning, Ready: true}}); got != "True" {
		t.Errorf("an init container done, the regular one ready: ContainersReady %s", got)
	}
}

// Without an Initialized condition (a view the kubelet has not described
// yet) a pod whose init containers are not done is initializing.
func TestRestartsWithoutConditions(t *testing.T) {
	one := int32(1)
	v := PodView{Containers: []ContainerView{
		{Name: "i1", Kind: KindInit, State: StateTerminated, ExitCode: &one, RestartCount: 2},
		{Name: "app", Kind: KindRegular, State: StateWaiting, RestartCount: 5},
	}}
	if got := v.Restarts(); got != 2 {
		t.Fatalf("restarts %d, want 2", got)
	}
}

// A serving pod's reason mentions restarts only where there were some.
func TestServingWithoutRestartsHasNoNote(t *testing.T) {
	if v := onlyPod(Correlate(input(serving("p")))); v.StageReason != "Serving: 1/1 containers ready" {
		t.Fatalf("%q", v.StageReason)
	}
}

// A completed container is done for good by its own restart policy where it
// has one (ContainerRestartRules, on by default since 1.35:
// pkg/api/v1/pod/util.go ContainerShouldRestart), else by the pod's.
func TestDoneForGoodByTheContainersPolicy(t *testing.T) {
	tests := []struct {
		pod, container string
		failing        bool
	}{
		{"Never", "", true},
		{"OnFailure", "", true},
		{"Always", "", false},
		{"Never", "Always", false},
		{"Always", "Never", true},
		{"Always", "OnFailure", true},
		{"Never", "Sometimes", true}, // a policy this build does not know: the pod's
		{"Always", "Sometimes", false},
	}
	for _, tc := range tests {
		done := cTerminated("job", 0, ReasonCompleted)
		done.RestartPolicy = tc.container
		p := pod("p", PhaseRunning, conds("True", "True", "False", "False"), cRunning("app", true), done)
		p.RestartPolicy = tc.pod
		v := onlyPod(Correlate(input(p)))
		policy := tc.container
		if policy == "" || policy == "Sometimes" {
			policy = tc.pod
		}
		want := "Failing: NotReady: container \"job\" completed (exit 0) and restartPolicy " + policy + " will not restart it"
		if got := strings.HasPrefix(v.StageReason, want); got != tc.failing || (v.Stage == StageFailing) != tc.failing {
			t.Errorf("pod %s, container %q: %s: %s", tc.pod, tc.container, v.Stage, v.StageReason)
		}
	}
}
