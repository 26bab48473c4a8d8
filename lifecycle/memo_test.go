package lifecycle

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// A view whose text counts time (a deleted pod's containers still running
// past the end of its grace period: "N s past it") changes with the clock
// alone: a Correlator fed the same input as the clock moves returns what a
// fresh Correlate returns, not the view it built a second ago.
func TestCorrelatorExpiresTimeDependentText(t *testing.T) {
	p := pod("p", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	p.Deleting = t0.Add(-5 * time.Second)
	in := input(p)
	var c Correlator
	for _, d := range []time.Duration{-10 * time.Second, 0, 400 * time.Millisecond, 600 * time.Millisecond, time.Second,
		3 * time.Second, 3*time.Second + 499*time.Millisecond, 3*time.Second + 500*time.Millisecond, time.Minute} {
		in.Now = t0.Add(d)
		got, want := onlyPod(c.Correlate(in)), onlyPod(Correlate(in))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("at t0%+v the Correlator says %q, Correlate says %q", d, got.StageReason, want.StageReason)
		}
	}
}

// The memo's key is the Input less what the Correlator handles otherwise:
// a field added to Input is part of the key unless newMemoKey takes it out
// on purpose, and this test then names it.
func TestMemoKeyCoversInput(t *testing.T) {
	handled := map[string]string{
		"Now":               "the clock: a view that changes with it says when (clock.go)",
		"Pods":              "compared pod by pod (podMemo.matches)",
		"PodsGeneration":    "names the Pods answer: its pods are compared once (podMemo.matches)",
		"RuntimeGeneration": "names the runtime's answer: its records are compared and indexed once (podMemo.matches, Correlator.ix)",
		"PodsChanges.":      "names what changed between two generations: which pods the one-change path looks at (Correlator.incremental)",
		"RuntimeChanges.":   "names what changed between two generations: which pods the one-change path looks at (Correlator.incremental)",
		"Sandboxes":         "compared pod by pod",
		"Containers":        "compared pod by pod",
		"APIPods":           "read afresh on every call (finish)",
		"APINode":           "read afresh on every call (finish)",
		"Kubelet.":          "read by the cause rules on every call; in the key as its health class",
		"Runtime.":          "read by the cause rules on every call; in the key as its health class",
		"APIServer.":        "read by the cause rules on every call; in the key as its health class",
		"Readiness[].At":    "when the prober's result was seen: the view shows only the result",
	}
	isHandled := func(name string) bool {
		for h := range handled {
			if name == h || (strings.HasSuffix(h, ".") && strings.HasPrefix(name, h)) {
				return true
			}
		}
		return false
	}
	keyOf := func(in Input) memoKey {
		e := newEnv(&in)
		return newMemoKey(&e)
	}
	base := keyOf(Input{})
	seen := 0
	var walk func(prefix string, index []int, typ reflect.Type)
	walk = func(prefix string, index []int, typ reflect.Type) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, idx := prefix+f.Name, append(slices.Clone(index), i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(name+".", idx, f.Type)
				continue
			}
			var in Input
			field := reflect.ValueOf(&in).Elem().FieldByIndex(idx)
			if f.Type.Kind() == reflect.Map {
				field.Set(reflect.MakeMap(f.Type))
				field.SetMapIndex(reflect.ValueOf("k"), reflect.Zero(f.Type.Elem()))
			} else {
				field.Set(differentValue(f.Type))
			}
			inKey := !reflect.DeepEqual(keyOf(in).in, base.in) // the health classes apart
			switch {
			case !inKey && !isHandled(name):
				t.Errorf("Input.%s is not part of the memo's key", name)
			case inKey && isHandled(name):
				t.Errorf("Input.%s is in the memo's key, yet listed as handled otherwise", name)
			}
			seen++
		}
	}
	walk("", nil, reflect.TypeFor[Input]())
	if seen < 20 {
		t.Fatalf("walked %d fields of Input", seen)
	}
	// Of the prober's readiness, the result is in the key, not when it was seen.
	r := func(ready bool, at time.Time) Input {
		return Input{Readiness: map[string]ProbeReadiness{"u/c": {Ready: ready, At: at}}}
	}
	if !reflect.DeepEqual(keyOf(r(true, t0)), keyOf(r(true, t0.Add(time.Second)))) || reflect.DeepEqual(keyOf(r(true, t0)), keyOf(r(false, t0))) {
		t.Error("Readiness: the key follows when the result was seen, or not the result")
	}
}

