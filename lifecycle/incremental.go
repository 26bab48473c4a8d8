package lifecycle

import (
	"container/heap"
	"slices"
	"sort"
	"time"
)

// lastCall is what a Correlator's last correlation handed out and what it
// was made from: what the next one may start from (incremental).
type lastCall struct {
	// pods are the snapshot's pods, in order's order; nil: nothing to start
	// from, every pod is looked at.
	pods    []*PodView
	podsGen uint64
	nPods   int // len(Input.Pods)
	keyGen  uint64
	now     time.Time // the call's clock
	api     []APIPod
	node    *APINode
}

// incremental is the one-change path: when the sources name the pods they
// changed since the last correlation (Input.PodsChanges, RuntimeChanges)
// and nothing else that views depend on changed, it builds again and
// finishes only those pods and hands out the others' views as they were.
// It reports false, having changed nothing the full path depends on, when
// it cannot: then every pod is looked at. What it returns is what the full
// path would (TestIncrementalMatchesCorrelate).
func (c *Correlator) incremental(e *env) (Snapshot, bool) {
	in, l := e.in, &c.last
	if l.pods == nil || l.keyGen != c.keyGen || !steady(e) || len(in.Pods) != l.nPods || in.Now.Before(l.now) ||
		!sameArray(in.APIPods, l.api) || !sameNode(in.APINode, l.node) {
		return Snapshot{}, false
	}
	rt, ok := in.RuntimeChanges.Since(c.ixGen, in.RuntimeGeneration)
	if !ok || c.ix.byPod == nil || !sameSandboxes(c.ix, in.Sandboxes) {
		return Snapshot{}, false
	}
	kp, ok := in.PodsChanges.Since(l.podsGen, in.PodsGeneration)
	if !ok {
		return Snapshot{}, false
	}
	pods, groups, ok := c.changedPods(in, rt, kp, c.timers.due(in.Now))
	if !ok {
		return Snapshot{}, false
	}
	for uid, g := range groups {
		if g == nil {
			delete(c.ix.byPod, uid)
		} else {
			c.ix.byPod[uid] = g
		}
	}
	c.ixGen = in.RuntimeGeneration
	out := slices.Clone(l.pods)
	for _, pod := range pods {
		m := c.view(e, pod, c.ix.byPod[pod.UID], c.ix.sandboxes[pod.UID])
		out[c.pos[pod.UID]] = c.finish(e, m)
		c.timers.set(pod.UID, m)
	}
	snap := newSnapshot(in)
	snap.Pods = out
	c.remember(e, out)
	c.incrementals++
	return snap, true
}

// Paths counts the correlations made so far: those that looked only at the
// pods the sources said changed, or whose views change with time (the
// one-change path), and those that looked at every pod.
func (c *Correlator) Paths() (changed, all uint64) { return c.incrementals, c.fulls }

// steady reports whether no source is down and the kubelet is not cut off:
// then the cause rules read nothing of the sources but their health class
// (part of the memo key), and a pod that did not change keeps its view.
func steady(e *env) bool {
	return e.kubelet != down && e.runtime != down && e.apiserver != down && !e.in.KubeletLink.CutOff
}

// changedPods returns the kubelet's records of the pods rt, kp and due name,
// once each, and the runtime's new groups of the pods rt names (nil: none);
// false when a pod came or went, or the runtime changed a pod the kubelet
// does not list (then the set of pods and their order are worked out again).
func (c *Correlator) changedPods(in *Input, rt, kp, due []Change) ([]*Pod, map[string][]*Container, bool) {
	groups := make(map[string][]*Container, len(rt))
	for _, ch := range rt {
		if _, done := groups[ch.UID]; done {
			continue
		}
		g, ok := groupOf(in.Containers, ch.UID, c.ix.byPod[ch.UID])
		if !ok {
			return nil, nil, false
		}
		groups[ch.UID] = g
	}
	var pods []*Pod
	seen := make(map[string]bool, len(rt)+len(kp))
	for _, ch := range slices.Concat(rt, kp, due) {
		if seen[ch.UID] {
			continue
		}
		seen[ch.UID] = true
		m, pod := c.pods[ch.UID], c.podOf(in, ch.UID)
		if m == nil || pod == nil || pod.Namespace != m.pod.Namespace || pod.Name != m.pod.Name {
			return nil, nil, false
		}
		pods = append(pods, pod)
	}
	return pods, groups, true
}

