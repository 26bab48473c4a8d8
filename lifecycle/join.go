package lifecycle

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// runtimeIndex indexes the runtime's listing for the join.
type runtimeIndex struct {
	byPod     map[string][]*Container // pod UID -> containers, sorted by name then attempt
	sandboxes map[string]*Sandbox     // pod UID -> latest sandbox
	// sbFirst and sbLen name the Sandboxes slice sandboxes indexes.
	sbFirst *Sandbox
	sbLen   int
}

// indexRuntime indexes a runtime listing. A pod whose records are the same
// (by address) as in prev keeps prev's group: an answer that changed one
// container regroups only that container's pod, and the pods it did not
// change are known by identity. prev's sandbox index is kept while the
// Sandboxes slice is the same. The groups are never written to once made.
// The index is built in spare (emptied first) when it is not nil: a map
// nothing else holds, an index before prev.
func indexRuntime(prev runtimeIndex, spare map[string][]*Container, sandboxes []Sandbox, containers []*Container) runtimeIndex {
	if spare == nil {
		spare = make(map[string][]*Container, len(prev.byPod))
	}
	clear(spare)
	ix := runtimeIndex{byPod: spare}
	// Group the containers by pod, each group sorted by name, attempt and
	// creation. A runtime source that lists them in that order (cri.State
	// does) costs a scan; any other order, a sort.
	for start := 0; start < len(containers); {
		end := start + 1
		for end < len(containers) && containers[end].PodUID == containers[start].PodUID {
			end++
		}
		if end < len(containers) && containers[end].PodUID < containers[start].PodUID {
			// Not grouped by pod: group a sorted copy.
			containers = slices.Clone(containers)
			slices.SortStableFunc(containers, func(a, b *Container) int { return cmp.Compare(a.PodUID, b.PodUID) })
			clear(ix.byPod)
			start = 0
			continue
		}
		uid := containers[start].PodUID
		ix.byPod[uid] = ownGroup(containers[start:end:end], prev.byPod[uid])
		start = end
	}
	ix.sandboxes, ix.sbFirst, ix.sbLen = prev.sandboxes, prev.sbFirst, prev.sbLen
	if ix.sandboxes == nil || len(sandboxes) != ix.sbLen || (len(sandboxes) > 0 && &sandboxes[0] != ix.sbFirst) {
		ix.sandboxes, ix.sbFirst, ix.sbLen = indexSandboxes(sandboxes), nil, len(sandboxes)
		if len(sandboxes) > 0 {
			ix.sbFirst = &sandboxes[0]
		}
	}
	return ix
}

// ownGroup is a pod's group made of cs, a piece of a caller's listing: old
// when it holds the same records, else a copy (the caller's slice is not
// the index's) sorted by name, attempt and creation.
func ownGroup(cs, old []*Container) []*Container {
	g := cs
	if !slices.IsSortedFunc(g, byNameAttempt) {
		g = slices.Clone(g)
		slices.SortFunc(g, byNameAttempt)
	}
	if slices.Equal(g, old) {
		return old
	}
	if &g[0] == &cs[0] {
		g = slices.Clone(g)
	}
	return g
}

// indexSandboxes maps each pod UID to its latest sandbox.
func indexSandboxes(sandboxes []Sandbox) map[string]*Sandbox {
	m := make(map[string]*Sandbox, len(sandboxes))
	for i := range sandboxes {
		s := &sandboxes[i]
		if old, ok := m[s.PodUID]; !ok || s.Attempt > old.Attempt ||
			(s.Attempt == old.Attempt && s.CreatedAt.After(old.CreatedAt)) {
			m[s.PodUID] = s
		}
	}
	return m
}

// byNameAttempt orders one pod's containers by name, then attempt, then
// creation.
func byNameAttempt(a, b *Container) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Attempt, b.Attempt), a.CreatedAt.Compare(b.CreatedAt))
}

// latest returns the container of cs (one pod's, sorted) with the given name
// and the highest attempt, or nil.
func latest(cs []*Container, name string) *Container {
	var best *Container
	for _, c := range cs {
		if c.Name == name {
			best = c // sorted by attempt ascending
		}
	}
	return best
}

// find joins a kubelet container status to one of its pod's runtime
// containers: by container ID first, then by name + attempt (= restart count).
func find(cs []*Container, st *ContainerStatus) *Container {
	if id := StripRuntimeScheme(st.ContainerID); id != "" {
		for _, c := range cs {
			if c.ID == id {
				return c
			}
		}
		return nil
	}
	for _, c := range cs {
		if c.Name == st.Name && c.Attempt == uint32(st.RestartCount) {
			return c
		}
	}
	return nil
}

