package lifecycle

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// picker draws choices from fuzz bytes; it returns zeros once they run out.
type picker struct{ b []byte }

func (p *picker) n(max int) int {
	if len(p.b) == 0 || max <= 0 {
		return 0
	}
	v := int(p.b[0]) % max
	p.b = p.b[1:]
	return v
}

func pick[T any](p *picker, xs ...T) T { return xs[p.n(len(xs))] }

// fuzzInput builds an arbitrary node from bytes: phases, states and reasons
// from the real vocabulary plus garbage, IDs that collide on purpose, sources
// in any health.
func fuzzInput(data []byte) Input {
	p := &picker{b: data}
	health := func() SourceHealth {
		return pick(p, upH(), downH("x"), SourceHealth{}, SourceHealth{Configured: true},
			SourceHealth{Configured: true, Up: true, LastSuccess: t0.Add(-time.Hour)})
	}
	in := Input{Node: "n", Now: t0, Kubelet: health(), Runtime: health(), APIServer: health()}
	reasons := []string{"", ReasonCrashLoopBackOff, ReasonErrImagePull, ReasonContainerCreating, ReasonPodInitializing,
		ReasonOOMKilled, ReasonCompleted, ReasonError, "Weird", ReasonEvicted}
	state := func() ContainerState {
		return ContainerState{Kind: pick(p, StateNone, StateWaiting, StateRunning, StateTerminated, StateUnknown, "Bogus"),
			Reason: pick(p, reasons...), ExitCode: int32(p.n(4)) - 1, FinishedAt: t0.Add(-time.Duration(p.n(100)) * time.Second)}
	}
	for i, np := 0, p.n(5); i < np; i++ {
		uid := fmt.Sprintf("u%d", p.n(4)) // duplicates on purpose
		pod := Pod{UID: uid, Namespace: "ns", Name: fmt.Sprintf("p%d", p.n(4)),
			Phase:  pick(p, PhasePending, PhaseRunning, PhaseSucceeded, PhaseFailed, PhaseUnknown, "", "Odd"),
			Reason: pick(p, "", ReasonEvicted, ReasonDeadlineExceeded)}
		if p.n(4) == 0 {
			pod.Deleting = t0
		}
		for j, nc := 0, p.n(4); j < nc; j++ {
			pod.Conditions = append(pod.Conditions, Condition{Type: pick(p, CondReady, CondContainersReady, CondInitialized),
				Status: pick(p, "True", "False", "Unknown")})
		}
		for j, nc := 0, p.n(5); j < nc; j++ {
			name := fmt.Sprintf("c%d", p.n(3))
			pod.Containers = append(pod.Containers, ContainerStatus{Name: name,
				Kind:  pick(p, KindInit, KindSidecar, KindRegular, KindEphemeral),
				State: state(), LastState: state(), Ready: p.n(2) == 0, RestartCount: int32(p.n(3)),
				ContainerID: pick(p, "", "containerd://"+uid+name, "cri-o://x", "garbage")})
		}
		in.Pods = append(in.Pods, &pod)
		if p.n(2) == 0 {
			in.APIPods = append(in.APIPods, APIPod{UID: uid, Phase: pick(p, PhaseRunning, PhaseFailed, PhaseUnknown),
				Ready: pick(p, "True", "False", "Unknown", "")})
		}
	}
	if p.n(2) == 0 {
		in.APINode = &APINode{Ready: pick(p, "True", "False", "Unknown")}
	}
	for i, n := 0, p.n(8); i < n; i++ {
		uid := fmt.Sprintf("u%d", p.n(6))
		name := fmt.Sprintf("c%d", p.n(3))
		in.Containers = append(in.Containers, &Container{ID: pick(p, uid+name, "x", fmt.Sprint(i)), PodUID: uid,
			PodName: "p", PodNamespace: "ns", Name: name, Attempt: uint32(p.n(3)),
			State:    pick(p, RuntimeCreated, RuntimeRunning, RuntimeExited, RuntimeUnknown, "?"),
			ExitCode: int32(p.n(3)), Reason: pick(p, reasons...)})
		if p.n(2) == 0 {
			in.Sandboxes = append(in.Sandboxes, Sandbox{ID: "s" + uid, PodUID: uid, Attempt: uint32(p.n(2)),
				State: pick(p, SandboxReady, SandboxNotReady)})
		}
	}
	return in
}

// FuzzCorrelate checks the invariants: classification never panics, every
// pod gets exactly one valid stage with a reason, Unknown always has a cause,
// and identical snapshots have no transitions.
func FuzzCorrelate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 3, 1, 1, 2, 0, 1, 1, 3, 1, 2, 0, 4, 2, 3, 1, 1, 0, 2, 1, 1})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice: the quick brown fox"))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzInput(data)
		s := Correlate(in)
		for _, v := range s.Pods {
			if !slices.Contains(Stages, v.Stage) {
				t.Fatalf("pod %s has stage %q", v.Key(), v.Stage)
			}
			if !strings.HasPrefix(v.StageReason, string(v.Stage)+":") && !strings.HasPrefix(v.StageReason, "Terminating:") {
				t.Fatalf("pod %s: reason %q does not explain stage %s", v.Key(), v.StageReason, v.Stage)
			}
			if v.Stage == StageUnknown && v.UnknownCause == CauseNone {
				t.Fatalf("pod %s Unknown without a cause: %s", v.Key(), v.StageReason)
			}
			if v.UnknownCause != CauseNone && !slices.Contains(Causes, v.UnknownCause) {
				t.Fatalf("pod %s: cause %q not in Causes", v.Key(), v.UnknownCause)
			}
		}
		again := Correlate(in)
		if tr := Diff(&s, &again); len(tr) != 0 {
			t.Fatalf("identical snapshots gave %d transitions, first %+v", len(tr), tr[0])
		}
		Diff(nil, &s)
		Diff(&s, &Snapshot{})
	})
}
