package lifecycle

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// brief renders a transition compactly for comparison.
func brief(t Transition) string {
	s := fmt.Sprintf("%s %s", t.Kind, t.Pod)
	if t.Container != "" {
		s += "/" + t.Container
	}
	if t.Source != "" {
		s += " [" + t.Source + "]"
	}
	s += fmt.Sprintf(" %s->%s", t.From, t.To)
	if t.ExitCode != nil {
		s += fmt.Sprintf(" exit=%d", *t.ExitCode)
	}
	if t.Reason != "" && t.Kind != TransitionStageChanged && t.Kind != TransitionPodAdded {
		s += " " + t.Reason
	}
	return s
}

func TestDiff(t *testing.T) {
	later := func(in Input) Input { in.Now = t0.Add(time.Second); return in }
	tests := []struct {
		name string
		prev Input
		cur  Input
		want []string
	}{
		{"identical snapshots", input(serving("p")), later(input(serving("p"))), nil},
		{"pod added", input(), later(input(serving("p"))), []string{"PodAdded p ->Serving"}},
		{"pod removed", input(serving("p")), later(input()), []string{"PodRemoved p Serving->"}},
		{"one pod replaced by another, as many pods", input(serving("p")), later(input(serving("q"))),
			[]string{"PodAdded q ->Serving", "PodRemoved p Serving->"}},
		{"container crashes and restarts",
			input(serving("p")),
			later(input(pod("p", PhaseRunning, conds("True", "True", "False", "False"),
				restarts(1, 137, ReasonOOMKilled, cWaiting("app", ReasonCrashLoopBackOff))))),
			[]string{
				"ContainerRestarted p/app [kubelet] 0->1 exit=137 OOMKilled",
				"ContainerStateChanged p/app [kubelet] Running->Waiting/CrashLoopBackOff CrashLoopBackOff",
				"ContainerStateChanged p/app [runtime] RUNNING->EXITED exit=137 OOMKilled",
				"StageChanged p Serving->Failing",
			}},
		{"runtime sees the exit before the kubelet",
			input(serving("p")),
			func() Input {
				in := later(input(serving("p")))
				c := in.Containers[0]
				c.State, c.ExitCode, c.Reason, c.FinishedAt = RuntimeExited, 2, ReasonError, t0.Add(500*time.Millisecond)
				return in
			}(),
			// The container's state is derived from the runtime at once; the
			// kubelet's lagging copy is no mismatch within the grace.
			[]string{
				"ContainerStateChanged p/app [runtime] Running->Terminated/Error exit=2 Error",
				"ContainerStateChanged p/app [runtime] RUNNING->EXITED exit=2 Error",
				"StageChanged p Serving->Failing",
			}},
		// A restarted kubelet reports a crash-looping container's last exit as
		// its current state again before backing off once more: no new exit.
		{"the kubelet re-reports the last exit after its restart",
			input(pod("p", PhaseRunning, conds("True", "True", "False", "False"),
				restarts(1, 3, ReasonError, cWaiting("app", ReasonCrashLoopBackOff)))),
			func() Input {
				c := cTerminated("app", 3, ReasonError)
				c.RestartCount, c.State.StartedAt, c.State.FinishedAt = 1, t0.Add(-2*time.Minute), t0.Add(-time.Minute)
				return later(input(pod("p", PhaseRunning, conds("True", "True", "False", "False"), c)))
			}(),
			nil},
		{"mismatch clears",
			func() Input { in := input(serving("p")); in.Sandboxes[0].State = SandboxNotReady; return in }(),
			later(input(serving("p"))),
			[]string{"MismatchCleared p sandbox-not-ready->"}},
		{"kubelet goes down",
			input(serving("p")),
			func() Input { in := later(input(serving("p"))); in.Kubelet = downH("refused"); return in }(),
			[]string{"SourceDown  [kubelet] up->down", "StageChanged p Serving->Unknown"}},
		{"runtime comes back",
			func() Input { in := input(serving("p")); in.Runtime = downH("refused"); return in }(),
			later(input(serving("p"))),
			[]string{"SourceUp  [runtime] down->up", "StageChanged p Unknown->Serving"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Correlate(tc.prev), Correlate(tc.cur)
			got := Diff(&a, &b)
			var gs []string
			for _, tr := range got {
				gs = append(gs, brief(tr))
				if !tr.ObservedAt.Equal(t0.Add(time.Second)) {
					t.Errorf("%s observed at %v", brief(tr), tr.ObservedAt)
				}
			}
			if strings.Join(gs, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("transitions:\n%s\nwant:\n%s", strings.Join(gs, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDiffTimes(t *testing.T) {
	a := Correlate(input(serving("p")))
	in := input(pod("p", PhaseRunning, conds("True", "True", "False", "False"),
		restarts(1, 137, ReasonOOMKilled, cWaiting("app", ReasonCrashLoopBackOff))))
	in.Now = t0.Add(time.Minute)
	in.Kubelet.LastSuccess, in.Runtime.LastSuccess = in.Now, in.Now
	b := Correlate(in)
	for _, tr := range Diff(&a, &b) {
		switch {
		case tr.Kind == TransitionContainerRestarted || tr.Kind == TransitionStageChanged || tr.Source == SourceRuntime:
			if !tr.HappenedAt.Equal(t0.Add(-time.Minute)) { // the last termination's finishedAt
				t.Errorf("%s happened at %v, want the container's finish time", brief(tr), tr.HappenedAt)
			}
		}
		if tr.Kind == TransitionContainerRestarted && tr.Detail != "restart 1, last exit 137 OOMKilled" {
			t.Errorf("detail %q", tr.Detail)
		}
	}
	added := Diff(nil, &a)
	if len(added) != 1 || !added[0].HappenedAt.Equal(t0.Add(-time.Hour)) {
		t.Fatalf("pod added %+v, want happenedAt = creation", added)
	}
	if Diff(&a, nil) != nil {
		t.Fatal("Diff to nil should be empty")
	}
}
