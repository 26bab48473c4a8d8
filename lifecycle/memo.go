package lifecycle

import (
	"reflect"
	"slices"
	"time"
)

// Correlator correlates successive inputs of one node. It remembers each
// pod's inputs and the view built from them, and builds a pod's view again
// only when that pod's kubelet status, runtime containers or sandbox changed,
// when anything else of the input the view may depend on changed (memoKey),
// or when the view said it changes with time (clock.go); what it returns is
// always what Correlate returns for the same input (TestCorrelatorMatchesCorrelate).
// The zero value is ready to use; it is not safe for concurrent use.
type Correlator struct {
	pods map[string]*podMemo // by pod UID
	gen  uint64
	// order is the pods' UIDs in a Snapshot's order (sortPods).
	order []string
	// ix indexes the runtime's records of Input.RuntimeGeneration ixGen.
	ix    runtimeIndex
	ixGen uint64
	// spare is the index's map before ix's, built over by the next index.
	spare map[string][]*Container
	// pos is each pod's place in order, podAt where the kubelet's list last
	// had it; last is the last correlation's (incremental).
	pos, podAt map[string]int
	last       lastCall
	// timers are when views change by themselves; incrementals and fulls
	// count the correlations made by the one-change path and the full one.
	timers              timers
	incrementals, fulls uint64
	// key is the last input's memoKey, keyGen counts its changes: a memo
	// built under another keyGen is not reused.
	key    memoKey
	keyGen uint64
}

// memoKey is what a pod's view may depend on besides the pod's own inputs:
// the Input, less what is compared pod by pod (Pods, Containers, Sandboxes),
// what is read afresh on every call to finish a view (APIPods, APINode, and
// the sources' health, read by the cause rules: the view counts it only as
// the three health classes, kept beside), the clock (a view that changes
// with it says when) and when the prober's results were seen. Anything added
// to Input is part of the key unless removed here (TestMemoKeyCoversInput);
// what is removed is read only where views are finished
// (TestMemoisedViewsReadNoPerCallInput).
type memoKey struct {
	in                          Input
	kubelet, runtime, apiserver health
}

func newMemoKey(e *env) memoKey {
	k := memoKey{in: *e.in, kubelet: e.kubelet, runtime: e.runtime, apiserver: e.apiserver}
	k.in.Now, k.in.PodsGeneration, k.in.RuntimeGeneration = time.Time{}, 0, 0
	k.in.PodsChanges, k.in.RuntimeChanges = ChangeLog{}, ChangeLog{}
	k.in.Pods, k.in.Sandboxes, k.in.Containers, k.in.APIPods, k.in.APINode = nil, nil, nil, nil, nil
	k.in.Kubelet, k.in.Runtime, k.in.APIServer = SourceHealth{}, SourceHealth{}, SourceHealth{}
	if len(e.in.Readiness) > 0 {
		k.in.Readiness = make(map[string]ProbeReadiness, len(e.in.Readiness))
		for name, r := range e.in.Readiness {
			k.in.Readiness[name] = ProbeReadiness{Ready: r.Ready}
		}
	}
	return k
}

// rekey notes the input's key, counting a change.
func (c *Correlator) rekey(e *env) {
	if k := newMemoKey(e); c.keyGen == 0 || !reflect.DeepEqual(k, c.key) {
		c.key = k
		c.keyGen++
	}
}

