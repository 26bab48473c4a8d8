package lifecycle

import (
	"cmp"
	"strings"
	"testing"
	"time"
)

func serving(name string) *podB {
	return pod(name, PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
}

func TestJoin(t *testing.T) {
	t.Run("by container ID, any runtime scheme", func(t *testing.T) {
		p := serving("p")
		in := input(p)
		in.Pods[0].Containers[0].ContainerID = "cri-o://p-app-0"
		v := onlyPod(Correlate(in))
		if v.Containers[0].Runtime == nil || v.Containers[0].Runtime.ID != "p-app-0" {
			t.Fatalf("not joined: %+v", v.Containers[0].Runtime)
		}
	})
	t.Run("fallback by pod UID, name and attempt", func(t *testing.T) {
		p := pod("p", PhaseRunning, conds("True", "True", "False", "False"), cWaiting("app", ReasonContainerCreating))
		p.Containers[0].RestartCount = 1
		in := input(p)
		in.Containers = []*Container{
			{ID: "old", PodUID: p.UID, Name: "app", Attempt: 0, State: RuntimeExited},
			{ID: "new", PodUID: p.UID, Name: "app", Attempt: 1, State: RuntimeCreated},
			{ID: "other", PodUID: "uid-other", Name: "app", Attempt: 1, State: RuntimeCreated},
		}
		v := onlyPod(Correlate(in))
		if rc := v.Containers[0].Runtime; rc == nil || rc.ID != "new" {
			t.Fatalf("fallback join got %+v, want container new", rc)
		}
	})
	t.Run("the runtime's newer attempt is shown when it is ahead", func(t *testing.T) {
		in := input(serving("p"))
		in.Containers[0].State = RuntimeExited
		in.Containers = append(in.Containers, &Container{ID: "p-app-1", PodUID: "uid-p", Name: "app", Attempt: 1, State: RuntimeRunning})
		v := onlyPod(Correlate(in))
		c := v.Containers[0]
		if rc := c.Runtime; rc == nil || rc.ID != "p-app-1" || c.ContainerID != "containerd://p-app-1" || c.From != FromRuntime ||
			c.RestartCount != 1 || c.LastState == nil || c.LastState.ContainerID != "containerd://p-app-0" {
			t.Fatalf("derived container %+v, runtime view %+v", c, rc)
		}
		if v.StatusFrom != FromRuntime || v.KubeletCache == nil || v.KubeletCache.Restarts != 0 || v.KubeletCache.Phase != PhaseRunning {
			t.Fatalf("status from %q, kubelet's copy %+v", v.StatusFrom, v.KubeletCache)
		}
	})
	t.Run("an ID the runtime lacks is not joined by name", func(t *testing.T) {
		p := serving("p")
		in := input(p)
		in.Containers[0].ID = "something-else"
		v := onlyPod(Correlate(in))
		if v.Containers[0].Runtime != nil {
			t.Fatalf("joined %+v despite different ID", v.Containers[0].Runtime)
		}
	})
	t.Run("runtime container the kubelet does not list", func(t *testing.T) {
		p := serving("p")
		in := input(p)
		in.Containers = append(in.Containers, &Container{ID: "x", PodUID: p.UID, PodName: "p", PodNamespace: "default",
			Name: "extra", State: RuntimeRunning, Attempt: 0})
		v := onlyPod(Correlate(in))
		if len(v.Containers) != 2 || v.Containers[1].Name != "extra" || v.Containers[1].Source != SourceRuntime ||
			v.Containers[1].State != StateRunning {
			t.Fatalf("containers %+v", v.Containers)
		}
	})
	t.Run("sorted by namespace and name, both views flagged", func(t *testing.T) {
		b, a := serving("b"), serving("a")
		a.Namespace = "zz"
		s := Correlate(input(b, a))
		if s.Pods[0].Name != "b" || s.Pods[1].Name != "a" || !s.Pods[0].InKubelet || !s.Pods[0].InRuntime {
			t.Fatalf("order/flags: %s/%s %v %v", s.Pods[0].Key(), s.Pods[1].Key(), s.Pods[0].InKubelet, s.Pods[0].InRuntime)
		}
		if s.Node != "node-a" || !s.At.Equal(t0) || !s.Sources[SourceRuntime].Up {
			t.Fatalf("snapshot header %+v", s)
		}
	})
}

func TestMismatches(t *testing.T) {
	tests := []struct {
		name   string
		in     func() Input
		kind   MismatchKind // "" = no mismatch expected
		detail string
		stage  Stage
	}{
		{"views agree", func() Input { return input(serving("p")) }, "", "", StageServing},
		{"kubelet running, runtime exited", func() Input {
			in := input(serving("p"))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 137, ReasonOOMKilled, t0.Add(-30*time.Second)
			return in
		}, MismatchRunningButExited, "kubelet says running; runtime says exited 137 (OOMKilled) at 2026-11-25T09:59:30Z", StageFailing},
		{"kubelet running, runtime exited 0", func() Input {
			in := input(serving("p"))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 0, ReasonCompleted, t0.Add(-DefaultMismatchGrace)
			return in
		}, MismatchRunningButExited, "exited 0 (Completed)", StageStarting},
		// The kubelet's copy normally lags the runtime by a PLEG relist and a
		// status round trip: no mismatch within the grace.
		{"kubelet running, runtime exited within the grace", func() Input {
			in := input(serving("p"))
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 137, ReasonOOMKilled, t0.Add(-DefaultMismatchGrace+time.Millisecond)
			return in
		}, "", "", StageFailing},
		// /pods serves the API server's copy, frozen while the kubelet is cut
		// off (pkg/kubelet/kubelet_getters.go GetPods).
		{"no mismatch with the frozen /pods copy while the kubelet is cut off", func() Input {
			in := input(serving("p"))
			in.Pods[0].StatusFrom = FromKubeletCache
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 137, ReasonOOMKilled, t0.Add(-time.Hour)
			in.KubeletLink = KubeletLink{CutOff: true, Since: t0.Add(-2 * time.Hour)}
			return in
		}, "", "", StageFailing},
		// The Pods API serves the status manager's live status, cut off or
		// not (pkg/kubelet/apis/pods/server.go): a lag past the grace is real.
		{"the kubelet's live status lags the runtime past the grace while cut off", func() Input {
			in := input(serving("p"))
			in.Pods[0].StatusFrom = FromKubelet
			c := in.Containers[0]
			c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 137, ReasonOOMKilled, t0.Add(-time.Hour)
			in.KubeletLink = KubeletLink{CutOff: true, Since: t0.Add(-2 * time.Hour)}
			return in
		}, MismatchRunningButExited, "kubelet says running; runtime says exited 137 (OOMKilled)", StageFailing},
		{"container missing in runtime", func() Input {
			in := input(serving("p"))
			in.Containers = nil
			return in
		}, MismatchMissingInRuntime, "kubelet references containerd://p-app-0, which the runtime does not have", StageServing},
		{"restart count vs attempt", func() Input {
			in := input(serving("p"))
			in.Containers = append(in.Containers, &Container{ID: "p-app-1", PodUID: "uid-p", Name: "app", Attempt: 1, State: RuntimeRunning})
			return in
		}, MismatchRestartCount, "kubelet restartCount 0; runtime's latest attempt is 1 (RUNNING)", StageServing},
		{"sandbox not ready", func() Input {
			in := input(serving("p"))
			in.Sandboxes[0].State = SandboxNotReady
			return in
		}, MismatchSandboxNotReady, "kubelet says Running; sandbox sb-p is NOTREADY", StageServing},
		{"no sandbox at all", func() Input {
			in := input(serving("p"))
			in.Sandboxes = nil
			return in
		}, MismatchSandboxNotReady, "the runtime has no sandbox", StageServing},
		{"older ready sandbox does not hide the newer one", func() Input {
			in := input(serving("p"))
			in.Sandboxes[0].State = SandboxNotReady
			in.Sandboxes[0].Attempt = 1
			in.Sandboxes = append(in.Sandboxes, Sandbox{ID: "sb-old", PodUID: "uid-p", State: SandboxReady, Attempt: 0})
			return in
		}, MismatchSandboxNotReady, "NOTREADY", StageServing},
		{"kubelet counts more restarts than the runtime has attempts", func() Input {
			in := input(pod("p", PhaseRunning, conds("True", "True", "True", "True"), restarts(3, 1, ReasonError, cRunning("app", true))))
			in.Containers[0].Attempt = 1
			return in
		}, MismatchRestartCount, "kubelet restartCount 3; runtime's latest attempt is 1", StageServing},
		// The kubelet counts one restart for a container whose state it lost
		// (ContainerStatusUnknown) without a new runtime attempt.
		{"ContainerStatusUnknown's extra restart", func() Input {
			in := input(pod("p", PhaseRunning, conds("True", "True", "True", "True"),
				restarts(2, 137, ReasonContainerStatusUnknown, cRunning("app", true))))
			in.Containers[0].Attempt = 1
			return in
		}, "", "", StageServing},
		{"zombie: kubelet says terminated, runtime still runs it", func() Input {
			p := pod("p", PhaseSucceeded, conds("True", "True", "False", "False"), cTerminated("app", 0, ReasonCompleted))
			p.Containers[0].State.ContainerID = p.Containers[0].ContainerID
			in := input(p)
			c := in.Containers[0]
			c.State, c.FinishedAt, c.ExitCode = RuntimeRunning, time.Time{}, 0
			return in
		}, MismatchZombie, "kubelet says terminated at 2026-11-25T09:59:50Z; the runtime still runs container p-app-0", StageTerminated},
		{"orphan", func() Input {
			in := input()
			in.Containers = []*Container{{ID: "o1", PodUID: "uid-gone", PodName: "gone", PodNamespace: "ns", Name: "app", State: RuntimeRunning}}
			return in
		}, MismatchOrphan, "runtime runs container o1 (attempt 0) of a pod the kubelet does not know", StageUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(tc.in()))
			if tc.kind == "" {
				if len(v.Mismatches) != 0 {
					t.Fatalf("unexpected mismatches %+v", v.Mismatches)
				}
			} else if len(v.Mismatches) != 1 || v.Mismatches[0].Kind != tc.kind || !strings.Contains(v.Mismatches[0].Detail, tc.detail) {
				t.Fatalf("mismatches %+v, want one %s with %q", v.Mismatches, tc.kind, tc.detail)
			}
			if v.Stage != tc.stage {
				t.Fatalf("stage %s (%s), want %s", v.Stage, v.StageReason, tc.stage)
			}
		})
	}
	t.Run("exited containers of deleted pods are garbage, not orphans", func(t *testing.T) {
		in := input()
		in.Containers = []*Container{{ID: "o1", PodUID: "uid-gone", PodName: "gone", Name: "app", State: RuntimeExited}}
		if s := Correlate(in); len(s.Pods) != 0 {
			t.Fatalf("pods %+v", s.Pods)
		}
	})
	t.Run("finished pods do not report missing containers", func(t *testing.T) {
		p := pod("p", PhaseSucceeded, conds("True", "True", "False", "False"), cTerminated("app", 0, ReasonCompleted))
		in := input(p)
		in.Containers = nil
		if v := onlyPod(Correlate(in)); len(v.Mismatches) != 0 {
			t.Fatalf("mismatches %+v", v.Mismatches)
		}
	})
	t.Run("no mismatches while a source is down", func(t *testing.T) {
		in := input(serving("p"))
		in.Containers = nil
		in.Runtime = downH("connection refused")
		if v := onlyPod(Correlate(in)); len(v.Mismatches) != 0 {
			t.Fatalf("mismatches %+v", v.Mismatches)
		}
	})
}

