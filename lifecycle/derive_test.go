package lifecycle

import (
	"strings"
	"testing"
	"time"
)

// cutOff is a node whose kubelet cannot reach the API server: the kubelet's
// /pods status of API-managed pods is the API server's copy, frozen
// (pkg/kubelet/config/config.go checkAndUpdatePod; pkg/kubelet/kubelet_getters.go GetPods).
func cutOff(in Input) Input {
	for i := range in.Pods {
		in.Pods[i].StatusFrom = FromKubeletCache
	}
	in.KubeletLink = KubeletLink{CutOff: true, Since: t0.Add(-time.Minute), Evidence: "test"}
	return in
}

// attempt appends a runtime attempt of pod p's container c.
func attempt(in *Input, p, c string, n uint32, state RuntimeState, exit int32, started, finished time.Time) {
	ctr := Container{ID: p + "-" + c + "-" + string(rune('0'+n)), PodUID: "uid-" + p, PodName: p, PodNamespace: "default",
		Name: c, Attempt: n, State: state, ExitCode: exit, CreatedAt: started.Add(-time.Millisecond), StartedAt: started, FinishedAt: finished}
	if state == RuntimeExited {
		ctr.Reason = ReasonError
		if exit == 0 {
			ctr.Reason = ReasonCompleted
		}
	}
	in.Containers = append(in.Containers, &ctr)
}

