package lifecycle

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// DefaultStaleAfter is how old a source's last success may be before its
// data is no longer trusted, when Input.StaleAfter is zero.
const DefaultStaleAfter = 10 * time.Second

// health is a source's usefulness for one correlation.
type health int

const (
	absent health = iota // not configured: never a cause of Unknown
	fresh                // answered recently
	down                 // configured, but failing or stale
)

func sourceHealth(h SourceHealth, now time.Time, staleAfter time.Duration) health {
	switch {
	case !h.Configured:
		return absent
	case !h.Up || h.LastSuccess.IsZero() || now.Sub(h.LastSuccess) > staleAfter:
		return down
	default:
		return fresh
	}
}

// runtimeIndex indexes the runtime's listing for the join.
type runtimeIndex struct {
	byPod     map[string][]*Container // pod UID -> containers, sorted by name then attempt
	sandboxes map[string]*Sandbox     // pod UID -> latest sandbox
}

func indexRuntime(sandboxes []Sandbox, containers []Container) runtimeIndex {
	ix := runtimeIndex{
		byPod:     make(map[string][]*Container, len(sandboxes)),
		sandboxes: make(map[string]*Sandbox, len(sandboxes)),
	}
	// Group the containers by pod, each group sorted by name, attempt and
	// creation. A runtime source that lists them in that order (cri.State
	// does) costs a scan; any other order, a sort.
	ptrs := make([]*Container, len(containers))
	for i := range containers {
		ptrs[i] = &containers[i]
	}
	byUID := func(a, b *Container) int { return cmp.Compare(a.PodUID, b.PodUID) }
	if !slices.IsSortedFunc(ptrs, byUID) {
		slices.SortFunc(ptrs, byUID)
	}
	for start := 0; start < len(ptrs); {
		end := start + 1
		for end < len(ptrs) && ptrs[end].PodUID == ptrs[start].PodUID {
			end++
		}
		cs := ptrs[start:end:end]
		if !slices.IsSortedFunc(cs, byNameAttempt) {
			slices.SortFunc(cs, byNameAttempt)
		}
		ix.byPod[cs[0].PodUID] = cs
		start = end
	}
	for i := range sandboxes {
		s := &sandboxes[i]
		if old, ok := ix.sandboxes[s.PodUID]; !ok || s.Attempt > old.Attempt ||
			(s.Attempt == old.Attempt && s.CreatedAt.After(old.CreatedAt)) {
			ix.sandboxes[s.PodUID] = s
		}
	}
	return ix
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

// Correlate joins the kubelet's and the runtime's views of a node into one
// Snapshot: a PodView per pod with every container's two views side by side,
// its stage, unknown cause and mismatches.
func Correlate(in Input) Snapshot {
	c := Correlator{once: true}
	return c.Correlate(in)
}

// Correlator correlates successive inputs of one node. It remembers each
// pod's inputs and view and builds a pod's view again only when that pod's
// kubelet status, runtime containers or sandbox, or the health of the
// sources, changed; what it returns is always what Correlate returns for the
// same input. The zero value is ready to use; it is not safe for concurrent
// use.
type Correlator struct {
	pods map[string]*podMemo // by pod UID
	gen  uint64
	once bool // Correlate's one-off use: nothing is copied for later
}

// podMemo is one kubelet-known pod's last inputs (copies, so that callers may
// reuse their slices) and the view built from them, less the API server's
// findings, which depend on the time.
type podMemo struct {
	key  envKey
	pod  Pod
	rt   []Container
	sb   *Sandbox
	view PodView
	gen  uint64
	// until is when the view changes with time alone (zero: never).
	until time.Time
	podHistory
}

// podHistory is what a correlator has seen of a pod over time, kept across
// its changes.
type podHistory struct {
	// behindSince is when the API server's copy was first seen to lack the
	// kubelet's live status, while it still does (see apiBehind).
	behindSince time.Time
	// restartEnds are the ends of the last two restarts of the whole pod
	// in place (AllContainersRestarting back to False; see restartLoop).
	restartEnds []time.Time
}

// sawRestartAll records the end of a restart of the whole pod: its
// AllContainersRestarting condition False with a transition time not seen,
// once containers were restarted for it (RestartingAllContainers).
func (h *podHistory) sawRestartAll(pod *Pod) {
	for _, c := range pod.Conditions {
		if c.Type != CondAllContainersRestarting || c.Status != "False" || c.LastTransitionTime.IsZero() ||
			slices.Contains(h.restartEnds, c.LastTransitionTime) || !restartedAll(pod) {
			continue
		}
		h.restartEnds = append(h.restartEnds[max(len(h.restartEnds)-1, 0):], c.LastTransitionTime)
	}
}

// restartedAll reports whether the kubelet has restarted the pod's
// containers in place (a last state RestartingAllContainers).
func restartedAll(pod *Pod) bool {
	return slices.ContainsFunc(pod.Containers, func(st ContainerStatus) bool {
		return st.LastState.Reason == ReasonRestartingAllContainers || st.State.Reason == ReasonRestartingAllContainers
	})
}

// Correlate is the package's Correlate, reusing unchanged pods' views.
func (c *Correlator) Correlate(in Input) Snapshot {
	stale := cmp.Or(in.StaleAfter, DefaultStaleAfter)
	env := env{
		stale:     stale,
		apiPods:   make(map[string]*APIPod, len(in.APIPods)),
		kubelet:   sourceHealth(in.Kubelet, in.Now, stale),
		runtime:   sourceHealth(in.Runtime, in.Now, stale),
		apiserver: sourceHealth(in.APIServer, in.Now, stale),
		in:        &in,
	}
	for i := range in.APIPods {
		p := &in.APIPods[i]
		env.apiPods[p.UID] = p
		if p.MirrorOf != "" {
			// A static pod is known to the kubelet by its config hash; the
			// API server's copy is its mirror pod.
			env.apiPods[p.MirrorOf] = p
		}
	}
	if env.kubelet == down && in.KubeletLink.CutOff && in.Kubelet.Synced() {
		// A kubelet cut off from the API server cannot review podlife's
		// credentials and stops answering it; what it would serve is the
		// frozen copy podlife already has. Its last answer stands, and the
		// runtime tells the rest.
		env.kubelet = fresh
	}
	key := env.key()
	ix := indexRuntime(in.Sandboxes, in.Containers)
	snap := Snapshot{
		Node: in.Node,
		At:   in.Now,
		Sources: map[string]SourceHealth{
			SourceRuntime: in.Runtime, SourceKubelet: in.Kubelet, SourceAPIServer: in.APIServer,
			SourceKubeletLink: linkHealth(in),
		},
		Pods: make([]PodView, 0, len(in.Pods)),
	}
	if c.pods == nil {
		c.pods = make(map[string]*podMemo, len(in.Pods))
	}
	c.gen++
	for i := range in.Pods {
		pod := &in.Pods[i]
		m := c.pods[pod.UID]
		if m != nil && m.gen == c.gen {
			continue // one view per pod, even if a source repeats one
		}
		cs, sb := ix.byPod[pod.UID], ix.sandboxes[pod.UID]
		env.until = time.Time{}
		switch {
		case c.once:
			m = &podMemo{pod: *pod, view: env.kubeletPod(pod, cs, sb)}
			c.pods[pod.UID] = m
		case m == nil || !m.matches(key, in.Now, pod, cs, sb):
			var hist podHistory
			if m != nil {
				hist = m.podHistory // what was seen of the pod outlives its changes
			}
			m = newPodMemo(key, pod, cs, sb)
			m.podHistory = hist
			m.sawRestartAll(pod)
			env.restartEnds = m.restartEnds
			m.view = env.kubeletPod(&m.pod, m.containers(), m.sb)
			env.restartEnds = nil
			m.until = env.until
			c.pods[pod.UID] = m
		case unsafe.StringData(m.pod.UID) != unsafe.StringData(pod.UID):
			// The same pod from a new kubelet answer: keep a copy of this
			// one, whose strings the next calls compare by address alone.
			m.pod = clonePod(pod)
		}
		m.gen = c.gen
		snap.Pods = append(snap.Pods, env.withAPIServer(m))
	}
	for uid, m := range c.pods {
		if m.gen != c.gen {
			delete(c.pods, uid)
		}
	}
	for uid, cs := range ix.byPod {
		if c.pods[uid] != nil {
			continue
		}
		if v, ok := env.runtimeOnlyPod(uid, cs, ix.sandboxes[uid]); ok {
			snap.Pods = append(snap.Pods, v)
		}
	}
	slices.SortFunc(snap.Pods, func(a, b PodView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
	})
	return snap
}

func newPodMemo(key envKey, pod *Pod, cs []*Container, sb *Sandbox) *podMemo {
	m := &podMemo{key: key, pod: clonePod(pod), rt: make([]Container, len(cs))}
	for i, c := range cs {
		m.rt[i] = *c
	}
	if sb != nil {
		copied := *sb
		m.sb = &copied
	}
	return m
}

// clonePod copies a pod deeply enough that its caller may reuse the input's slices.
func clonePod(pod *Pod) Pod {
	p := *pod
	p.Conditions = slices.Clone(pod.Conditions)
	p.Containers = slices.Clone(pod.Containers)
	return p
}

// containers is the memo's copy of the pod's runtime containers, in index order.
func (m *podMemo) containers() []*Container {
	cs := make([]*Container, len(m.rt))
	for i := range m.rt {
		cs[i] = &m.rt[i]
	}
	return cs
}

// matches reports whether the memo was built from these inputs.
func (m *podMemo) matches(key envKey, now time.Time, pod *Pod, cs []*Container, sb *Sandbox) bool {
	if m.key != key || (!m.until.IsZero() && !now.Before(m.until)) || len(m.rt) != len(cs) || (m.sb == nil) != (sb == nil) ||
		(sb != nil && !sandboxEqual(m.sb, sb)) || !podEqual(&m.pod, pod) {
		return false
	}
	for i, c := range cs {
		if !containerEqual(&m.rt[i], c) {
			return false
		}
	}
	return true
}

// envKey is what a pod's view depends on besides its own inputs.
type envKey struct {
	kubelet, runtime, apiserver health
	kubeletErr, runtimeErr      string
	link                        KubeletLink
	grace                       time.Duration
	readiness                   string
}

func (e env) key() envKey {
	return envKey{kubelet: e.kubelet, runtime: e.runtime, apiserver: e.apiserver,
		kubeletErr: e.in.Kubelet.LastError, runtimeErr: e.in.Runtime.LastError,
		link: e.in.KubeletLink, grace: e.in.MismatchGrace, readiness: readinessKey(e.in.Readiness)}
}

// readinessKey is a canonical string of the prober's readiness (read only
// while the kubelet is cut off, so usually empty).
func readinessKey(r map[string]ProbeReadiness) string {
	if len(r) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(r))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v;", k, r[k].Ready)
	}
	return b.String()
}

