package kubelet

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// restartAllPod restarts itself in place for ever: under restartPolicy
// Never, its main container's exit 42 matches a RestartAllContainers rule
// (KEP-5532, gate RestartAllContainersOnContainerExits, beta and on since
// 1.36; ContainerRestartRules, beta and on since 1.35), so the kubelet
// kills and removes every container, keeps the sandbox and runs the init
// container again (pkg/kubelet/kuberuntime/kuberuntime_manager.go
// computePodActions, pkg/kubelet/kubelet_pods.go getPhase and
// convertToAPIContainerStatuses).
const restartAllPod = `apiVersion: v1
kind: Pod
metadata: {name: restartall, namespace: real}
spec:
  hostNetwork: true
  restartPolicy: Never
  initContainers:
  - {name: setup, image: IMG, imagePullPolicy: Never, command: [sh, -c, "sleep 1"]}
  containers:
  - name: main
    image: IMG
    imagePullPolicy: Never
    command: [sh, -c, "sleep 2; exit 42"]
    restartPolicy: Never
    restartPolicyRules:
    - action: RestartAllContainers
      exitCodes: {operator: In, values: [42]}
`

// checkRestartAll follows the pod through the kubelet's Pods API and the
// runtime and compares podlife's reading with the kubelet's at every change:
// never Terminated (the kubelet's phase stays Running, Pending while the init
// container runs again, under restartPolicy Never); Starting while the
// kubelet restarts every container, Initializing while it re-runs the init
// container; and, from the second restart on, Failing: a loop.
func checkRestartAll(t *testing.T, k *testenv.Kubelet, rt *cri.Source) {
	k.AddStaticPod(t, "restartall", strings.ReplaceAll(restartAllPod, "IMG", testenv.BusyboxImage))
	s := startSource(t, Config{URL: "http://127.0.0.1:1", PodsAPISocket: filepath.Join(k.Dir, "root", "pods-api", "pods-api.sock"), LinkInterval: -1})
	var seen, bad []string
	last := ""
	looped, restarted, reinit := false, false, false
	var corr lifecycle.Correlator             // as the agent's: the loop is told from the restarts it saw
	deadline := time.After(120 * time.Second) // a hang guard
	for !looped || !restarted || !reinit {
		st := s.State()
		if pod := podNamed(st.Pods, "restartall-podlife-node"); pod != nil {
			v := restartAllView(&corr, st, rt.State(), pod)
			sig := fmt.Sprintf("kubelet %s %s |", pod.Phase, condsOf(pod))
			n, removing, initRunning := int32(0), false, false
			for _, c := range pod.Containers {
				sig += fmt.Sprintf(" %s=%s/%s r%d last=%s/%d", c.Name, c.State.Kind, c.State.Reason, c.RestartCount, c.LastState.Reason, c.LastState.ExitCode)
				n = max(n, c.RestartCount)
				removing = removing || c.State.Reason == lifecycle.ReasonRestartingAllContainers
				initRunning = initRunning || (c.Kind == lifecycle.KindInit && c.State.Kind == lifecycle.StateRunning && c.RestartCount > 0)
			}
			sig += fmt.Sprintf(" || podlife %s %s %s: %s", v.Phase, v.StatusFrom, v.Stage, v.StageReason)
			if sig != last {
				last = sig
				seen = append(seen, time.Now().Format("15:04:05.000")+" "+sig)
				switch {
				case v.Stage == lifecycle.StageTerminated || v.Phase == lifecycle.PhaseFailed || v.Phase == lifecycle.PhaseSucceeded:
					bad = append(bad, "terminal: "+sig)
				case n >= 2:
					looped = looped || (v.Stage == lifecycle.StageFailing && strings.Contains(v.StageReason, "restarting all containers in a loop"))
				case removing || condIs(pod, lifecycle.CondAllContainersRestarting, "True"):
					restarted = true
					if v.Stage != lifecycle.StageStarting || !strings.Contains(v.StageReason, "restarting all containers in place") {
						bad = append(bad, "not Starting while restarting: "+sig)
					}
				case initRunning && v.StatusFrom == lifecycle.FromKubelet:
					reinit = true
					if v.Stage != lifecycle.StageInitializing {
						bad = append(bad, "not Initializing while the init container runs again: "+sig)
					}
				}
			}
		}
		select {
		case <-s.Updates():
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("looped %v, restarted %v, init again %v; seen:\n%s", looped, restarted, reinit, strings.Join(seen, "\n"))
		}
	}
	t.Logf("seen:\n%s", strings.Join(seen, "\n"))
	if len(bad) > 0 {
		t.Fatalf("podlife against the kubelet:\n%s", strings.Join(bad, "\n"))
	}
}