// TestDerivedWhileCutOff: while the kubelet's copy is frozen, each pod's
// state is derived from the runtime and the spec, as the kubelet would report
// it once it could (pkg/kubelet/kubelet_pods.go getPhase and
// convertToAPIContainerStatuses; pkg/kubelet/container/helpers.go
// ShouldContainerBeRestarted).
func TestDerivedWhileCutOff(t *testing.T) {
	type want struct {
		stage      Stage
		phase      Phase
		state      StateKind
		reason     string
		restarts   int32
		statusFrom string
		from       string
		cause      Cause
		why        string // in StageReason
	}
	tests := []struct {
		name string
		in   func() Input
		want want
	}{
		{"serving pod keeps serving; the cause says the kubelet is cut off", func() Input {
			return cutOff(input(serving("web")))
		}, want{StageServing, PhaseRunning, StateRunning, "", 0, FromKubeletCache, FromKubeletCache,
			CauseKubeletAPIServerUnreachable, "the kubelet cannot reach the API server since 2026-11-25T09:59:00Z"}},
		{"crash loop advances past the frozen copy", func() Input {
			// The copy says attempt 2 running; the runtime has had attempts 2 and 3 exit since.
			in := cutOff(input(pod("crash", PhaseRunning, conds("True", "True", "True", "True"),
				restarts(2, 3, ReasonError, cRunning("app", true)))))
			in.Containers = in.Containers[:0]
			attempt(&in, "crash", "app", 2, RuntimeExited, 3, t0.Add(-50*time.Second), t0.Add(-46*time.Second))
			attempt(&in, "crash", "app", 3, RuntimeExited, 3, t0.Add(-20*time.Second), t0.Add(-16*time.Second))
			return in
		}, want{StageFailing, PhaseRunning, StateWaiting, ReasonCrashLoopBackOff, 3, FromRuntime, FromRuntime,
			CauseKubeletAPIServerUnreachable, "CrashLoopBackOff, last exit 3 Error"}},
		{"restartPolicy Never pod completes during the cut", func() Input {
			p := serving("job")
			p.RestartPolicy = "Never"
			in := cutOff(input(p))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 0, ReasonCompleted, t0.Add(-5*time.Second)
			return in
		}, want{StageTerminated, PhaseSucceeded, StateTerminated, ReasonCompleted, 0, FromRuntime, FromRuntime,
			CauseKubeletAPIServerUnreachable, "Terminated: Succeeded"}},
		{"restartPolicy Never pod fails during the cut", func() Input {
			p := serving("job")
			p.RestartPolicy = "Never"
			in := cutOff(input(p))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 1, ReasonError, t0.Add(-5*time.Second)
			return in
		}, want{StageTerminated, PhaseFailed, StateTerminated, ReasonError, 0, FromRuntime, FromRuntime,
			CauseKubeletAPIServerUnreachable, "Terminated: Failed"}},
		{"OnFailure pod that exits 0 completes", func() Input {
			p := serving("once")
			p.RestartPolicy = "OnFailure"
			in := cutOff(input(p))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 0, ReasonCompleted, t0.Add(-5*time.Second)
			return in
		}, want{StageTerminated, PhaseSucceeded, StateTerminated, ReasonCompleted, 0, FromRuntime, FromRuntime,
			CauseKubeletAPIServerUnreachable, ""}},
		// With webhook authentication the cut-off kubelet cannot review
		// podlife's token and answers 401: its last answer stands.
		{"the cut-off kubelet stops answering podlife", func() Input {
			p := serving("job")
			p.RestartPolicy = "Never"
			in := cutOff(input(p))
			in.Kubelet = downH("401 Unauthorized")
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 0, ReasonCompleted, t0.Add(-5*time.Second)
			return in
		}, want{StageTerminated, PhaseSucceeded, StateTerminated, ReasonCompleted, 0, FromRuntime, FromRuntime,
			CauseKubeletAPIServerUnreachable, "(and it no longer answers podlife: 401 Unauthorized)"}},
		{"a static pod's live status while the kubelet is cut off", func() Input {
			in := cutOff(input(serving("static")))
			in.Pods[0].StatusFrom = FromKubelet
			return in
		}, want{StageServing, PhaseRunning, StateRunning, "", 0, FromKubelet, FromKubelet,
			CauseKubeletAPIServerUnreachable, "the cluster does not hear of this pod (its status here is the kubelet's own)"}},
		// The Pods API's status is the prober's own while the kubelet is cut
		// off (pkg/kubelet/apis/pods/server.go serves the status manager's):
		// readiness stays the kubelet's, not "unknown".
		{"the Pods API's readiness while the kubelet is cut off", func() Input {
			p := serving("probed")
			p.Containers[0].ReadinessProbe = true
			in := cutOff(input(p))
			in.Pods[0].StatusFrom = FromKubelet
			return in
		}, want{StageServing, PhaseRunning, StateRunning, "", 0, FromKubelet, FromKubelet,
			CauseKubeletAPIServerUnreachable, "the cluster does not hear of this pod"}},
		{"whole node cut off: both causes", func() Input {
			in := cutOff(input(serving("web")))
			in.APIServer = downH("apiserver: timed out")
			return in
		}, want{StageServing, PhaseRunning, StateRunning, "", 0, FromKubeletCache, FromKubeletCache, CauseNodeCutOff, ""}},
		{"a static pod's status is the kubelet's own", func() Input {
			in := input(serving("static"))
			in.Pods[0].StatusFrom = FromKubelet
			return in
		}, want{StageServing, PhaseRunning, StateRunning, "", 0, FromKubelet, FromKubelet, CauseNone, ""}},
		{"new attempt with a readiness probe is not ready yet", func() Input {
			p := serving("probed")
			p.Containers[0].ReadinessProbe = true
			in := cutOff(input(p))
			in.Containers[0].State, in.Containers[0].FinishedAt = RuntimeExited, t0.Add(-3*time.Minute)
			in.Containers[0].StartedAt = t0.Add(-10 * time.Minute)
			attempt(&in, "probed", "app", 1, RuntimeRunning, 0, t0.Add(-2*time.Minute), time.Time{})
			return in
		}, want{StageStarting, PhaseRunning, StateRunning, "", 1, FromRuntime, FromRuntime, CauseKubeletAPIServerUnreachable, "readiness unknown"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(tc.in()))
			c := v.Containers[0]
			got := want{v.Stage, v.Phase, c.State, c.Reason, c.RestartCount, v.StatusFrom, c.From, v.UnknownCause, ""}
			w := tc.want
			w.why = ""
			if got != w {
				t.Fatalf("got  %+v\nwant %+v\n(%s)", got, w, v.StageReason)
			}
			if !strings.Contains(v.StageReason, tc.want.why) {
				t.Fatalf("stage reason %q, want it to contain %q", v.StageReason, tc.want.why)
			}
			if len(v.Mismatches) != 0 {
				t.Fatalf("a cut-off kubelet's frozen copy gave mismatches %+v", v.Mismatches)
			}
			if v.StatusFrom == FromRuntime && (v.KubeletCache == nil || v.KubeletCache.Phase != PhaseRunning) {
				t.Fatalf("the kubelet's copy is not kept beside the derived status: %+v", v.KubeletCache)
			}
		})
	}
}

