package lifecycle

import (
	"fmt"
	"time"
)

// Diff returns the transitions from prev to cur. Source health changes come
// first, then pods in cur's order (namespace, name, UID) — for each pod: added,
// container changes in container order, restarts, stage, mismatches — then
// pods that disappeared. A nil prev is an empty node. Identical snapshots
// (whatever their times) give no transitions.
func Diff(prev, cur *Snapshot) []Transition {
	if cur == nil {
		return nil
	}
	if prev == nil {
		prev = &Snapshot{}
	}
	d := differ{at: cur.At}
	for _, name := range SourceNames {
		d.source(name, prev.Sources[name], cur.Sources[name])
	}
	if samePods(prev.Pods, cur.Pods) {
		for i, p := range cur.Pods {
			if o := prev.Pods[i]; o != p { // the same view has no news
				d.pod(o, p)
			}
		}
		return d.out
	}
	old := make(map[string]*PodView, len(prev.Pods))
	for _, p := range prev.Pods {
		old[p.UID] = p
	}
	for _, p := range cur.Pods {
		if o := old[p.UID]; o != p {
			d.pod(o, p)
		}
		delete(old, p.UID)
	}
	for _, o := range prev.Pods { // keep prev's order for removals
		if p, ok := old[o.UID]; ok {
			d.add(Transition{Kind: TransitionPodRemoved, Namespace: p.Namespace, Pod: p.Name, UID: p.UID,
				From: string(p.Stage), Detail: "no longer reported by the kubelet or the runtime"})
		}
	}
	return d.out
}

// samePods reports whether a and b list the same pods in the same order.
func samePods(a, b []*PodView) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && a[i].UID != b[i].UID {
			return false
		}
	}
	return true
}

type differ struct {
	at  time.Time
	out []Transition
}

func (d *differ) add(t Transition) {
	t.ObservedAt = d.at
	d.out = append(d.out, t)
}

func (d *differ) source(name string, a, b SourceHealth) {
	switch {
	case !b.Configured:
		return
	case !a.Configured && b.Up:
		return // a source answering for the first time is not news
	case a.Configured && a.Up == b.Up:
		return
	}
	t := Transition{Kind: TransitionSourceUp, Source: name, From: "down", To: "up"}
	if !b.Up {
		t = Transition{Kind: TransitionSourceDown, Source: name, From: "up", To: "down", Detail: b.LastError}
	}
	if b.Up {
		t.HappenedAt = b.LastSuccess
	}
	d.add(t)
}

func (d *differ) pod(a, b *PodView) {
	base := Transition{Namespace: b.Namespace, Pod: b.Name, UID: b.UID}
	with := func(t Transition) Transition {
		t.Namespace, t.Pod, t.UID = base.Namespace, base.Pod, base.UID
		return t
	}
	if a == nil {
		// A new pod is one transition; its containers' states are in its view.
		d.add(with(Transition{Kind: TransitionPodAdded, To: string(b.Stage), Reason: b.StageReason, HappenedAt: b.Created}))
		for _, m := range b.Mismatches {
			d.add(with(Transition{Kind: TransitionMismatchAppeared, Container: m.Container, To: string(m.Kind), Detail: m.Detail}))
		}
		return
	}
	if a.Stage == b.Stage && sameArray(a.Containers, b.Containers) && sameArray(a.Mismatches, b.Mismatches) {
		return // the same view (a Correlator reused it): nothing changed
	}
	for i := range b.Containers {
		c := &b.Containers[i]
		var prev *ContainerView
		for j := range a.Containers {
			if a.Containers[j].Name == c.Name {
				prev = &a.Containers[j]
				break
			}
		}
		for _, t := range containerChanges(prev, c) {
			t.Container = c.Name
			d.add(with(t))
		}
	}
	if a.UID != "" && a.Stage != b.Stage {
		d.add(with(Transition{Kind: TransitionStageChanged, From: string(a.Stage), To: string(b.Stage),
			Reason: b.StageReason, HappenedAt: stageTime(b)}))
	}
	for _, m := range b.Mismatches {
		if !hasMismatch(a.Mismatches, m) {
			d.add(with(Transition{Kind: TransitionMismatchAppeared, Container: m.Container, To: string(m.Kind), Detail: m.Detail}))
		}
	}
	for _, m := range a.Mismatches {
		if !hasMismatch(b.Mismatches, m) {
			d.add(with(Transition{Kind: TransitionMismatchCleared, Container: m.Container, From: string(m.Kind), Detail: m.Detail}))
		}
	}
}