// restartAllView correlates, as the agent does, every pod the kubelet
// lists with the whole runtime, and returns the view of pod, found by UID.
// Not the snapshot's first view: that is sorted by namespace and name, and
// a neighbour's running container (oom's hog between its restart and its
// OOM kill) would be an orphan there, sorted before restartall, if only pod
// were given (the CI flake of ci7: "the kubelet does not know this pod").
func restartAllView(corr *lifecycle.Correlator, st State, rs cri.State, pod *lifecycle.Pod) *lifecycle.PodView {
	snap := corr.Correlate(lifecycle.Input{Node: "podlife-node", Now: time.Now(), Pods: st.Pods,
		Kubelet: st.Health, Sandboxes: rs.Sandboxes, Containers: rs.Containers, Runtime: rs.Health})
	for i := range snap.Pods {
		if snap.Pods[i].UID == pod.UID {
			return snap.Pods[i]
		}
	}
	return &lifecycle.PodView{UID: pod.UID, StageReason: "no view of this pod"}
}

func podNamed(pods []*lifecycle.Pod, name string) *lifecycle.Pod {
	for _, p := range pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func condIs(p *lifecycle.Pod, typ, status string) bool {
	for _, c := range p.Conditions {
		if c.Type == typ {
			return c.Status == status
		}
	}
	return false
}

func condsOf(p *lifecycle.Pod) string {
	var b []string
	for _, c := range p.Conditions {
		b = append(b, c.Type+"="+c.Status)
		if c.Type == lifecycle.CondAllContainersRestarting {
			b[len(b)-1] += "@" + c.LastTransitionTime.Format("15:04:05")
		}
	}
	return strings.Join(b, ",")
}

// TestRestartAllViewIsThePods replays, without real components, the moment of
// CI run ci7 (18:04:41.795): restartall's main container running as the
// kubelet says, and the neighbour oom's hog (attempt 3) running in the runtime
// between its restart and its OOM kill. The view restartAllView returns is
// restartall's own, from the kubelet, not oom's, which sorts first.
func TestRestartAllViewIsThePods(t *testing.T) {
	now := time.Now()
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: now}
	running := func(name, id string, n int32) lifecycle.ContainerStatus {
		return lifecycle.ContainerStatus{Name: name, Kind: lifecycle.KindRegular, RestartCount: n, ContainerID: "containerd://" + id,
			State: lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: now.Add(-time.Second)}}
	}
	pods := []*lifecycle.Pod{
		{UID: "uid-restartall", Namespace: "real", Name: "restartall-podlife-node", Phase: lifecycle.PhaseRunning,
			StatusFrom: lifecycle.FromKubelet, RestartPolicy: "Never", Containers: []lifecycle.ContainerStatus{running("main", "m0", 0)}},
		{UID: "uid-oom", Namespace: "real", Name: "oom-podlife-node", Phase: lifecycle.PhaseRunning,
			StatusFrom: lifecycle.FromKubelet, RestartPolicy: "Always", Containers: []lifecycle.ContainerStatus{running("hog", "h3", 3)}},
	}
	var rs cri.State
	rs.Health = up
	for _, p := range pods {
		c := p.Containers[0]
		rs.Sandboxes = append(rs.Sandboxes, lifecycle.Sandbox{ID: "sb-" + p.UID, PodUID: p.UID, PodName: p.Name, PodNamespace: p.Namespace,
			State: lifecycle.SandboxReady, CreatedAt: now.Add(-time.Minute)})
		rs.Containers = append(rs.Containers, &lifecycle.Container{ID: lifecycle.StripRuntimeScheme(c.ContainerID), SandboxID: "sb-" + p.UID, PodUID: p.UID,
			PodName: p.Name, PodNamespace: p.Namespace, Name: c.Name, Attempt: uint32(c.RestartCount),
			State: lifecycle.RuntimeRunning, CreatedAt: now.Add(-2 * time.Second), StartedAt: c.State.StartedAt})
	}
	var corr lifecycle.Correlator
	v := restartAllView(&corr, State{Pods: pods, Health: up}, rs, pods[0])
	if v.UID != "uid-restartall" || !v.InKubelet || v.StatusFrom != lifecycle.FromKubelet || v.Stage == lifecycle.StageUnknown {
		t.Fatalf("restartall's view: %s %s in kubelet %v from %q: %s %s", v.UID, v.Name, v.InKubelet, v.StatusFrom, v.Stage, v.StageReason)
	}
}