// TestCrashLoopDoesNotFlap: a crash-looping container running between two
// crashes keeps its pod Failing until it has run CrashLoopSettle; a
// Correlator that reuses the view rebuilds it when that time comes.
func TestCrashLoopDoesNotFlap(t *testing.T) {
	p := pod("crash", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	p.Containers[0].RestartCount = 3
	p.Containers[0].ContainerID = "containerd://crash-app-3"
	p.Containers[0].State.StartedAt = t0.Add(-5 * time.Second)
	p.Containers[0].LastState = ContainerState{Kind: StateTerminated, ExitCode: 3, Reason: ReasonError,
		StartedAt: t0.Add(-40 * time.Second), FinishedAt: t0.Add(-36 * time.Second)}
	var c Correlator
	at := func(now time.Time) PodView {
		in := input(p)
		in.Now = now
		in.Kubelet.LastSuccess, in.Runtime.LastSuccess = now, now
		return onlyPod(c.Correlate(in))
	}
	if v := at(t0); v.Stage != StageFailing || !strings.Contains(v.StageReason, "crash-looping: restarted 3 times, last exit 3 Error after 4s") {
		t.Fatalf("between crashes: %s (%s), want Failing crash-looping", v.Stage, v.StageReason)
	}
	if v := at(t0.Add(CrashLoopSettle - 6*time.Second)); v.Stage != StageFailing {
		t.Fatalf("54s into the attempt: %s (%s), want still Failing", v.Stage, v.StageReason)
	}
	if v := at(t0.Add(CrashLoopSettle)); v.Stage != StageServing {
		t.Fatalf("after running %s: %s (%s), want Serving", CrashLoopSettle, v.Stage, v.StageReason)
	}
	// Between two attempts the container is created again: still Failing.
	p.Containers[0].State = ContainerState{Kind: StateWaiting, Reason: ReasonContainerCreating}
	c = Correlator{}
	if v := at(t0); v.Stage != StageFailing || !strings.Contains(v.StageReason, "being created again") {
		t.Fatalf("being created again: %s (%s), want Failing", v.Stage, v.StageReason)
	}
	p.Containers[0].State = ContainerState{Kind: StateRunning, StartedAt: t0.Add(-5 * time.Second)}
	// A container that crashed once after running for an hour is no crash loop.
	p.Containers[0].LastState.StartedAt = t0.Add(-time.Hour)
	c = Correlator{}
	if v := at(t0); v.Stage != StageServing {
		t.Fatalf("one crash after an hour: %s (%s), want Serving", v.Stage, v.StageReason)
	}
}

// TestMismatchAfterGrace: the same lag is no mismatch within the grace and
// one after it, with a Correlator that reuses the view in between.
func TestMismatchAfterGrace(t *testing.T) {
	var c Correlator
	at := func(now time.Time) PodView {
		in := input(serving("p"))
		in.Pods[0].StatusFrom = FromKubeletCache
		in.Containers[0].State, in.Containers[0].ExitCode, in.Containers[0].FinishedAt = RuntimeExited, 1, t0
		in.Now = now
		in.Kubelet.LastSuccess, in.Runtime.LastSuccess = now, now
		return onlyPod(c.Correlate(in))
	}
	if v := at(t0.Add(time.Second)); len(v.Mismatches) != 0 {
		t.Fatalf("lag of 1s reported: %+v", v.Mismatches)
	}
	if v := at(t0.Add(DefaultMismatchGrace)); len(v.Mismatches) != 1 || v.Mismatches[0].Kind != MismatchRunningButExited {
		t.Fatalf("lag of %s: mismatches %+v, want kubelet-running-runtime-exited", DefaultMismatchGrace, v.Mismatches)
	}
}

// TestDerivePhase follows pkg/kubelet/kubelet_pods.go getPhase.
func TestDerivePhase(t *testing.T) {
	ec := func(n int32) *int32 { return &n }
	run := ContainerView{Kind: KindRegular, State: StateRunning}
	ok := ContainerView{Kind: KindRegular, State: StateTerminated, ExitCode: ec(0)}
	bad := ContainerView{Kind: KindRegular, State: StateTerminated, ExitCode: ec(1)}
	backoff := ContainerView{Kind: KindRegular, State: StateWaiting, LastState: &ContainerState{Kind: StateTerminated, ExitCode: 1}}
	creating := ContainerView{Kind: KindRegular, State: StateWaiting}
	initFailed := ContainerView{Kind: KindInit, State: StateTerminated, ExitCode: ec(1)}
	tests := []struct {
		policy string
		cs     []ContainerView
		want   Phase
	}{
		{"Always", []ContainerView{run}, PhaseRunning},
		{"Always", []ContainerView{ok}, PhaseRunning},
		{"Always", []ContainerView{backoff}, PhaseRunning},
		{"Always", []ContainerView{creating, run}, PhasePending},
		{"Never", []ContainerView{ok}, PhaseSucceeded},
		{"Never", []ContainerView{ok, bad}, PhaseFailed},
		{"Never", []ContainerView{ok, run}, PhaseRunning},
		{"OnFailure", []ContainerView{ok}, PhaseSucceeded},
		{"OnFailure", []ContainerView{bad}, PhaseRunning},
		{"Never", []ContainerView{initFailed, creating}, PhaseFailed},
	}
	for _, tc := range tests {
		p := &Pod{Phase: PhaseRunning, RestartPolicy: tc.policy}
		if got := derivePhase(p, tc.cs); got != tc.want {
			t.Errorf("%s %+v: %s, want %s", tc.policy, tc.cs, got, tc.want)
		}
	}
	if got := derivePhase(&Pod{Phase: PhaseSucceeded, RestartPolicy: "Always"}, []ContainerView{run}); got != PhaseSucceeded {
		t.Errorf("a terminal phase was undone: %s", got)
	}
}

// TestReadinessWhileCutOff: while the kubelet is cut off, a container with a
// readiness probe is as ready as the kubelet's prober says (its
// /metrics/probes), and "unknown", not the frozen value, when that cannot be read.
func TestReadinessWhileCutOff(t *testing.T) {
	tests := []struct {
		name      string
		readiness map[string]ProbeReadiness
		ready     bool
		from      string
		stage     Stage
	}{
		{"prober unreadable", nil, false, FromUnknown, StageStarting},
		{"prober says ready", map[string]ProbeReadiness{"uid-p/app": {Ready: true, At: t0}}, true, FromProbes, StageServing},
		{"prober says not ready", map[string]ProbeReadiness{"uid-p/app": {Ready: false, At: t0}}, false, FromProbes, StageStarting},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := serving("p")
			p.Containers[0].ReadinessProbe = true
			in := cutOff(input(p))
			in.Readiness = tc.readiness
			v := onlyPod(Correlate(in))
			c := v.Containers[0]
			if c.Ready != tc.ready || c.ReadyFrom != tc.from || v.Stage != tc.stage {
				t.Fatalf("ready=%v from %q stage %s (%s); want %v %q %s", c.Ready, c.ReadyFrom, v.Stage, v.StageReason, tc.ready, tc.from, tc.stage)
			}
			if unknown := strings.Contains(v.StageReason, "readiness unknown"); unknown != (tc.from == FromUnknown) {
				t.Fatalf("stage reason %q: says unknown %v, want %v", v.StageReason, unknown, tc.from == FromUnknown)
			}
		})
	}
	// Without a readiness probe a running container is ready: nothing to read.
	v := onlyPod(Correlate(cutOff(input(serving("p")))))
	if c := v.Containers[0]; !c.Ready || c.ReadyFrom != "" || v.Stage != StageServing {
		t.Fatalf("no probe: ready=%v from %q stage %s", c.Ready, c.ReadyFrom, v.Stage)
	}
}