func TestUnknownCauses(t *testing.T) {
	crashing := func() *podB {
		return pod("p", PhaseRunning, conds("True", "True", "False", "False"),
			cRunning("web", true), restarts(1, 1, ReasonError, cWaiting("worker", ReasonCrashLoopBackOff)))
	}
	tests := []struct {
		name   string
		in     func() Input
		stage  Stage
		cause  Cause
		reason string
	}{
		{"kubelet down, runtime up: containers still known", func() Input {
			in := input(crashing())
			in.Kubelet = downH(`kubelet: GET https://127.0.0.1:10250/pods: connection refused`)
			return in
		}, StageUnknown, CauseKubeletUnreachable, "Unknown: kubelet unreachable (kubelet: GET https://127.0.0.1:10250/pods: connection refused); runtime: 1/2 containers running, 1 exited (last exit 1 Error)"},
		{"runtime down, kubelet up", func() Input {
			in := input(serving("p"))
			in.Runtime = downH("dial unix /run/containerd/containerd.sock: connect: no such file or directory")
			return in
		}, StageUnknown, CauseRuntimeUnreachable, "Unknown: runtime unreachable (dial unix /run/containerd/containerd.sock: connect: no such file or directory); kubelet last said Running, 1/1 containers ready"},
		{"both down", func() Input {
			in := input(serving("p"))
			in.Runtime, in.Kubelet = downH("r"), downH("k")
			return in
		}, StageUnknown, CauseSourcesUnreachable, "kubelet: k; runtime: r"},
		{"kubelet stale though not failed", func() Input {
			in := input(serving("p"))
			in.Kubelet.LastSuccess = t0.Add(-11 * time.Second)
			return in
		}, StageUnknown, CauseKubeletUnreachable, "kubelet unreachable (unknown)"},
		{"custom StaleAfter", func() Input {
			in := input(serving("p"))
			in.Kubelet.LastSuccess = t0.Add(-11 * time.Second)
			in.StaleAfter = time.Minute
			return in
		}, StageServing, CauseNone, "Serving"},
		{"kubelet never synced counts as down", func() Input {
			in := input(serving("p"))
			in.Kubelet = SourceHealth{Configured: true}
			return in
		}, StageUnknown, CauseKubeletUnreachable, "runtime: 1/1 containers running"},
		{"API server down: local truth stands", func() Input {
			in := input(serving("p"))
			in.APIServer = downH("dial tcp 127.0.0.1:6443: connect: connection refused")
			return in
		}, StageServing, CauseAPIServerUnreachable, "Serving: 1/1"},
		{"API server up", func() Input {
			in := input(serving("p"))
			in.APIServer = upH()
			return in
		}, StageServing, CauseNone, "Serving"},
		{"unconfigured runtime is not a cause", func() Input {
			in := input(serving("p"))
			in.Runtime, in.Sandboxes, in.Containers = SourceHealth{}, nil, nil
			return in
		}, StageServing, CauseNone, "Serving"},
		{"unconfigured kubelet: runtime-only stage", func() Input {
			in := input(serving("p"))
			in.Kubelet, in.Pods = SourceHealth{}, nil
			return in
		}, StageStarting, CauseNone, "Starting: runtime: 1/1 containers running (readiness unknown without the kubelet)"},
		{"unconfigured kubelet: runtime-only failing", func() Input {
			in := input(crashing())
			in.Kubelet, in.Pods = SourceHealth{}, nil
			return in
		}, StageFailing, CauseNone, `Failing: container "worker" exited 1 Error (runtime view only)`},
		{"unconfigured kubelet: runtime-only terminated", func() Input {
			in := input(pod("p", PhaseSucceeded, nil, cTerminated("job", 0, ReasonCompleted)))
			in.Kubelet, in.Pods = SourceHealth{}, nil
			return in
		}, StageTerminated, CauseNone, "Terminated: runtime: 0/1 containers running, 1 exited (last exit 0 Completed)"},
		{"unconfigured kubelet: runtime-only created", func() Input {
			in := input(serving("p"))
			in.Kubelet, in.Pods = SourceHealth{}, nil
			in.Containers[0].State = RuntimeCreated
			return in
		}, StageInitializing, CauseNone, "Initializing: runtime: 0/1 containers running"},
		{"runtime UNKNOWN container", func() Input {
			in := input(serving("p"))
			in.Containers[0].State = RuntimeUnknown
			return in
		}, StageUnknown, CauseContainerUnknown, `container "app" state unknown`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(tc.in()))
			if v.Stage != tc.stage || v.UnknownCause != tc.cause || !strings.Contains(v.StageReason, tc.reason) {
				t.Fatalf("got %s/%q %q\nwant %s/%q containing %q", v.Stage, v.UnknownCause, v.StageReason, tc.stage, tc.cause, tc.reason)
			}
		})
	}
	t.Run("kubelet down: pods only the runtime knows are shown from the runtime", func(t *testing.T) {
		in := input()
		in.Kubelet = downH("refused")
		in.Sandboxes = []Sandbox{{ID: "s", PodUID: "uid-new", PodName: "new", PodNamespace: "ns", State: SandboxReady}}
		in.Containers = []*Container{
			{ID: "a0", PodUID: "uid-new", PodName: "new", PodNamespace: "ns", Name: "app", Attempt: 0, State: RuntimeExited, ExitCode: 1},
			{ID: "a1", PodUID: "uid-new", PodName: "new", PodNamespace: "ns", Name: "app", Attempt: 1, State: RuntimeRunning},
		}
		v := onlyPod(Correlate(in))
		if v.Key() != "ns/new" || v.Stage != StageUnknown || v.UnknownCause != CauseKubeletUnreachable ||
			len(v.Containers) != 1 || v.Containers[0].ContainerID != "a1" || v.Containers[0].State != StateRunning ||
			v.Containers[0].RestartCount != 1 || v.InKubelet || len(v.Mismatches) != 0 {
			t.Fatalf("view %+v", v)
		}
	})
}