// sameArray reports whether two slices are the same elements of the same array.
func sameArray[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// hasMismatch reports whether ms has a mismatch of m's kind and container.
func hasMismatch(ms []Mismatch, m Mismatch) bool {
	for _, x := range ms {
		if x.Kind == m.Kind && x.Container == m.Container {
			return true
		}
	}
	return false
}

// containerChanges compares two views of one container. Each view (kubelet,
// runtime) changes independently: the runtime usually moves first.
func containerChanges(a, b *ContainerView) []Transition {
	var out []Transition
	if a == nil {
		a = &ContainerView{}
	}
	// A listed container's own state is the kubelet's, or derived from the
	// runtime when the runtime is ahead: the transition names which.
	src := SourceKubelet
	if b.From == FromRuntime {
		src = SourceRuntime
	}
	if b.Source == SourceKubelet && a.Source == SourceKubelet && b.RestartCount > a.RestartCount {
		t := Transition{Kind: TransitionContainerRestarted, Source: src,
			From: fmt.Sprint(a.RestartCount), To: fmt.Sprint(b.RestartCount)}
		if ls := b.LastState; ls != nil && ls.Kind == StateTerminated {
			ec := ls.ExitCode
			t.ExitCode, t.Reason, t.HappenedAt = &ec, ls.Reason, ls.FinishedAt
			t.Detail = fmt.Sprintf("restart %d, last exit %d %s", b.RestartCount, ls.ExitCode, orUnknown(ls.Reason))
		}
		out = append(out, t)
	}
	if stateLabel(a) != stateLabel(b) && b.Source == SourceKubelet && !reReported(a, b) {
		t := Transition{Kind: TransitionContainerState, Source: src,
			From: stateLabel(a), To: stateLabel(b), Reason: b.Reason, ExitCode: b.ExitCode}
		switch b.State {
		case StateRunning:
			t.HappenedAt = b.StartedAt
		case StateTerminated:
			t.HappenedAt = b.FinishedAt
		}
		out = append(out, t)
	}
	if b.Runtime != nil && runtimeKey(a.Runtime) != runtimeKey(b.Runtime) {
		r := b.Runtime
		t := Transition{Kind: TransitionContainerState, Source: SourceRuntime, To: string(r.State), Reason: r.Reason}
		if a.Runtime != nil {
			t.From = string(a.Runtime.State)
		}
		switch r.State {
		case RuntimeRunning:
			t.HappenedAt = r.StartedAt
		case RuntimeExited:
			ec := r.ExitCode
			t.ExitCode, t.HappenedAt = &ec, r.FinishedAt
		case RuntimeCreated:
			t.HappenedAt = r.CreatedAt
		}
		t.Detail = fmt.Sprintf("container %s attempt %d", shortID(r.ID), r.Attempt)
		out = append(out, t)
	}
	return out
}

// reReported reports whether b's state is an exit that a already showed as
// the container's last one: a restarted kubelet rebuilds a crash-looping
// container's status from the runtime and reports its last exit as the
// current state again (Waiting/CrashLoopBackOff -> Terminated at the same
// finishedAt) before it backs off once more. That exit happened once.
func reReported(a, b *ContainerView) bool {
	return b.State == StateTerminated && !b.FinishedAt.IsZero() && a.LastState != nil &&
		a.LastState.Kind == StateTerminated && a.LastState.FinishedAt.Equal(b.FinishedAt)
}

// stateLabel is "Waiting/CrashLoopBackOff", "Running", "Terminated/OOMKilled".
func stateLabel(c *ContainerView) string {
	if c.Source != SourceKubelet {
		return ""
	}
	if c.Reason == "" || c.State == StateRunning {
		return string(c.State)
	}
	return string(c.State) + "/" + c.Reason
}

// runtimeKey identifies a runtime record's state: another container (a new
// attempt) in the same state is a change too.
type rtKey struct {
	id    string
	state RuntimeState
}

func runtimeKey(c *Container) rtKey {
	if c == nil {
		return rtKey{}
	}
	return rtKey{c.ID, c.State}
}

// stageTime is when the sources say the pod entered its stage, where they say.
func stageTime(p *PodView) time.Time {
	cond := func(t string) time.Time {
		for _, c := range p.Conditions {
			if c.Type == t {
				return c.LastTransitionTime
			}
		}
		return time.Time{}
	}
	switch p.Stage {
	case StageServing, StageStarting:
		return cond(CondReady)
	case StageTerminated, StageFailing:
		var last time.Time
		for _, c := range p.Containers {
			if c.FinishedAt.After(last) {
				last = c.FinishedAt
			}
			if c.LastState != nil && c.LastState.FinishedAt.After(last) {
				last = c.LastState.FinishedAt
			}
		}
		return last
	}
	return time.Time{}
}