// Every cause says since when.
func TestUnknownSince(t *testing.T) {
	tests := []struct {
		name  string
		in    func() Input
		cause Cause
		since time.Time
	}{
		{"kubelet cut off: since the link was lost", func() Input { return cutOff(input(serving("p"))) },
			CauseKubeletAPIServerUnreachable, t0.Add(-time.Minute)},
		{"podlife cut off: since its last answer from the API server", func() Input {
			in := input(serving("p"))
			in.APIServer = downH("timed out")
			in.APIServer.LastSuccess = t0.Add(-3 * time.Minute)
			return in
		}, CauseAPIServerUnreachable, t0.Add(-3 * time.Minute)},
		{"kubelet gone: since its last answer", func() Input {
			in := input(serving("p"))
			in.Kubelet = downH("refused")
			return in
		}, CauseKubeletUnreachable, t0.Add(-time.Minute)},
		{"node Unknown upstream: since its last heartbeat", func() Input {
			in := input(serving("p"))
			in.APIServer = upH()
			in.APINode = &APINode{Ready: "Unknown", Reason: "NodeStatusUnknown", LastHeartbeat: t0.Add(-90 * time.Second)}
			return in
		}, CauseNodeStatusStale, t0.Add(-90 * time.Second)},
	}
	for _, tc := range tests {
		v := onlyPod(Correlate(tc.in()))
		if v.UnknownCause != tc.cause || !v.UnknownSince.Equal(tc.since) {
			t.Errorf("%s: %s since %s, want %s since %s", tc.name, v.UnknownCause, v.UnknownSince, tc.cause, tc.since)
		}
	}
}

