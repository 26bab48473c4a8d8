package lifecycle

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestIncrementalMatchesCorrelate: a node whose sources keep change logs (as
// cri.Source and the kubelet's Pods API feed do) changes a pod or two at a
// time while the clock moves on; now and then a source goes down, a pod
// comes or goes, a sandbox stops, the runtime relists, the API server's copy
// moves. At every step the Correlator, taking the one-change path where it
// can, hands out what a Correlator that looks at every pod does (not a
// fresh Correlate: a view may depend on what was seen before, podHistory),
// and both paths are taken.
func TestIncrementalMatchesCorrelate(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	var fast, steps int
	for seq := 0; seq < 30; seq++ {
		w := newWorld(6 + r.IntN(10))
		var c, full Correlator // full is never told what changed
		for step := 0; step < 80; step++ {
			w.step(r)
			in := w.input()
			untold := in
			untold.PodsChanges, untold.RuntimeChanges = ChangeLog{}, ChangeLog{}
			before := c.incrementals
			got, want := c.Correlate(in), full.Correlate(untold)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seq %d step %d (%s; one-change path: %v): Correlator and Correlate differ: %s",
					seq, step, w.did, c.incrementals > before, firstDifference(got, want))
			}
			fast += int(c.incrementals - before)
			steps++
		}
	}
	t.Logf("%d of %d correlations took the one-change path", fast, steps)
	if fast < steps/4 || fast == steps {
		t.Fatalf("%d of %d correlations took the one-change path: want both paths taken, the short one often", fast, steps)
	}
}

// firstDifference is the first pod two snapshots differ in, both ways.
func firstDifference(got, want Snapshot) string {
	if len(got.Pods) != len(want.Pods) {
		return fmt.Sprintf("%d pods, want %d", len(got.Pods), len(want.Pods))
	}
	for i := range got.Pods {
		if !reflect.DeepEqual(got.Pods[i], want.Pods[i]) {
			return fmt.Sprintf("\ngot  %+v\nwant %+v", *got.Pods[i], *want.Pods[i])
		}
	}
	return "the pods are the same; the rest differs"
}

// world is a node as its sources see it, keeping the promises of Input's
// generations, records and change logs.
type world struct {
	now                  time.Time
	pods                 map[string]*Pod         // the kubelet's, by UID
	rt                   map[string][]*Container // the runtime's, by pod UID
	sandboxes            []Sandbox
	api                  []APIPod
	node                 *APINode
	podsGen, rtGen, next uint64
	podsLog, rtLog       ChangeLog
	runtimeDown          time.Time // zero: up
	stray                string    // a pod only the runtime knows
	did                  string
}

func newWorld(n int) *world {
	w := &world{now: t0, pods: map[string]*Pod{}, rt: map[string][]*Container{}, podsGen: 1, rtGen: 1}
	w.podsLog.Lose(1)
	w.rtLog.Lose(1)
	for i := 0; i < n; i++ {
		w.addPod(fmt.Sprintf("p%02d", i))
	}
	return w
}

func (w *world) input() Input {
	in := Input{Node: "node-a", Now: w.now, Kubelet: upH(), Runtime: upH(), APIServer: upH(), Sandboxes: w.sandboxes,
		PodsGeneration: w.podsGen, RuntimeGeneration: w.rtGen, PodsChanges: w.podsLog, RuntimeChanges: w.rtLog,
		APIPods: w.api, APINode: w.node}
	in.Kubelet.LastSuccess, in.Runtime.LastSuccess, in.APIServer.LastSuccess = w.now, w.now, w.now
	if !w.runtimeDown.IsZero() {
		// What a source says of its failure moves while it stays down.
		in.Runtime = SourceHealth{Configured: true, LastSuccess: w.runtimeDown,
			LastError: fmt.Sprintf("connection refused (%s)", w.now.Sub(w.runtimeDown))}
	}
	for _, uid := range slices.Sorted(maps.Keys(w.pods)) {
		in.Pods = append(in.Pods, w.pods[uid])
	}
	for _, uid := range slices.Sorted(maps.Keys(w.rt)) {
		in.Containers = append(in.Containers, w.rt[uid]...)
	}
	return in
}