// What moves on every answer of a healthy source (its latency, its last
// success) or of the prober (when its result was seen) does not make the
// Correlator build the node's views again.
func TestMemoSurvivesEveryAnswer(t *testing.T) {
	in := cutOff(input(serving("a"), serving("b")))
	in.Readiness = map[string]ProbeReadiness{}
	var c Correlator
	first := c.Correlate(in)
	for i := 1; i <= 3; i++ {
		in.Now = t0.Add(time.Duration(i) * 100 * time.Millisecond)
		for _, h := range []*SourceHealth{&in.Kubelet, &in.Runtime} {
			h.LastSuccess, h.Latency = in.Now, time.Duration(i)*time.Millisecond
		}
		in.Readiness = map[string]ProbeReadiness{"uid-a/app": {Ready: true, At: in.Now}}
		if i == 1 {
			first = c.Correlate(in) // the readiness read: a new input, once
			continue
		}
		got := c.Correlate(in)
		for j := range got.Pods {
			if &got.Pods[j].Containers[0] != &first.Pods[j].Containers[0] {
				t.Fatalf("answer %d: pod %s built again", i, got.Pods[j].Name)
			}
		}
	}
}

// The memoised part of a view reads none of what is read afresh on every
// call: only clock.go reads Input.Now (each of its methods notes when its
// answer changes), and only where views are finished (correlate.go,
// causes.go) are the sources' health and the API server's copies read. A
// rule that read them elsewhere could make a view the Correlator keeps too
// long.
func TestMemoisedViewsReadNoPerCallInput(t *testing.T) {
	perCall := map[string]bool{"Now": true, "Kubelet": true, "Runtime": true, "APIServer": true, "APIPods": true, "APINode": true}
	allowed := map[string]map[string]bool{
		"clock.go":     {"Now": true},
		"correlate.go": {"Kubelet": true, "Runtime": true, "APIServer": true, "APIPods": true, "APINode": true, "Now": true},
		"causes.go":    {"Kubelet": true, "Runtime": true, "APIServer": true, "APIPods": true, "APINode": true},
		// newMemoKey clears them from the key; view and matches read Now for
		// when a memo was built and whether it still holds.
		"memo.go": {"Kubelet": true, "Runtime": true, "APIServer": true, "APIPods": true, "APINode": true, "Now": true},
		// The one-change path compares them with the last call's to tell
		// whether finished views may be handed out again.
		"incremental.go": {"APIPods": true, "APINode": true, "Now": true},
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || !perCall[sel.Sel.Name] || allowed[name][sel.Sel.Name] {
				return true
			}
			if in, ok := sel.X.(*ast.SelectorExpr); ok && in.Sel.Name == "in" {
				t.Errorf("%s: reads e.in.%s where a memoised view is built: ask the clock (clock.go) or finish the view in finish/causes.go",
					fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

// Within one answer of a source (the same non-zero PodsGeneration, or
// RuntimeGeneration) its part of a pod is compared once; a new answer, or
// none named (0), is compared again: a change in a new answer is seen.
func TestGenerationsSkipOnlyTheSameAnswer(t *testing.T) {
	views := map[string]func(in *Input, gen uint64) func(PodView) bool{
		"kubelet": func(in *Input, gen uint64) func(PodView) bool {
			in.Pods = slices.Clone(in.Pods)
			in.Pods[0].Phase, in.PodsGeneration = PhaseFailed, gen
			return func(v PodView) bool { return v.Phase == PhaseFailed }
		},
		"runtime": func(in *Input, gen uint64) func(PodView) bool {
			exited := *in.Containers[0]
			exited.State, exited.ExitCode, exited.FinishedAt = RuntimeExited, 1, t0
			in.Containers, in.RuntimeGeneration = []*Container{&exited}, gen
			return func(v PodView) bool {
				rt := containerOf(t, v, "app").Runtime
				return rt != nil && rt.State == RuntimeExited
			}
		},
	}
	for view, change := range views {
		for _, tc := range []struct {
			name          string
			before, after uint64
			wantSeen      bool
		}{
			{"a new answer", 1, 2, true},
			{"no answer named", 0, 0, true},
			{"the same answer (a source's promise: nothing changed)", 1, 1, false},
		} {
			t.Run(view+"/"+tc.name, func(t *testing.T) {
				p := pod("p", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
				in := input(p)
				in.PodsGeneration, in.RuntimeGeneration = tc.before, tc.before
				var c Correlator
				c.Correlate(in)
				in.Now = t0.Add(time.Second)
				c.Correlate(in) // found equal under these generations
				seen := change(&in, tc.after)
				if got := seen(onlyPod(c.Correlate(in))); got != tc.wantSeen {
					t.Errorf("the change seen: %t, want %t", got, tc.wantSeen)
				}
			})
		}
	}
}

// TestNewRuntimeAnswerRegroupsOnlyWhatChanged: under a non-zero
// RuntimeGeneration (records never modified), a new answer that replaced
// one pod's record regroups that pod only: the others keep their group and
// are known by identity, and keep their view (the same pointer). A changed
// record, or the same records under a new sandbox, are seen in a new view.
func TestNewRuntimeAnswerRegroupsOnlyWhatChanged(t *testing.T) {
	a := pod("a", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	b := pod("b", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
	for _, tc := range []struct {
		name   string
		change func(in *Input)
		seen   func(v PodView) bool
	}{
		{"b's record replaced by an exited one", func(in *Input) {
			i := slices.IndexFunc(in.Containers, func(c *Container) bool { return c.PodUID == "uid-b" })
			exited := *in.Containers[i]
			exited.State, exited.ExitCode, exited.FinishedAt = RuntimeExited, 1, t0
			in.Containers = slices.Clone(in.Containers)
			in.Containers[i] = &exited
		}, func(v PodView) bool { return v.Containers[0].Runtime.State == RuntimeExited }},
		{"b's sandbox not ready in a new Sandboxes slice, the same records", func(in *Input) {
			in.Sandboxes = slices.Clone(in.Sandboxes)
			i := slices.IndexFunc(in.Sandboxes, func(s Sandbox) bool { return s.PodUID == "uid-b" })
			in.Sandboxes[i].State = SandboxNotReady
		}, func(v PodView) bool { return v.Sandbox.State == SandboxNotReady }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(a, b)
			in.PodsGeneration, in.RuntimeGeneration = 1, 1
			var c Correlator
			first := c.Correlate(in)
			groupA := c.ix.byPod["uid-a"]
			tc.change(&in)
			in.RuntimeGeneration, in.Now = 2, t0.Add(time.Second)
			snap := c.Correlate(in)
			if !sameArray(c.ix.byPod["uid-a"], groupA) {
				t.Error("the index regrouped pod a, whose records did not change")
			}
			// Views are shared, never modified: a's is the same one, b's new.
			if snap.Pods[0] != first.Pods[0] || snap.Pods[1] == first.Pods[1] || tc.seen(*first.Pods[1]) {
				t.Errorf("views: a the same %t (want true), b the same %t (want false), the first snapshot's b changed %t (want false)",
					snap.Pods[0] == first.Pods[0], snap.Pods[1] == first.Pods[1], tc.seen(*first.Pods[1]))
			}
			if v := *snap.Pods[1]; v.Name != "b" || !tc.seen(v) {
				t.Errorf("the change to pod b not seen: %+v", v)
			}
		})
	}
}

// A pod's Revision names its record: the same non-zero revision promises
// the same pod, which is not compared again (so a change a source failed to
// name goes unseen: the test proves the skip); a new revision, or none, is
// compared.
func TestPodRevisionSkipsOnlyTheSameRecord(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after uint64
		wantSeen      bool
	}{
		{"a new revision", 1, 2, true},
		{"no revision", 0, 0, true},
		{"the same revision (the source's promise: unchanged)", 1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod("p", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true))
			p.Revision = tc.before
			in := input(p)
			var c Correlator
			c.Correlate(in)
			in.Pods = slices.Clone(in.Pods)
			in.Pods[0].Phase, in.Pods[0].Revision, in.Now = PhaseFailed, tc.after, t0.Add(time.Second)
			if got := onlyPod(c.Correlate(in)).Phase == PhaseFailed; got != tc.wantSeen {
				t.Errorf("the change seen: %t, want %t", got, tc.wantSeen)
			}
		})
	}
}

// The runtime's records may come in any order: each pod gets its own
// containers, sorted by name and attempt, whether the records come grouped
// by pod (cri.State's order) or interleaved.
func TestIndexRuntimeGroupsAnyOrder(t *testing.T) {
	rec := func(uid, name string, attempt uint32) *Container {
		return &Container{ID: uid + name + fmt.Sprint(attempt), PodUID: uid, Name: name, Attempt: attempt}
	}
	want := map[string][]string{"a": {"a-app-0", "a-app-1", "a-web-0"}, "b": {"b-app-0", "b-web-0"}, "c": {"c-app-0"}}
	for name, cs := range map[string][]*Container{
		"grouped, sorted": {rec("a", "-app-", 0), rec("a", "-app-", 1), rec("a", "-web-", 0), rec("b", "-app-", 0), rec("b", "-web-", 0), rec("c", "-app-", 0)},
		"interleaved":     {rec("b", "-web-", 0), rec("a", "-web-", 0), rec("c", "-app-", 0), rec("a", "-app-", 1), rec("b", "-app-", 0), rec("a", "-app-", 0)},
		"pods descending": {rec("c", "-app-", 0), rec("b", "-app-", 0), rec("b", "-web-", 0), rec("a", "-app-", 0), rec("a", "-app-", 1), rec("a", "-web-", 0)},
	} {
		ix := indexRuntime(runtimeIndex{}, nil, nil, cs)
		got := map[string][]string{}
		for uid, g := range ix.byPod {
			for _, c := range g {
				got[uid] = append(got[uid], c.ID)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: grouped %v, want %v", name, got, want)
		}
	}
}

// A pod whose records are the same but whose finished view changed (here
// the API server's copy of it: a new copy, then one that says Failed) gets
// a new view; the one handed out before is never modified, so the earlier
// snapshot still says what it said.
func TestChangedFinishIsANewView(t *testing.T) {
	in := input(pod("a", PhaseRunning, conds("True", "True", "True", "True"), cRunning("app", true)))
	in.PodsGeneration, in.RuntimeGeneration = 1, 1
	in.APIServer, in.APINode = upH(), &APINode{Ready: "True"}
	copyOf := func(phase Phase) []APIPod {
		return []APIPod{{UID: "uid-a", Namespace: "default", Name: "a", Phase: phase, Ready: "True"}}
	}
	in.APIPods = copyOf(PhaseRunning)
	var c Correlator
	first := c.Correlate(in)
	in.Now = t0.Add(time.Second)
	if again := c.Correlate(in); again.Pods[0] != first.Pods[0] {
		t.Error("the same inputs a second later gave a new view")
	}
	in.APIPods, in.Now = copyOf(PhaseFailed), t0.Add(2*time.Second)
	next := c.Correlate(in)
	if next.Pods[0] == first.Pods[0] || next.Pods[0].APIServer.Phase != PhaseFailed || len(next.Pods[0].Mismatches) == 0 {
		t.Fatalf("a new copy that disagrees: the same view %t (want false), %+v", next.Pods[0] == first.Pods[0], next.Pods[0])
	}
	if first.Pods[0].APIServer.Phase != PhaseRunning || len(first.Pods[0].Mismatches) != 0 {
		t.Errorf("the earlier snapshot's view was modified: %+v", first.Pods[0])
	}
}