// podOf finds a pod's record in the kubelet's list: where it was last
// found, or anywhere.
func (c *Correlator) podOf(in *Input, uid string) *Pod {
	if i, ok := c.podAt[uid]; ok && i < len(in.Pods) && in.Pods[i].UID == uid {
		return in.Pods[i]
	}
	i := slices.IndexFunc(in.Pods, func(p *Pod) bool { return p.UID == uid })
	if i < 0 {
		return nil
	}
	if c.podAt == nil {
		c.podAt = map[string]int{}
	}
	c.podAt[uid] = i
	return in.Pods[i]
}

// groupOf is the pod's group of containers in a listing grouped by pod in
// UID order, as indexRuntime makes it (nil: none). False when the listing
// is not ordered around the group.
func groupOf(cs []*Container, uid string, old []*Container) ([]*Container, bool) {
	i := sort.Search(len(cs), func(i int) bool { return cs[i].PodUID >= uid })
	j := i
	for j < len(cs) && cs[j].PodUID == uid {
		j++
	}
	if (i > 0 && cs[i-1].PodUID > uid) || (j < len(cs) && cs[j].PodUID < uid) {
		return nil, false
	}
	if i == j {
		return nil, true
	}
	return ownGroup(cs[i:j:j], old), true
}

// sameSandboxes reports whether ix indexes this Sandboxes slice.
func sameSandboxes(ix runtimeIndex, sandboxes []Sandbox) bool {
	return ix.sandboxes != nil && len(sandboxes) == ix.sbLen && (len(sandboxes) == 0 || &sandboxes[0] == ix.sbFirst)
}

// sameNode reports whether two copies of the Node say the same.
func sameNode(a, b *APINode) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Ready == b.Ready && a.Reason == b.Reason && a.Message == b.Message && a.LastHeartbeat.Equal(b.LastHeartbeat)
}

// remember keeps what a correlation handed out for the next to start from,
// when the next may (steady sources).
func (c *Correlator) remember(e *env, pods []*PodView) {
	if !steady(e) {
		c.last = lastCall{}
		return
	}
	var node *APINode
	if e.in.APINode != nil {
		n := *e.in.APINode
		node = &n
	}
	c.last = lastCall{pods: pods, podsGen: e.in.PodsGeneration, nPods: len(e.in.Pods), keyGen: c.keyGen,
		now: e.in.Now, api: e.in.APIPods, node: node}
}

// finish finishes a memo's view (env.finish), noting when what it worked
// out changes by itself.
func (c *Correlator) finish(e *env, m *podMemo) *PodView {
	e.until = time.Time{}
	v := e.finish(m)
	m.finUntil = e.until
	return v
}

// timers are when memoised views change by themselves (podMemo.until,
// finUntil), earliest first: a heap with an entry for each pod's next such
// time, and entries made stale by a pod's later changes, dropped when due.
type timers []timer

// timer is when a pod's view may change by itself. A time.Time, compared
// as the views' own deadlines are (by the monotonic clock where both have
// it): a wall clock stepped back does not move it.
type timer struct {
	at  time.Time
	uid string
}

func (h timers) Len() int           { return len(h) }
func (h timers) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timers) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timers) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timers) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// set notes when the pod's memoised view next changes by itself, if it does.
func (h *timers) set(uid string, m *podMemo) {
	if t := m.changesAt(); !t.IsZero() {
		heap.Push(h, timer{t, uid})
	}
}

// due takes out the entries due by now.
func (h *timers) due(now time.Time) []Change {
	var out []Change
	for len(*h) > 0 && !(*h)[0].at.After(now) {
		out = append(out, Change{UID: heap.Pop(h).(timer).uid})
	}
	return out
}

// reset makes the timers those of the memos.
func (h *timers) reset(pods map[string]*podMemo) {
	*h = (*h)[:0]
	for uid, m := range pods {
		if t := m.changesAt(); !t.IsZero() {
			*h = append(*h, timer{t, uid})
		}
	}
	heap.Init(h)
}

// changesAt is when the memo's view, or what finish worked out of it,
// changes by itself (zero: never).
func (m *podMemo) changesAt() time.Time {
	if m.until.IsZero() || (!m.finUntil.IsZero() && m.finUntil.Before(m.until)) {
		return m.finUntil
	}
	return m.until
}