// step changes the node a little and moves the clock on.
func (w *world) step(r *rand.Rand) {
	w.now = w.now.Add(time.Duration(100+r.IntN(2500)) * time.Millisecond)
	if !w.runtimeDown.IsZero() && r.IntN(3) == 0 {
		w.did = "the runtime comes back"
		w.runtimeDown = time.Time{}
		return
	}
	uids := slices.Sorted(maps.Keys(w.pods))
	uid := uids[r.IntN(len(uids))]
	switch k := r.IntN(26); {
	case k < 9:
		w.did = "a container restarts"
		w.restart(uid, fmt.Sprintf("c%d", r.IntN(2)))
	case k < 14:
		w.did = "the kubelet catches up"
		w.catchUp(uid)
	case k == 14:
		w.did = "a pod comes"
		w.addPod(fmt.Sprintf("q%d", w.next))
	case k == 15 && len(uids) > 2:
		w.did = "a pod goes"
		w.removePod(uid)
	case k == 16:
		w.did = "the runtime goes down"
		w.runtimeDown = w.now
	case k == 17:
		w.did = "the API server's copy of a pod moves"
		w.api = slices.Clone(w.api)
		i := slices.IndexFunc(w.api, func(a APIPod) bool { return a.UID == uid })
		w.api[i].Ready = []string{"True", "False"}[r.IntN(2)]
	case k == 18:
		w.did = "the node's Ready moves"
		w.node = &APINode{Ready: []string{"True", "Unknown"}[r.IntN(2)], LastHeartbeat: w.now.Add(-time.Minute)}
	case k == 19:
		w.did = "a sandbox stops"
		w.sandboxes = slices.Clone(w.sandboxes)
		i := slices.IndexFunc(w.sandboxes, func(s Sandbox) bool { return s.PodUID == uid })
		w.sandboxes[i].State = SandboxNotReady
		w.rtChanged(uid)
	case k == 20:
		w.did = "the runtime relists"
		w.rtGen++
		w.rtLog.Lose(w.rtGen)
	case k == 21 && w.stray == "":
		w.did = "a container of a pod the kubelet does not know"
		w.stray = fmt.Sprintf("stray-%d", w.next)
		w.next++
		w.rt[w.stray] = []*Container{{ID: w.stray, PodUID: w.stray, PodName: w.stray, PodNamespace: "default", Name: "c",
			State: RuntimeRunning, CreatedAt: w.now, StartedAt: w.now}}
		w.rtChanged(w.stray)
	case k == 21:
		w.did = "the runtime removes that container"
		delete(w.rt, w.stray)
		w.rtChanged(w.stray)
		w.stray = ""
	case k == 22:
		w.did = "the kubelet answers, nothing changed"
		w.podsGen++ // its health moved
	default:
		w.did = "the clock moves on"
	}
}

func (w *world) podsChanged(uid string) { w.podsGen++; w.podsLog.Note(w.podsGen, uid) }
func (w *world) rtChanged(uid string)   { w.rtGen++; w.rtLog.Note(w.rtGen, uid) }

// addPod starts a pod of two containers, running and agreed on.
func (w *world) addPod(name string) {
	w.next++
	uid := "uid-" + name
	w.sandboxes = append(slices.Clip(w.sandboxes), Sandbox{ID: "sb-" + name, PodUID: uid, PodName: name,
		PodNamespace: "default", State: SandboxReady, CreatedAt: w.now})
	for _, c := range []string{"c0", "c1"} {
		w.rt[uid] = append(w.rt[uid], &Container{ID: fmt.Sprintf("%s-%s-0", name, c), SandboxID: "sb-" + name, PodUID: uid,
			PodName: name, PodNamespace: "default", Name: c, State: RuntimeRunning, CreatedAt: w.now, StartedAt: w.now})
	}
	w.api = append(slices.Clip(w.api), APIPod{UID: uid, Namespace: "default", Name: name, Phase: PhaseRunning, Ready: "True"})
	w.rtChanged(uid)
	w.catchUp(uid)
}

func (w *world) removePod(uid string) {
	delete(w.pods, uid)
	delete(w.rt, uid)
	w.sandboxes = slices.DeleteFunc(slices.Clone(w.sandboxes), func(s Sandbox) bool { return s.PodUID == uid })
	w.api = slices.DeleteFunc(slices.Clone(w.api), func(a APIPod) bool { return a.UID == uid })
	w.podsChanged(uid)
	w.rtChanged(uid)
}