// StripRuntimeScheme turns the kubelet's "containerd://abc" into the CRI ID "abc".
func StripRuntimeScheme(containerID string) string {
	if i := strings.Index(containerID, "://"); i >= 0 {
		return containerID[i+3:]
	}
	return containerID
}

// kubeletPod builds the view of a pod the kubelet knows from its runtime
// containers cs (sorted by name, then attempt) and sandbox: its local truth
// and stage, and the stage rules' own verdict of Unknown in UnknownCause
// (the pod's cause, and the API server's findings, are worked out on every
// call: finish). Where the runtime is ahead of the kubelet's status, the
// container's state, and then the pod's phase and readiness, are derived
// from the runtime, with the kubelet's copy kept beside them. The view may
// change with time alone (graces, crash loops): e.until then holds when.
func (e *env) kubeletPod(pod *Pod, cs []*Container, sb *Sandbox) PodView {
	from := cmp.Or(pod.StatusFrom, FromKubelet)
	v := PodView{
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		Phase: pod.Phase, Reason: pod.Reason, Terminating: !pod.Deleting.IsZero(),
		Created: pod.Created, Started: pod.Started, StatusFrom: from,
		Conditions: pod.Conditions, InKubelet: true,
		Sandbox:    sb,
		Mismatches: []Mismatch{},
	}
	if v.Conditions == nil {
		v.Conditions = []Condition{}
	}
	lags, lagSince := joinContainers(pod, cs, &v, e.in.RuntimeName)
	v.InRuntime = v.Sandbox != nil || len(cs) > 0
	// Only the API server's copy (/pods) freezes while the kubelet is cut
	// off; its own live status (the Pods API) keeps following the prober.
	frozen := e.in.KubeletLink.CutOff && from == FromKubeletCache
	probed := false
	if frozen {
		probed = e.probeReadiness(pod, &v)
	}
	if (len(lags) > 0 || probed) && e.runtime == fresh {
		var restarts int32
		for _, st := range pod.Containers {
			restarts += st.RestartCount
		}
		if lagSince.IsZero() {
			lagSince = e.in.KubeletLink.Since
		}
		v.KubeletCache = &CachedStatus{Phase: pod.Phase, Ready: condStatus(pod, CondReady), Restarts: restarts, LagsSince: lagSince}
		v.StatusFrom = FromRuntime
		v.Phase = derivePhase(pod, v.Containers)
		v.Conditions = deriveConditions(pod, v.Phase, v.Containers, lagSince)
	}
	if e.kubelet != down && e.runtime == fresh {
		v.Mismatches = e.mismatches(pod, &v, cs, lags, frozen)
	}
	classified := *pod
	classified.Phase, classified.Conditions = v.Phase, v.Conditions
	v.Stage, v.StageReason, v.UnknownCause = e.classify(&classified, &v)
	return v
}

// joinContainers adds to v each container the kubelet lists, joined to the
// runtime's (derived from the runtime where it is ahead: those are the lags,
// lagSince the earliest), then those only the runtime has. runtimeName
// names IDs the kubelet has not written yet (Input.RuntimeName).
func joinContainers(pod *Pod, cs []*Container, v *PodView, runtimeName string) (lags []lag, lagSince time.Time) {
	v.Containers = make([]ContainerView, 0, len(pod.Containers))
	from := v.StatusFrom
	names := make(map[string]bool, len(pod.Containers))
	for i := range pod.Containers {
		st := &pod.Containers[i]
		if names[st.Name] {
			continue // container names are unique in a pod; keep the first
		}
		names[st.Name] = true
		rc := find(cs, st)
		if st.Kind == KindEphemeral {
			v.Containers = append(v.Containers, kubeletContainer(st, rc, from))
			continue
		}
		last := latest(cs, st.Name)
		since, ahead := runtimeAhead(st, rc, last)
		if !ahead {
			v.Containers = append(v.Containers, kubeletContainer(st, rc, from))
			continue
		}
		v.Containers = append(v.Containers, derivedContainer(pod, st, rc, last, cs, runtimeName))
		lags = append(lags, lag{st: st, rc: rc, last: last, since: since})
		if lagSince.IsZero() || since.Before(lagSince) {
			lagSince = since
		}
	}
	// Containers the runtime has for this pod but the kubelet does not list.
	for _, c := range cs {
		if !names[c.Name] {
			names[c.Name] = true
			v.Containers = append(v.Containers, runtimeContainer(latest(cs, c.Name)))
		}
	}
	return lags, lagSince
}

