package lifecycle

import (
	"fmt"
	"time"
)

// Builders for test inputs. Every pod "name" has UID "uid-name"; every
// container "c" of it has CRI ID "name-c-<attempt>".

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func upH() SourceHealth { return SourceHealth{Configured: true, Up: true, LastSuccess: t0} }

func downH(err string) SourceHealth {
	return SourceHealth{Configured: true, Up: false, LastSuccess: t0.Add(-time.Minute), LastError: err}
}

func conds(sched, init, cready, ready string) []Condition {
	mk := func(t, s string) Condition {
		c := Condition{Type: t, Status: s, LastTransitionTime: t0.Add(-time.Minute)}
		if s == "False" {
			c.Reason = "ContainersNotReady"
		}
		return c
	}
	return []Condition{mk(CondPodScheduled, sched), mk(CondInitialized, init), mk(CondContainersReady, cready), mk(CondReady, ready)}
}

type podB struct{ Pod }

func pod(name string, phase Phase, c []Condition, cs ...ContainerStatus) *podB {
	p := &podB{Pod{UID: "uid-" + name, Namespace: "default", Name: name, Phase: phase, Conditions: c,
		RestartPolicy: "Always", Created: t0.Add(-time.Hour)}}
	for _, s := range cs {
		if s.ContainerID == "containerd://auto" {
			s.ContainerID = fmt.Sprintf("containerd://%s-%s-%d", name, s.Name, s.RestartCount)
		}
		p.Containers = append(p.Containers, s)
	}
	return p
}

func cRunning(name string, ready bool) ContainerStatus {
	return ContainerStatus{Name: name, Kind: KindRegular, Ready: ready, ContainerID: "containerd://auto",
		State: ContainerState{Kind: StateRunning, StartedAt: t0.Add(-30 * time.Minute)}}
}

func cWaiting(name, reason string) ContainerStatus {
	return ContainerStatus{Name: name, Kind: KindRegular, Image: "127.0.0.1:1/none/ghost:1",
		State: ContainerState{Kind: StateWaiting, Reason: reason, Message: "back-off"}}
}

func cTerminated(name string, code int32, reason string) ContainerStatus {
	return ContainerStatus{Name: name, Kind: KindRegular, ContainerID: "containerd://auto",
		State: ContainerState{Kind: StateTerminated, ExitCode: code, Reason: reason,
			StartedAt: t0.Add(-20 * time.Minute), FinishedAt: t0.Add(-10 * time.Second)}}
}

func kind(k ContainerKind, s ContainerStatus) ContainerStatus { s.Kind = k; return s }

func restarts(n int32, lastCode int32, lastReason string, s ContainerStatus) ContainerStatus {
	s.RestartCount = n
	s.LastState = ContainerState{Kind: StateTerminated, ExitCode: lastCode, Reason: lastReason,
		StartedAt: t0.Add(-2 * time.Minute), FinishedAt: t0.Add(-time.Minute)}
	if s.ContainerID == "" {
		s.ContainerID = "containerd://auto"
	}
	return s
}

// runtimeFor returns the runtime view that agrees with the kubelet's pod: a
// ready sandbox and, for every container with an ID, a runtime container in
// the matching state.
func runtimeFor(pods ...*podB) ([]Sandbox, []*Container) {
	var sbs []Sandbox
	var cs []*Container
	for _, p := range pods {
		sbs = append(sbs, Sandbox{ID: "sb-" + p.Name, PodUID: p.UID, PodName: p.Name, PodNamespace: p.Namespace,
			State: SandboxReady, CreatedAt: p.Created})
		for _, s := range p.Containers {
			if s.ContainerID == "" {
				continue
			}
			c := Container{ID: StripRuntimeScheme(s.ContainerID), SandboxID: "sb-" + p.Name, PodUID: p.UID,
				PodName: p.Name, PodNamespace: p.Namespace, Name: s.Name, Attempt: uint32(s.RestartCount),
				CreatedAt: s.State.StartedAt.Add(-time.Second), StartedAt: s.State.StartedAt}
			switch s.State.Kind {
			case StateRunning:
				c.State = RuntimeRunning
			case StateTerminated:
				c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, s.State.ExitCode, s.State.Reason, s.State.FinishedAt
			case StateWaiting: // crash loop: the last attempt exited
				c.State, c.ExitCode, c.Reason = RuntimeExited, s.LastState.ExitCode, s.LastState.Reason
				c.StartedAt, c.FinishedAt = s.LastState.StartedAt, s.LastState.FinishedAt
			default:
				c.State = RuntimeUnknown
			}
			cs = append(cs, &c)
		}
	}
	return sbs, cs
}

// input is a node where both sources are fresh and agree.
func input(pods ...*podB) Input {
	sbs, cs := runtimeFor(pods...)
	in := Input{Node: "node-a", Now: t0, Kubelet: upH(), Runtime: upH(), Sandboxes: sbs, Containers: cs}
	for _, p := range pods {
		pod := p.Pod
		in.Pods = append(in.Pods, &pod)
	}
	return in
}

func onlyPod(s Snapshot) PodView {
	if len(s.Pods) != 1 {
		panic(fmt.Sprintf("want 1 pod, got %d", len(s.Pods)))
	}
	return *s.Pods[0]
}

func started(v bool, s ContainerStatus) ContainerStatus { s.Started = &v; return s }

// ptrs is the records of cs, as an Input holds them.
func ptrs(cs ...Container) []*Container {
	out := make([]*Container, len(cs))
	for i := range cs {
		out[i] = &cs[i]
	}
	return out
}