// podMemo is one kubelet-known pod's last inputs (copies, so that callers may
// reuse their slices) and the view built from them: its local truth, stage
// and the stage rules' own verdict of Unknown, less the API server's findings
// and the pod's cause, which are worked out on every call.
type podMemo struct {
	keyGen uint64
	// podsGen and rtGen are the Input's PodsGeneration and
	// RuntimeGeneration the pod and its runtime records were last found
	// equal under (0: none).
	podsGen, rtGen uint64
	pod            Pod
	// src is the first container status of the answer whose strings pod
	// shares (see refresh).
	src *ContainerStatus
	rt  []Container
	sb  *Sandbox
	// rtSrc and sbSrc are the runtime's group and sandbox rt and sb were
	// last found equal to, under a non-zero RuntimeGeneration (records
	// never modified): the same group and sandbox again are the same.
	rtSrc []*Container
	sbSrc *Sandbox
	view  PodView
	// out is the finished view last handed out (see env.finish).
	out *PodView
	gen uint64
	// The view holds from built until until (zero: for ever); what finish
	// worked out of it last, until finUntil.
	built, until, finUntil time.Time
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

// view returns the pod's memo, built again unless it was built from these
// inputs.
func (c *Correlator) view(e *env, pod *Pod, cs []*Container, sb *Sandbox) *podMemo {
	m := c.pods[pod.UID]
	if m != nil && m.matches(c.keyGen, e.in.Now, e.in.PodsGeneration, e.in.RuntimeGeneration, pod, cs, sb) {
		m.refresh(pod)
		m.podsGen, m.rtGen = e.in.PodsGeneration, e.in.RuntimeGeneration
		if m.rtGen != 0 {
			m.rtSrc, m.sbSrc = cs, sb
		}
		return m
	}
	var hist podHistory
	if m != nil {
		hist = m.podHistory // what was seen of the pod outlives its changes
	}
	m = &podMemo{keyGen: c.keyGen, podsGen: e.in.PodsGeneration, rtGen: e.in.RuntimeGeneration, pod: clonePod(pod), rt: make([]Container, len(cs)), built: e.in.Now, podHistory: hist}
	if m.rtGen != 0 {
		m.rtSrc, m.sbSrc = cs, sb
	}
	for i, c := range cs {
		m.rt[i] = *c
	}
	if sb != nil {
		copied := *sb
		m.sb = &copied
	}
	if len(pod.Containers) > 0 {
		m.src = &pod.Containers[0]
	}
	m.sawRestartAll(pod)
	e.until, e.restartEnds = time.Time{}, m.restartEnds
	m.view = e.kubeletPod(&m.pod, m.containers(), m.sb)
	m.until, e.restartEnds = e.until, nil
	c.pods[pod.UID] = m
	return m
}

// clonePod copies a pod deeply enough that its caller may reuse the input's slices.
func clonePod(pod *Pod) Pod {
	p := *pod
	p.Conditions = slices.Clone(pod.Conditions)
	p.Containers = slices.Clone(pod.Containers)
	return p
}

// refresh keeps, of an equal new answer for the pod, a copy whose strings
// are the answer's: the next comparisons with that same answer (the agent
// correlates on every runtime event between two kubelet answers) find them
// equal by address at once. An answer is told by its containers' array; a
// wrong guess costs time, never a wrong view. The memo's old copy is not
// written to: views handed out share it.
func (m *podMemo) refresh(pod *Pod) {
	if len(pod.Containers) > 0 && &pod.Containers[0] != m.src {
		m.pod, m.src = clonePod(pod), &pod.Containers[0]
	}
}

// containers is the memo's copy of the pod's runtime containers, in index order.
func (m *podMemo) containers() []*Container {
	cs := make([]*Container, len(m.rt))
	for i := range m.rt {
		cs[i] = &m.rt[i]
	}
	return cs
}

// matches reports whether the memo was built from these inputs and still
// holds at now. Neither view is compared again within the answer it was
// last found equal in (podsGen, rtGen): a runtime event between two kubelet
// answers compares only the runtime's records, and the other way round.
// Nor are the runtime's records in a new answer that regrouped other pods
// only (the index kept this pod's group: indexRuntime).
func (m *podMemo) matches(keyGen uint64, now time.Time, podsGen, rtGen uint64, pod *Pod, cs []*Container, sb *Sandbox) bool {
	if m.keyGen != keyGen || now.Before(m.built) || (!m.until.IsZero() && !now.Before(m.until)) {
		return false
	}
	if (podsGen == 0 || podsGen != m.podsGen) && !samePod(&m.pod, pod) {
		return false
	}
	if rtGen != 0 && (rtGen == m.rtGen || (m.sbSrc == sb && sameArray(m.rtSrc, cs) && m.rtGen != 0)) {
		return true
	}
	return m.sameRuntime(cs, sb)
}

// samePod reports whether two records are the same pod: the same revision
// of it, or equal.
func samePod(a, b *Pod) bool {
	return (a.Revision != 0 && a.Revision == b.Revision && a.UID == b.UID) || podEqual(a, b)
}

// sameRuntime reports whether the memo was built from these runtime records.
func (m *podMemo) sameRuntime(cs []*Container, sb *Sandbox) bool {
	if len(m.rt) != len(cs) || (m.sb == nil) != (sb == nil) || (sb != nil && !sandboxEqual(m.sb, sb)) {
		return false
	}
	for i, c := range cs {
		if !containerEqual(&m.rt[i], c) {
			return false
		}
	}
	return true
}
