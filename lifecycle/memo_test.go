package lifecycle

import (
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
		"Now":                   "the clock: a view that changes with it says when (clock.go)",
		"Pods":                  "compared pod by pod (podMemo.matches)",
		"Sandboxes":             "compared pod by pod",
		"Containers":            "compared pod by pod",
		"APIPods":               "read afresh on every call (finish)",
		"APINode":               "read afresh on every call (finish)",
		"Kubelet.LastSuccess":   "counts through the source's health, which is in the key",
		"Runtime.LastSuccess":   "counts through the source's health",
		"APIServer.LastSuccess": "counts through the source's health",
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
			inKey := !reflect.DeepEqual(keyOf(in), base)
			_, skipped := handled[name]
			switch {
			case !inKey && !skipped:
				t.Errorf("Input.%s is not part of the memo's key", name)
			case inKey && skipped:
				t.Errorf("Input.%s is in the memo's key, yet listed as handled otherwise (%s)", name, handled[name])
			}
			seen++
		}
	}
	walk("", nil, reflect.TypeFor[Input]())
	if seen < 20 {
		t.Fatalf("walked %d fields of Input", seen)
	}
}

// Only clock.go's methods, and the Correlator's own bookkeeping, read
// Input.Now: a rule that read it directly could make a view that changes
// with time without saying when, and the Correlator would keep it too long.
func TestOnlyTheClockReadsNow(t *testing.T) {
	allowed := map[string]bool{"clock.go": true}
	allowedFuncs := map[string]bool{"Correlate": true, "newEnv": true, "view": true, "newMemoKey": true}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || allowed[name] {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || allowedFuncs[fn.Name.Name] {
				continue
			}
			ast.Inspect(fn, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Now" {
					t.Errorf("%s: %s reads .Now: ask the clock (clock.go) instead", fset.Position(sel.Pos()), fn.Name.Name)
				}
				return true
			})
		}
	}
}
