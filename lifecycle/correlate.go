package lifecycle

import (
	"cmp"
	"slices"
	"time"
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
	if h.FreshFor > 0 {
		staleAfter = h.FreshFor
	}
	switch {
	case !h.Configured:
		return absent
	case !h.Up || h.LastSuccess.IsZero() || now.Sub(h.LastSuccess) > staleAfter:
		return down
	default:
		return fresh
	}
}

// Correlate joins the kubelet's and the runtime's views of a node into one
// Snapshot: a PodView per pod with every container's two views side by side,
// its stage, unknown cause and mismatches.
func Correlate(in Input) Snapshot {
	var c Correlator
	return c.Correlate(in)
}

// Correlate is the package's Correlate, reusing unchanged pods' views.
func (c *Correlator) Correlate(in Input) Snapshot {
	e := newEnv(&in)
	c.rekey(&e)
	if snap, ok := c.incremental(&e); ok {
		return snap
	}
	c.fulls++
	if in.RuntimeGeneration == 0 || in.RuntimeGeneration != c.ixGen {
		var prev runtimeIndex
		if in.RuntimeGeneration != 0 {
			prev = c.ix // records never modified: the same record is the same
		}
		// The index before last is built over: a map only the Correlator
		// holds (memos keep groups, never the map).
		next := indexRuntime(prev, c.spare, in.Sandboxes, in.Containers)
		c.spare, c.ix, c.ixGen = c.ix.byPod, next, in.RuntimeGeneration
	}
	ix := c.ix
	snap := newSnapshot(&in)
	snap.Pods = make([]*PodView, 0, len(in.Pods))
	if c.pods == nil {
		c.pods = make(map[string]*podMemo, len(in.Pods))
	}
	c.gen++
	sameSet := c.order != nil
	for i := range in.Pods {
		pod := in.Pods[i]
		m := c.pods[pod.UID]
		if m != nil && m.gen == c.gen {
			continue // one view per pod, even if a source repeats one
		}
		old := m
		m = c.view(&e, pod, ix.byPod[pod.UID], ix.sandboxes[pod.UID])
		m.gen = c.gen
		// The same pods, by the same names (a name is the order's).
		sameSet = sameSet && old != nil && old.pod.Namespace == m.pod.Namespace && old.pod.Name == m.pod.Name
	}
	for uid, m := range c.pods {
		if m.gen != c.gen {
			delete(c.pods, uid)
			sameSet = false
		}
	}
	if !sameSet {
		c.sortPods()
	}
	for _, uid := range c.order {
		snap.Pods = append(snap.Pods, c.finish(&e, c.pods[uid]))
	}
	c.last = lastCall{}
	sorted := true
	for uid, cs := range ix.byPod {
		if c.pods[uid] != nil {
			continue
		}
		if v, ok := e.runtimeOnlyPod(uid, cs, ix.sandboxes[uid]); ok {
			snap.Pods, sorted = append(snap.Pods, &v), false
		}
	}
	if !sorted {
		slices.SortFunc(snap.Pods, func(a, b *PodView) int { return podOrder(a.Namespace, a.Name, a.UID, b.Namespace, b.Name, b.UID) })
	} else {
		c.timers.reset(c.pods)
		c.remember(&e, snap.Pods)
	}
	return snap
}

// newSnapshot is a snapshot of the input's node and sources, without pods.
func newSnapshot(in *Input) Snapshot {
	return Snapshot{
		Node: in.Node,
		At:   in.Now,
		Sources: map[string]SourceHealth{
			SourceRuntime: in.Runtime, SourceKubelet: in.Kubelet, SourceAPIServer: in.APIServer,
			SourceKubeletLink: linkHealth(*in),
		},
	}
}

// sortPods orders the memoised pods' UIDs as a Snapshot orders its pods,
// once per change of the set of pods.
func (c *Correlator) sortPods() {
	c.order = c.order[:0]
	for uid := range c.pods {
		c.order = append(c.order, uid)
	}
	slices.SortFunc(c.order, func(a, b string) int {
		pa, pb := &c.pods[a].pod, &c.pods[b].pod
		return podOrder(pa.Namespace, pa.Name, pa.UID, pb.Namespace, pb.Name, pb.UID)
	})
	clear(c.pos)
	clear(c.podAt) // of pods gone, too
	if c.pos == nil {
		c.pos = make(map[string]int, len(c.order))
	}
	for i, uid := range c.order {
		c.pos[uid] = i
	}
}

// podOrder is a Snapshot's order of pods: namespace, name, UID.
func podOrder(nsA, nameA, uidA, nsB, nameB, uidB string) int {
	return cmp.Or(cmp.Compare(nsA, nsB), cmp.Compare(nameA, nameB), cmp.Compare(uidA, uidB))
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
	// facts are the cause rules' input for the pod being finished.
	facts podFacts
}

func newEnv(in *Input) env {
	stale := cmp.Or(in.StaleAfter, DefaultStaleAfter)
	e := env{
		stale:     stale,
		apiPods:   make(map[string]*APIPod, len(in.APIPods)),
		kubelet:   sourceHealth(in.Kubelet, in.Now, stale),
		runtime:   sourceHealth(in.Runtime, in.Now, stale),
		apiserver: sourceHealth(in.APIServer, in.Now, stale),
		in:        in,
	}
	for i := range in.APIPods {
		p := &in.APIPods[i]
		e.apiPods[p.UID] = p
		if p.MirrorOf != "" {
			// A static pod is known to the kubelet by its config hash; the
			// API server's copy is its mirror pod.
			e.apiPods[p.MirrorOf] = p
		}
	}
	if e.kubelet == down && in.KubeletLink.CutOff && in.Kubelet.Synced() {
		// A kubelet cut off from the API server cannot review podlife's
		// credentials and stops answering it; what it would serve is the
		// frozen copy podlife already has. Its last answer stands, and the
		// runtime tells the rest.
		e.kubelet = fresh
	}
	return e
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

// finish completes a kubelet-known pod's memoised view with what is worked
// out on every call: what the API server's copy of the pod says about it,
// and the pod's cause. The memo's slices are not modified. The view is the
// one finish gave last time (the same pointer) when it came out the same.
func (e *env) finish(m *podMemo) *PodView {
	f := &e.facts
	*f = podFacts{view: m.view, pod: &m.pod, local: m.view.UnknownCause}
	v := &f.view
	v.APIServer = e.apiPods[m.pod.UID]
	if e.apiserver == fresh && e.runtime == fresh && v.APIServer != nil {
		// The kubelet's own live status, where podlife has it, is compared
		// first: the finding names what the copy lacks, and since when.
		found := e.apiBehind(&m.pod, v, &m.behindSince)
		if len(found) == 0 {
			found = e.apiMismatches(&m.pod, v)
		}
		f.apiStale = len(found) > 0
		if f.apiStale {
			v.Mismatches = append(slices.Clip(v.Mismatches), found...)
		}
	}
	e.applyCause(f)
	if m.out == nil || !SameView(m.out, v) {
		out := *v
		m.out = &out
	}
	return m.out
}
