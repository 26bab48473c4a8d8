package lifecycle

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchNode is a node of n pods × 4 containers (1 init, 1 sidecar, 2 regular),
// both views agreeing, a tenth of the pods crash-looping.
func benchNode(n int) Input {
	pods := make([]*podB, 0, n)
	for i := 0; i < n; i++ {
		p := pod(fmt.Sprintf("pod-%04d", i), PhaseRunning, conds("True", "True", "True", "True"),
			kind(KindInit, cTerminated("init", 0, ReasonCompleted)),
			kind(KindSidecar, cRunning("proxy", true)),
			cRunning("app", true), cRunning("worker", true))
		if i%10 == 0 {
			p.Containers[3] = restarts(5, 137, ReasonOOMKilled, cWaiting("worker", ReasonCrashLoopBackOff))
			p.Containers[3].ContainerID = fmt.Sprintf("containerd://%s-worker-5", p.Name)
			p.Conditions = conds("True", "True", "False", "False")
		}
		pods = append(pods, p)
	}
	return input(pods...)
}

// BenchmarkCorrelate is one correlation of a 250-pod × 4-container node.
func BenchmarkCorrelate(b *testing.B) {
	in := benchNode(250)
	b.ReportAllocs()
	for b.Loop() {
		Correlate(in)
	}
}

// BenchmarkDiff diffs two 250-pod snapshots where 10 containers changed.
func BenchmarkDiff(b *testing.B) {
	in := benchNode(250)
	prev := Correlate(in)
	for i := 0; i < 10; i++ {
		c := in.Containers[i*40+5]
		c.State, c.ExitCode, c.FinishedAt = RuntimeExited, 1, t0
	}
	in.Now = t0.Add(time.Second)
	cur := Correlate(in)
	if len(Diff(&prev, &cur)) == 0 {
		b.Fatal("no transitions")
	}
	b.ReportAllocs()
	for b.Loop() {
		Diff(&prev, &cur)
	}
}

// BenchmarkCorrelatorOneChange is the agent's steady case: a Correlator
// correlates a 250-pod node again after one container changed state.
func BenchmarkCorrelatorOneChange(b *testing.B) {
	in := benchNode(250)
	var c Correlator
	c.Correlate(in)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ct := in.Containers[(i*37)%len(in.Containers)]
		if ct.State == RuntimeRunning {
			ct.State, ct.ExitCode, ct.FinishedAt = RuntimeExited, 1, t0
		} else {
			ct.State, ct.ExitCode, ct.FinishedAt = RuntimeRunning, 0, time.Time{}
		}
		in.Now = t0.Add(time.Duration(i) * time.Millisecond)
		c.Correlate(in)
		i++
	}
}

// BenchmarkCorrelatorOneEvent is the agent's streamed case: a runtime
// answer that replaced one container's record (cri.State: a change is a new
// record, a new RuntimeGeneration, its pod named in RuntimeChanges), the
// kubelet's answer the same, then the Diff against the previous snapshot.
func BenchmarkCorrelatorOneEvent(b *testing.B) { benchOneEvent(b, true) }

// BenchmarkCorrelatorOneEventUntold is the same event from a source that
// does not say which pod it changed: every pod is looked at.
func BenchmarkCorrelatorOneEventUntold(b *testing.B) { benchOneEvent(b, false) }

func benchOneEvent(b *testing.B, told bool) {
	in := benchNode(250)
	in.PodsGeneration, in.RuntimeGeneration = 1, 1
	if told {
		in.PodsChanges.Lose(1)
		in.RuntimeChanges.Lose(1)
	}
	slices.SortFunc(in.Containers, func(a, b *Container) int { // cri.State's order
		return cmp.Or(cmp.Compare(a.PodUID, b.PodUID), byNameAttempt(a, b))
	})
	var c Correlator
	prev := c.Correlate(in)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := (i * 37) % len(in.Containers)
		ct := *in.Containers[k]
		if ct.State == RuntimeRunning {
			ct.State, ct.ExitCode, ct.FinishedAt = RuntimeExited, 1, t0
		} else {
			ct.State, ct.ExitCode, ct.FinishedAt = RuntimeRunning, 0, time.Time{}
		}
		in.Containers = slices.Clone(in.Containers)
		in.Containers[k] = &ct
		in.RuntimeGeneration++
		if told {
			in.RuntimeChanges.Note(in.RuntimeGeneration, ct.PodUID)
		}
		in.Runtime.LastSuccess = in.Now // the sources answer as the clock moves on
		in.Kubelet.LastSuccess = in.Now
		in.Now = t0.Add(time.Duration(i) * time.Millisecond)
		cur := c.Correlate(in)
		Diff(&prev, &cur)
		prev = cur
		i++
	}
}

// BenchmarkStageClockOneChange is the stage clock after a correlation that
// changed one pod of 250 (the one-change path hands the others on): one pod
// restarting (Starting) after another served again.
func BenchmarkStageClockOneChange(b *testing.B) {
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	pods := make([]*PodView, 250)
	for i := range pods {
		pods[i] = &PodView{Namespace: "ns", Name: fmt.Sprint("p", i), UID: fmt.Sprint("uid-", i), Stage: StageServing}
	}
	var c StageClock
	c.Stuck(&Snapshot{At: t0, Pods: pods}, 5*time.Minute)
	set := func(pods []*PodView, i int, stage Stage) {
		v := *pods[i]
		v.Stage = stage
		pods[i] = &v
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		next := slices.Clone(pods)
		if i%2 == 0 {
			set(next, i/2%len(next), StageStarting)
		} else {
			set(next, i/2%len(next), StageServing)
		}
		c.Stuck(&Snapshot{At: t0.Add(time.Duration(i) * time.Millisecond), Pods: next}, 5*time.Minute)
		pods = next
	}
}