// env is the per-call context of Correlate.
type env struct {
	kubelet, runtime, apiserver health
	in                          *Input
	stale                       time.Duration
	apiPods                     map[string]*APIPod
	// until is when the view being built changes with time alone.
	until time.Time
	// restartEnds is the pod's podHistory.restartEnds while its view is built.
	restartEnds []time.Time
}

// kubeletPod builds the view of a pod the kubelet knows from its runtime
// containers cs (sorted by name, then attempt) and sandbox, all but the API
// server's findings (see withAPIServer). Where the runtime is ahead of the
// kubelet's status, the container's state, and then the pod's phase and
// readiness, are derived from the runtime, with the kubelet's copy kept
// beside them. The view may change with time alone (graces, crash loops):
// e.until then holds when.
func (e *env) kubeletPod(pod *Pod, cs []*Container, sb *Sandbox) PodView {
	from := cmp.Or(pod.StatusFrom, FromKubelet)
	v := PodView{
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		Phase: pod.Phase, Reason: pod.Reason, Terminating: !pod.Deleting.IsZero(),
		Created: pod.Created, Started: pod.Started, StatusFrom: from,
		Conditions: pod.Conditions, InKubelet: true,
		Sandbox:    sb,
		Containers: make([]ContainerView, 0, len(pod.Containers)),
		Mismatches: []Mismatch{},
	}
	if v.Conditions == nil {
		v.Conditions = []Condition{}
	}
	var lags []lag
	var lagSince time.Time
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
		v.Containers = append(v.Containers, derivedContainer(pod, st, rc, last, cs))
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
	v.InRuntime = v.Sandbox != nil || len(cs) > 0
	cut := e.in.KubeletLink.CutOff
	// Only the API server's copy (/pods) freezes while the kubelet is cut
	// off; its own live status (the Pods API) keeps following the prober.
	frozen := cut && from == FromKubeletCache
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
	if (v.UnknownCause == CauseNone || v.UnknownCause == CauseAPIServerUnreachable) && cut && e.kubelet != down && e.runtime != down {
		v.UnknownCause, v.UnknownSince = CauseKubeletAPIServerUnreachable, e.in.KubeletLink.Since
		if e.apiserver == down {
			v.UnknownCause = CauseNodeCutOff
		}
		frozen := "its copy of this pod is frozen"
		if from == FromKubelet {
			frozen = "the cluster does not hear of this pod (its status here is the kubelet's own)"
		}
		v.StageReason += fmt.Sprintf("; the kubelet cannot reach the API server since %s, %s",
			e.in.KubeletLink.Since.UTC().Format(time.RFC3339), frozen)
		if !e.in.Kubelet.Up {
			v.StageReason += " (and it no longer answers podlife: " + e.in.Kubelet.LastError + ")"
		}
	}
	return v
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

// linkHealth shows the kubelet's link to the API server as a source: known
// once the kubelet answered, down while cut off, since when, and the evidence.
func linkHealth(in Input) SourceHealth {
	if !in.Kubelet.Configured || (!in.Kubelet.Synced() && !in.KubeletLink.CutOff) {
		return SourceHealth{}
	}
	h := SourceHealth{Configured: true, Up: !in.KubeletLink.CutOff, LastSuccess: in.KubeletLink.Since}
	if in.KubeletLink.CutOff {
		h.LastError = "the kubelet cannot reach the API server: " + in.KubeletLink.Evidence
	}
	return h
}

// due notes that the view being built changes by itself at t.
func (e *env) due(t time.Time) {
	if t.After(e.in.Now) && (e.until.IsZero() || t.Before(e.until)) {
		e.until = t
	}
}

// withAPIServer adds to a kubelet-known pod's view what the API server's
// copy of the pod and node say about it. v's slices are not modified.
func (e env) withAPIServer(m *podMemo) PodView {
	pod, v := &m.pod, m.view
	v.APIServer = e.apiPods[pod.UID]
	apiStale := false
	if e.apiserver == fresh && e.runtime == fresh && v.APIServer != nil {
		// The kubelet's own live status, where podlife has it, is compared
		// first: the finding names what the copy lacks, and since when.
		found := e.apiBehind(pod, &v, &m.behindSince)
		if len(found) == 0 {
			found = e.apiMismatches(pod, &v)
		}
		apiStale = len(found) > 0
		if apiStale {
			v.Mismatches = append(slices.Clip(v.Mismatches), found...)
		}
	}
	if v.UnknownCause == CauseNone && v.Stage != StageUnknown && e.apiserver == fresh {
		// Only the node lifecycle controller's Ready=Unknown means the API
		// server's copy is stale; a Ready=False posted by a live kubelet
		// (KubeletNotReady) is accurate.
		if n := e.in.APINode; n != nil && n.Ready == "Unknown" && runningInRuntime(&v) > 0 {
			v.UnknownCause = CauseNodeStatusStale
			v.StageReason += fmt.Sprintf("; the API server shows the node Ready=%s (%s) while its containers run", n.Ready, orUnknown(n.Reason))
		} else if apiStale && n != nil && n.Ready == "Unknown" {
			v.UnknownCause = CauseNodeStatusStale
		}
	}
	if v.UnknownSince.IsZero() {
		v.UnknownSince = e.causeSince(v.UnknownCause)
	}
	return v
}

// causeSince is when a cause began, as far as the sources tell: the last
// success of the source that went away, the node's last heartbeat.
func (e env) causeSince(c Cause) time.Time {
	earliest := func(a, b time.Time) time.Time {
		if a.IsZero() || (!b.IsZero() && b.Before(a)) {
			return b
		}
		return a
	}
	switch c {
	case CauseRuntimeUnreachable:
		return e.in.Runtime.LastSuccess
	case CauseKubeletUnreachable:
		return e.in.Kubelet.LastSuccess
	case CauseSourcesUnreachable:
		return earliest(e.in.Runtime.LastSuccess, e.in.Kubelet.LastSuccess)
	case CauseAPIServerUnreachable:
		return e.in.APIServer.LastSuccess
	case CauseNodeCutOff:
		return earliest(e.in.KubeletLink.Since, e.in.APIServer.LastSuccess)
	case CauseNodeStatusStale:
		if e.in.APINode != nil {
			return e.in.APINode.LastHeartbeat
		}
	}
	return time.Time{}
}

// runtimeOnlyPod builds the view of a pod only the runtime knows. With the
// kubelet answering, only pods with running containers are shown (orphans);
// exited containers of deleted pods are normal garbage awaiting collection.
func (e env) runtimeOnlyPod(uid string, cs []*Container, sb *Sandbox) (PodView, bool) {
	first := cs[0]
	v := PodView{
		Namespace: first.PodNamespace, Name: first.PodName, UID: uid,
		InRuntime: true, Sandbox: sb, Conditions: []Condition{}, Mismatches: []Mismatch{},
	}
	running := 0
	for i, c := range cs {
		if i+1 < len(cs) && cs[i+1].Name == c.Name {
			continue // keep only the latest attempt of each name
		}
		v.Containers = append(v.Containers, runtimeContainer(c))
		if c.State == RuntimeRunning {
			running++
			v.Mismatches = append(v.Mismatches, Mismatch{Kind: MismatchOrphan, Container: c.Name,
				Detail: fmt.Sprintf("runtime runs container %s (attempt %d) of a pod the kubelet does not know", shortID(c.ID), c.Attempt)})
		}
	}
	if e.kubelet == down || e.kubelet == absent {
		v.Mismatches = []Mismatch{} // without a kubelet view there is nothing to disagree with
		v.Stage, v.StageReason, v.UnknownCause = e.classify(nil, &v)
		v.UnknownSince = e.causeSince(v.UnknownCause)
		return v, true
	}
	if running == 0 {
		return v, false
	}
	v.Stage = StageUnknown
	v.UnknownCause = CauseOrphaned
	v.StageReason = fmt.Sprintf("Unknown: the kubelet does not know this pod; the runtime runs %d of its containers", running)
	return v, true
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

// mismatches compares a kubelet-known pod with the runtime. The kubelet's
// copy normally lags the runtime: a lag counts as a mismatch only once it has
// lasted the grace, and not at all while the copy is frozen (the kubelet is
// cut off from the API server; the cause says so once).
func (e *env) mismatches(pod *Pod, v *PodView, cs []*Container, lags []lag, frozen bool) []Mismatch {
	out := []Mismatch{}
	finished := pod.Phase == PhaseSucceeded || pod.Phase == PhaseFailed || !pod.Deleting.IsZero()
	grace := cmp.Or(e.in.MismatchGrace, DefaultMismatchGrace)
	lagging := func(since time.Time) bool {
		if frozen {
			return true
		}
		if e.in.Now.Sub(since) < grace {
			e.due(since.Add(grace))
			return true
		}
		return false
	}
	for _, l := range lags {
		st, rc, last := l.st, l.rc, l.last
		if lagging(l.since) {
			continue
		}
		switch {
		case st.State.Kind == StateRunning && rc != nil && rc.State == RuntimeExited:
			out = append(out, Mismatch{Kind: MismatchRunningButExited, Container: st.Name,
				Detail: fmt.Sprintf("kubelet says running; runtime says exited %d%s at %s",
					rc.ExitCode, parens(rc.Reason), rc.FinishedAt.UTC().Format(time.RFC3339Nano))})
		}
		if last.Attempt != uint32(st.RestartCount) && st.ContainerID != "" {
			out = append(out, Mismatch{Kind: MismatchRestartCount, Container: st.Name,
				Detail: fmt.Sprintf("kubelet restartCount %d; runtime's latest attempt is %d (%s) since %s",
					st.RestartCount, last.Attempt, last.State, l.since.UTC().Format(time.RFC3339))})
		}
	}
	for i := range pod.Containers {
		st := &pod.Containers[i]
		if st.ContainerID == "" || slices.ContainsFunc(lags, func(l lag) bool { return l.st == st }) {
			continue
		}
		rc := find(cs, st)
		if rc != nil && rc.State == RuntimeRunning && st.State.Kind == StateTerminated &&
			StripRuntimeScheme(st.State.ContainerID) == rc.ID {
			// No lag explains it: the kubelet learned of the exit from the runtime.
			out = append(out, Mismatch{Kind: MismatchZombie, Container: st.Name,
				Detail: fmt.Sprintf("kubelet says terminated at %s; the runtime still runs container %s",
					st.State.FinishedAt.UTC().Format(time.RFC3339), shortID(rc.ID))})
		}
		// The kubelet ahead of the runtime: more restarts than attempts. A
		// container whose state the kubelet lost (ContainerStatusUnknown)
		// counts one restart without a new attempt, which is no mismatch.
		if last := latest(cs, st.Name); last != nil && st.Kind != KindEphemeral && uint32(max(st.RestartCount, 0)) > last.Attempt &&
			!(st.LastState.Reason == ReasonContainerStatusUnknown && uint32(st.RestartCount) == last.Attempt+1) {
			out = append(out, Mismatch{Kind: MismatchRestartCount, Container: st.Name,
				Detail: fmt.Sprintf("kubelet restartCount %d; runtime's latest attempt is %d (%s)", st.RestartCount, last.Attempt, last.State)})
		}
		if finished {
			continue
		}
		if rc == nil {
			out = append(out, Mismatch{Kind: MismatchMissingInRuntime, Container: st.Name,
				Detail: fmt.Sprintf("kubelet references %s, which the runtime does not have", st.ContainerID)})
		}
	}
	if pod.Phase == PhaseRunning && pod.Deleting.IsZero() {
		switch {
		case v.Sandbox == nil:
			out = append(out, Mismatch{Kind: MismatchSandboxNotReady,
				Detail: "kubelet says Running; the runtime has no sandbox for the pod"})
		case v.Sandbox.State != SandboxReady && !lagging(v.Sandbox.CreatedAt):
			out = append(out, Mismatch{Kind: MismatchSandboxNotReady,
				Detail: fmt.Sprintf("kubelet says Running; sandbox %s is %s", shortID(v.Sandbox.ID), v.Sandbox.State)})
		}
	}
	return out
}

// apiMismatches compares the API server's copy of a pod with the local truth.
// A difference counts only once it has outlived the staleness allowance, so
// the normal lag of a status update is not reported.
func (e env) apiMismatches(pod *Pod, v *PodView) []Mismatch {
	api := v.APIServer
	running := runningInRuntime(v)
	var out []Mismatch
	if api.Phase == PhaseRunning && running == 0 {
		var last time.Time
		exited := 0
		for _, c := range v.Containers {
			if c.Runtime != nil && c.Runtime.State == RuntimeExited && c.Kind != KindInit {
				exited++
				if c.Runtime.FinishedAt.After(last) {
					last = c.Runtime.FinishedAt
				}
			}
		}
		if exited > 0 && e.in.Now.Sub(last) > e.stale {
			out = append(out, Mismatch{Kind: MismatchAPIRunningButExited,
				Detail: fmt.Sprintf("API server says Running; the runtime says all %d containers exited, the last at %s",
					exited, last.UTC().Format(time.RFC3339))})
		}
	}
	if running > 0 {
		kubeletReady := false
		var changed time.Time
		for _, c := range v.Conditions {
			if c.Type == CondReady {
				kubeletReady, changed = c.Status == "True", c.LastTransitionTime
			}
		}
		switch {
		// During an eviction or node shutdown the kubelet writes Failed
		// before it kills the containers (pkg/kubelet/kubelet.go
		// syncTerminatingPod): a copy that agrees with the kubelet is not stale.
		case (api.Phase == PhaseFailed && pod.Phase != PhaseFailed) || api.Phase == PhaseUnknown:
			out = append(out, Mismatch{Kind: MismatchAPIStale,
				Detail: fmt.Sprintf("API server says %s; %d containers are running here", api.Phase, running)})
		case kubeletReady && api.Ready != "True" && e.in.Now.Sub(changed) > e.stale:
			out = append(out, Mismatch{Kind: MismatchAPIStale,
				Detail: fmt.Sprintf("API server says Ready=%s; the kubelet has said Ready=True since %s",
					orUnknown(api.Ready), changed.UTC().Format(time.RFC3339))})
		}
	}
	return out
}

// apiBehind compares the kubelet's own live status of a pod (its Pods API,
// or a static pod's status) with the API server's copy: a phase, readiness or
// restart count the copy lacks for longer than APIBehindGrace, timed from
// when this correlator first saw the difference (*since; the kubelet's
// status manager posts within its 10 s sync period, pkg/kubelet/status
// status_manager.go), means the cluster's view of the pod is behind the
// node. A terminal phase the kubelet holds back while containers still run
// (status_manager.go mergePodStatus keeps the copy's phase) is no difference.
func (e env) apiBehind(pod *Pod, v *PodView, since *time.Time) []Mismatch {
	api := v.APIServer
	if v.StatusFrom != FromKubelet {
		*since = time.Time{}
		return nil // /pods' copy is the API server's own; a derived view is not the kubelet's
	}
	var restarts int32
	for _, st := range pod.Containers {
		if st.Kind != KindEphemeral {
			restarts += st.RestartCount
		}
	}
	ready := condStatus(pod, CondReady)
	phase := pod.Phase
	if (phase == PhaseSucceeded || phase == PhaseFailed) && runningInRuntime(v) > 0 {
		phase = api.Phase
	}
	if api.Phase == phase && api.Ready == ready && api.Restarts == restarts {
		*since = time.Time{}
		return nil
	}
	if since.IsZero() {
		*since = e.in.Now
	}
	if e.in.Now.Sub(*since) < APIBehindGrace {
		return nil
	}
	return []Mismatch{{Kind: MismatchAPIBehindKubelet,
		Detail: fmt.Sprintf("API server's copy: %s, Ready=%s, %d restarts; the kubelet's own live status: %s, Ready=%s, %d restarts; differing since %s",
			orUnknown(string(api.Phase)), orUnknown(api.Ready), api.Restarts, orUnknown(string(pod.Phase)), orUnknown(ready), restarts,
			since.UTC().Format(time.RFC3339))}}
}

// APIBehindGrace is how long the API server's copy may lack the kubelet's
// live status before it is a finding: three of the status manager's 10 s
// sync periods, so one failed post retried at the next is not one.
const APIBehindGrace = 30 * time.Second

func runningInRuntime(v *PodView) int {
	n := 0
	for _, c := range v.Containers {
		if c.Runtime != nil && c.Runtime.State == RuntimeRunning {
			n++
		}
	}
	return n
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