// probeReadiness replaces, while the kubelet is cut off, the frozen
// readiness of each running container that has a readiness probe: with the
// prober's live result where podlife can read it, else with "unknown" (not
// ready) rather than the frozen value. It reports whether any changed.
func (e *env) probeReadiness(pod *Pod, v *PodView) bool {
	changed := false
	for i := range v.Containers {
		c := &v.Containers[i]
		if c.Source != SourceKubelet || c.State != StateRunning || c.Kind == KindEphemeral || !hasReadinessProbe(pod, c.Name) {
			continue
		}
		if r, ok := e.in.Readiness[pod.UID+"/"+c.Name]; ok {
			c.ReadyFrom = FromProbes
			changed = changed || c.Ready != r.Ready
			c.Ready = r.Ready
			continue
		}
		c.ReadyFrom = FromUnknown
		changed = changed || c.Ready
		c.Ready = false
	}
	return changed
}

func hasReadinessProbe(pod *Pod, name string) bool {
	for _, st := range pod.Containers {
		if st.Name == name {
			return st.ReadinessProbe
		}
	}
	return false
}

// lag is a container whose kubelet status lags the runtime.
type lag struct {
	st       *ContainerStatus
	rc, last *Container
	since    time.Time
}

// condStatus is the status of a pod condition, "" when absent.
func condStatus(pod *Pod, t string) string {
	for _, c := range pod.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// runtimeOnlyPod builds the view of a pod only the runtime knows. With the
// kubelet answering, only pods with running containers are shown (orphans);
// exited containers of deleted pods are normal garbage awaiting collection.
func (e *env) runtimeOnlyPod(uid string, cs []*Container, sb *Sandbox) (PodView, bool) {
	first := cs[0]
	v := PodView{
		Namespace: first.PodNamespace, Name: first.PodName, UID: uid,
		InRuntime: true, Sandbox: sb, Conditions: []Condition{}, Mismatches: []Mismatch{},
	}
	for i, c := range cs {
		if i+1 < len(cs) && cs[i+1].Name == c.Name {
			continue // keep only the latest attempt of each name
		}
		v.Containers = append(v.Containers, runtimeContainer(c))
		if c.State == RuntimeRunning {
			v.Mismatches = append(v.Mismatches, Mismatch{Kind: MismatchOrphan, Container: c.Name,
				Detail: fmt.Sprintf("runtime runs container %s (attempt %d) of a pod the kubelet does not know", shortID(c.ID), c.Attempt)})
		}
	}
	if e.kubelet == down || e.kubelet == absent {
		v.Mismatches = []Mismatch{} // without a kubelet view there is nothing to disagree with
	} else if len(v.Mismatches) == 0 {
		return v, false // nothing running: garbage awaiting collection
	}
	v.Stage, v.StageReason = e.runtimeOnlyStage(&v)
	e.facts = podFacts{view: v}
	e.applyCause(&e.facts)
	return e.facts.view, true
}

// kubeletContainer is the view of a container the kubelet lists, as its
// status (from FromKubelet or FromKubeletCache) says.
func kubeletContainer(st *ContainerStatus, rc *Container, from string) ContainerView {
	v := ContainerView{
		Name: st.Name, Kind: st.Kind, Source: SourceKubelet, From: from,
		State: st.State.Kind, Reason: st.State.Reason, Message: st.State.Message,
		StartedAt: st.State.StartedAt, FinishedAt: st.State.FinishedAt,
		RestartCount: st.RestartCount, Ready: st.Ready,
		ContainerID: st.ContainerID, Image: st.Image, Runtime: rc,
	}
	if st.Started != nil {
		v.Started = *st.Started
	} else {
		v.Started = st.State.Kind == StateRunning
	}
	if v.State == StateTerminated {
		ec := st.State.ExitCode
		v.ExitCode = &ec
	}
	if st.LastState.Kind != StateNone {
		ls := st.LastState
		v.LastState = &ls
	}
	return v
}

// runtimeContainer is the view of a container only the runtime knows.
func runtimeContainer(c *Container) ContainerView {
	v := ContainerView{
		Name: c.Name, Kind: KindRegular, Source: SourceRuntime, From: FromRuntime,
		State: runtimeStateKind(c), Reason: c.Reason, Message: c.Message,
		StartedAt: c.StartedAt, FinishedAt: c.FinishedAt,
		RestartCount: int32(c.Attempt), ContainerID: c.ID, Image: c.Image, Runtime: c,
	}
	if c.State == RuntimeExited {
		ec := c.ExitCode
		v.ExitCode = &ec
	}
	return v
}

// runtimeStateKind maps a CRI state to the Kubernetes state variant the
// kubelet would report for it.
func runtimeStateKind(c *Container) StateKind {
	switch c.State {
	case RuntimeCreated:
		return StateWaiting
	case RuntimeRunning:
		return StateRunning
	case RuntimeExited:
		return StateTerminated
	default:
		return StateUnknown
	}
}