// restart ends a container's attempt and starts the next: new records,
// never a record modified; the kubelet has not caught up yet.
func (w *world) restart(uid, name string) {
	var kept []*Container
	for _, c := range w.rt[uid] {
		switch {
		case c.Name != name:
			kept = append(kept, c)
		case c.State == RuntimeRunning:
			ended := *c
			ended.State, ended.ExitCode, ended.Reason, ended.FinishedAt = RuntimeExited, 1, "Error", w.now
			next := *c
			next.ID, next.Attempt, next.CreatedAt, next.StartedAt = fmt.Sprintf("%s-%s-%d", c.PodName, name, c.Attempt+1), c.Attempt+1, w.now, w.now
			kept = append(kept, &ended, &next)
		}
	}
	slices.SortFunc(kept, func(a, b *Container) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Attempt, b.Attempt))
	})
	w.rt[uid] = kept
	w.rtChanged(uid)
}

// catchUp writes the pod's status as the kubelet would from the runtime's
// records: a new record with a new revision.
func (w *world) catchUp(uid string) {
	cs := w.rt[uid]
	if len(cs) == 0 {
		return
	}
	p := &Pod{UID: uid, Namespace: "default", Name: cs[0].PodName, Phase: PhaseRunning, RestartPolicy: "Always",
		Created: t0.Add(-time.Hour), Revision: w.podsGen + 1, Conditions: conds("True", "True", "True", "True")}
	for i, c := range cs {
		if i+1 < len(cs) && cs[i+1].Name == c.Name {
			continue // an earlier attempt: the next one is the status
		}
		st := ContainerStatus{Name: c.Name, Kind: KindRegular, Ready: true, ContainerID: "containerd://" + c.ID,
			RestartCount: int32(c.Attempt), State: ContainerState{Kind: StateRunning, StartedAt: c.StartedAt}}
		if i > 0 && cs[i-1].Name == c.Name {
			prev := cs[i-1]
			st.LastState = ContainerState{Kind: StateTerminated, ExitCode: prev.ExitCode, Reason: prev.Reason,
				StartedAt: prev.StartedAt, FinishedAt: prev.FinishedAt, ContainerID: "containerd://" + prev.ID}
		}
		p.Containers = append(p.Containers, st)
	}
	w.pods[uid] = p
	w.podsChanged(uid)
}

func TestChangeLog(t *testing.T) {
	var l ChangeLog
	if _, ok := l.Since(0, 0); ok {
		t.Fatal("a log that covers nothing covered generation 0")
	}
	l.Lose(4)
	l.Note(5, "a", "b")
	l.Note(7, "c")
	for _, tc := range []struct {
		g, now uint64
		want   string
		ok     bool
	}{
		{4, 7, "[a b c]", true}, {5, 7, "[c]", true}, {6, 7, "[c]", true}, {7, 7, "[]", true},
		{4, 5, "[a b]", true}, {3, 7, "[]", false}, {8, 7, "[]", false},
	} {
		got, ok := l.Since(tc.g, tc.now)
		var uids []string
		for _, c := range got {
			uids = append(uids, c.UID)
		}
		if s := fmt.Sprint(uids); ok != tc.ok || (ok && s != tc.want) {
			t.Errorf("Since(%d, %d) = %s, %v; want %s, %v", tc.g, tc.now, s, ok, tc.want, tc.ok)
		}
	}
	// Past its bound, the log forgets its older half, a generation whole.
	var big ChangeLog
	for gen := uint64(1); gen <= maxChangeLog; gen++ {
		big.Note(gen, "x", "y")
	}
	if len(big.Entries) > maxChangeLog {
		t.Fatalf("%d entries, bound %d", len(big.Entries), maxChangeLog)
	}
	if got, ok := big.Since(big.From-1, maxChangeLog); ok {
		t.Fatalf("a forgotten generation still covered: %d entries", len(got))
	}
	got, ok := big.Since(big.From, maxChangeLog)
	if !ok || len(got) != 2*int(maxChangeLog-big.From) {
		t.Fatalf("from %d: %d entries, %v; want %d", big.From, len(got), ok, 2*(maxChangeLog-big.From))
	}
}