// TestAPIBehindKubelet: the kubelet's own live status (its Pods API) against
// the API server's copy, which the status manager posts within its 10 s sync
// period (pkg/kubelet/status/status_manager.go): a difference is a finding
// once this correlator has seen it for APIBehindGrace.
func TestAPIBehindKubelet(t *testing.T) {
	live := func(p *podB) Input {
		in := input(p)
		in.Pods[0].StatusFrom = FromKubelet
		in.APIServer, in.APINode = upH(), &APINode{Ready: "True"}
		in.APIPods = []APIPod{{UID: p.UID, Namespace: p.Namespace, Name: p.Name, Phase: PhaseRunning, Ready: "True"}}
		return in
	}
	at := func(in Input, d time.Duration) Input { in.Now = t0.Add(d); return in }
	behind := func(v PodView) string {
		for _, m := range v.Mismatches {
			if m.Kind == MismatchAPIBehindKubelet {
				return m.Detail
			}
		}
		return ""
	}
	type step struct {
		in   Input
		want string // the finding's detail, "" none
	}
	notReady := live(pod("p", PhaseRunning, conds("True", "True", "False", "False"), cRunning("app", false)))
	serving := live(serving("p"))
	crash := live(pod("p", PhaseRunning, conds("True", "True", "False", "False"), restarts(4, 3, ReasonError, cWaiting("app", ReasonCrashLoopBackOff))))
	evicting := live(pod("p", PhaseFailed, conds("True", "True", "False", "False"), cRunning("app", false)))
	evicting.APIPods[0].Ready = "False" // posted: only the phase is held back
	withDebug := live(pod("p", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true),
		restarts(3, 1, ReasonError, kind(KindEphemeral, cTerminated("debug", 1, ReasonError)))))
	cache := live(pod("p", PhaseRunning, conds("True", "True", "True", "True"), restarts(2, 1, ReasonError, cRunning("app", true))))
	cache.Pods[0].StatusFrom = FromKubeletCache
	tests := []struct {
		name  string
		steps []step
	}{
		{"not ready live, ready in the copy: a finding after the grace, timed from the first sight", []step{
			{at(notReady, -40*time.Second), ""}, {at(notReady, -15*time.Second), ""},
			{at(notReady, -10*time.Second), "API server's copy: Running, Ready=True, 0 restarts; the kubelet's own live status: Running, Ready=False, 0 restarts; differing since 2026-11-25T09:59:20Z"},
			{at(serving, 0), ""}, {at(notReady, time.Second), ""}}},
		// The lag is the copy's: the kubelet's status changing meanwhile (a
		// crash loop's restarts) does not restart the clock.
		{"the kubelet's status changing meanwhile", []step{{at(notReady, -40*time.Second), ""},
			{at(crash, -20*time.Second), ""},
			{at(crash, -10*time.Second), "API server's copy: Running, Ready=True, 0 restarts; the kubelet's own live status: Running, Ready=False, 4 restarts; differing since 2026-11-25T09:59:20Z"}}},
		// Compared before the runtime-based checks (apiserver-running-runtime-exited).
		{"a crash loop the copy lacks", []step{{at(crash, -APIBehindGrace), ""},
			{at(crash, 0), "API server's copy: Running, Ready=True, 0 restarts; the kubelet's own live status: Running, Ready=False, 4 restarts; differing since 2026-11-25T09:59:30Z"}}},
		// SyncTerminatingPod writes Failed before it kills the containers;
		// mergePodStatus keeps the copy's phase meanwhile.
		{"a terminal phase held back while containers run", []step{{at(evicting, -time.Minute), ""}, {at(evicting, 0), ""}}},
		{"an ephemeral container's restarts are not counted", []step{{at(withDebug, -time.Minute), ""}, {at(withDebug, 0), ""}}},
		{"/pods serves the copy itself: nothing to compare", []step{{at(cache, -time.Minute), ""}, {at(cache, 0), ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Correlator
			for i, st := range tc.steps {
				if got := behind(onlyPod(c.Correlate(st.in))); got != st.want {
					t.Fatalf("step %d (%s): finding %q, want %q", i, st.in.Now.Format(time.TimeOnly), got, st.want)
				}
			}
		})
	}
}