// A static pod is known to /pods and the runtime by its config hash; the API
// server's copy is its mirror pod (annotation kubernetes.io/config.mirror =
// the hash, pkg/kubelet/pod/mirror_client.go), joined by it.
func TestMirrorPodJoin(t *testing.T) {
	in := input(serving("static"))
	in.Pods[0].StatusFrom = FromKubelet
	in.APIServer = upH()
	in.APIPods = []APIPod{{UID: "mirror-uid", Namespace: "default", Name: "static", Phase: PhaseRunning, Ready: "True", MirrorOf: "uid-static"}}
	v := onlyPod(Correlate(in))
	if v.APIServer == nil || v.APIServer.UID != "mirror-uid" {
		t.Fatalf("static pod not joined to its mirror pod: %+v", v.APIServer)
	}
}

// pkg/kubelet/container/helpers.go ShouldContainerBeRestarted, with the
// container-level restart policy and restartPolicyRules of ContainerRestartRules.
func TestWillRestart(t *testing.T) {
	tests := []struct {
		podPolicy, policy, rules string
		kind                     ContainerKind
		exit                     int32
		want                     bool
	}{
		{"Always", "", "", KindRegular, 0, true},
		{"OnFailure", "", "", KindRegular, 0, false},
		{"OnFailure", "", "", KindRegular, 1, true},
		{"Never", "", "", KindRegular, 1, false},
		{"Never", "", "", KindSidecar, 0, true},
		{"Always", "", "", KindInit, 0, false},
		{"Always", "", "", KindInit, 1, true},
		{"Always", "Never", "", KindRegular, 1, false},   // the container's own policy wins
		{"Never", "OnFailure", "", KindRegular, 1, true}, // ...both ways
		{"Never", "Never", "Restart:In:42", KindRegular, 42, true},
		{"Never", "Never", "Restart:In:42", KindRegular, 1, false},
		{"Always", "Always", "Restart:NotIn:0,1", KindRegular, 7, true},
		{"Never", "Never", "Restart:NotIn:0,1;Restart:In:0", KindRegular, 0, true}, // the first match decides
		{"Never", "Never", "RestartAllContainers:In:3", KindRegular, 3, true},
		{"Never", "", "Restart:In:42", KindRegular, 42, false}, // rules need the container's own policy (ContainerShouldRestart)
	}
	for _, tc := range tests {
		pod := &Pod{RestartPolicy: tc.podPolicy}
		st := &ContainerStatus{Kind: tc.kind, RestartPolicy: tc.policy, RestartRules: tc.rules}
		if got := willRestart(pod, st, tc.exit); got != tc.want {
			t.Errorf("pod %s, container %q rules %q, %s exit %d: %v, want %v", tc.podPolicy, tc.policy, tc.rules, tc.kind, tc.exit, got, tc.want)
		}
	}
}