func TestAPIServerView(t *testing.T) {
	withAPI := func(in Input, phase Phase, ready string, node *APINode) Input {
		in.APIServer = upH()
		in.APINode = node
		for i := range in.Pods {
			// /pods' copy of API pods, unless a case says the status is the
			// kubelet's own (its Pods API).
			in.Pods[i].StatusFrom = cmp.Or(in.Pods[i].StatusFrom, FromKubeletCache)
		}
		for _, p := range in.Pods {
			in.APIPods = append(in.APIPods, APIPod{UID: p.UID, Namespace: p.Namespace, Name: p.Name, Phase: phase, Ready: ready})
		}
		return in
	}
	nodeReady := &APINode{Ready: "True"}
	tests := []struct {
		name     string
		in       Input
		cause    Cause
		mismatch MismatchKind
		detail   string
	}{
		{"API agrees", withAPI(input(serving("p")), PhaseRunning, "True", nodeReady), CauseNone, "", ""},
		// The kubelet writes Failed (Evicted) before it kills the containers
		// (pkg/kubelet/kubelet.go syncTerminatingPod): no stale copy.
		{"eviction in progress", func() Input {
			p := pod("p", PhaseFailed, conds("True", "True", "False", "False"), cRunning("app", false))
			p.Reason = ReasonEvicted
			return withAPI(input(p), PhaseFailed, "False", nodeReady)
		}(), CauseNone, "", ""},
		{"node NotReady upstream while containers run", withAPI(input(serving("p")), PhaseRunning, "True",
			&APINode{Ready: "Unknown", Reason: "NodeStatusUnknown"}), CauseNodeStatusStale, "", ""},
		// A node whose kubelet posts status is not stale: the difference is
		// a finding, not a cause.
		{"API says Failed, containers run", withAPI(input(serving("p")), PhaseFailed, "False", nodeReady),
			CauseNone, MismatchAPIStale, "API server says Failed; 1 containers are running here"},
		{"API says not ready long after the kubelet said ready", withAPI(input(serving("p")), PhaseRunning, "Unknown", nodeReady),
			CauseNone, MismatchAPIStale, "API server says Ready=Unknown; the kubelet has said Ready=True since 2026-11-25T09:59:00Z"},
		{"API lag within the allowance is not stale", func() Input {
			in := withAPI(input(serving("p")), PhaseRunning, "False", nodeReady)
			for i := range in.Pods[0].Conditions {
				in.Pods[0].Conditions[i].LastTransitionTime = t0.Add(-2 * time.Second)
			}
			return in
		}(), CauseNone, "", ""},
		{"API says Running, runtime says all exited", func() Input {
			in := withAPI(input(serving("p")), PhaseRunning, "True", nodeReady)
			c := in.Containers[0]
			c.State, c.ExitCode, c.FinishedAt = RuntimeExited, 1, t0.Add(-30*time.Second)
			return in
		}(), CauseNone, MismatchAPIRunningButExited, "API server says Running; the runtime says all 1 containers exited, the last at 2026-11-25T09:59:30Z"},
		{"API says Running, runtime says all exited, node Unknown", func() Input {
			in := withAPI(input(serving("p")), PhaseRunning, "True", &APINode{Ready: "Unknown", Reason: "NodeStatusUnknown"})
			c := in.Containers[0]
			c.State, c.ExitCode, c.FinishedAt = RuntimeExited, 1, t0.Add(-30*time.Second)
			return in
		}(), CauseNodeStatusStale, MismatchAPIRunningButExited, "API server says Running; the runtime says all 1 containers exited, the last at 2026-11-25T09:59:30Z"},
		// A live kubelet's Ready=False (KubeletNotReady) is accurate, not stale.
		{"node NotReady posted by a live kubelet", withAPI(input(serving("p")), PhaseRunning, "True",
			&APINode{Ready: "False", Reason: "KubeletNotReady"}), CauseNone, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := onlyPod(Correlate(tc.in))
			if v.APIServer == nil || v.UnknownCause != tc.cause {
				t.Fatalf("apiserver %+v cause %q (%s), want %q", v.APIServer, v.UnknownCause, v.StageReason, tc.cause)
			}
			var got *Mismatch
			for i := range v.Mismatches {
				if k := v.Mismatches[i].Kind; k == MismatchAPIStale || k == MismatchAPIRunningButExited || k == MismatchAPIBehindKubelet {
					if got != nil {
						t.Fatalf("two findings on the API server's copy: %+v", v.Mismatches)
					}
					got = &v.Mismatches[i]
				}
			}
			switch {
			case tc.mismatch == "" && got != nil:
				t.Fatalf("unexpected %+v", got)
			case tc.mismatch != "" && (got == nil || got.Kind != tc.mismatch || got.Detail != tc.detail):
				t.Fatalf("mismatch %+v, want %s %q", got, tc.mismatch, tc.detail)
			}
		})
	}
}
