package lifecycle

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// differentValue returns a value of type t that differs from t's zero value.
func differentValue(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Pointer:
		v.Set(reflect.New(t.Elem()))
	case reflect.Slice:
		v.Set(reflect.MakeSlice(t, 1, 1))
	case reflect.Map:
		v.Set(reflect.MakeMap(t))
		v.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf("v"))
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(t0))
			break
		}
		v.Field(0).Set(differentValue(t.Field(0).Type))
	default:
		panic("differentValue: no case for " + t.String())
	}
	return v
}

// Every field of the memo's inputs takes part in their equality: a field
// added later and not compared would let the Correlator reuse a stale view.
func TestEqualCoversEveryField(t *testing.T) {
	check := func(name string, typ reflect.Type, equal func(a, b reflect.Value) bool) {
		zero := reflect.New(typ).Elem()
		if !equal(zero, zero) {
			t.Errorf("%s: zero value not equal to itself", name)
		}
		for i := 0; i < typ.NumField(); i++ {
			if typ == reflect.TypeFor[Pod]() && typ.Field(i).Name == "Revision" {
				continue // names a record, is not part of the pod (samePod)
			}
			changed := reflect.New(typ).Elem()
			changed.Field(i).Set(differentValue(typ.Field(i).Type))
			if equal(zero, changed) || equal(changed, zero) {
				t.Errorf("%s.%s is not compared", name, typ.Field(i).Name)
			}
			if !equal(changed, changed) {
				t.Errorf("%s.%s: value not equal to itself", name, typ.Field(i).Name)
			}
		}
	}
	check("Pod", reflect.TypeFor[Pod](), func(a, b reflect.Value) bool {
		return podEqual(a.Addr().Interface().(*Pod), b.Addr().Interface().(*Pod))
	})
	check("ContainerStatus", reflect.TypeFor[ContainerStatus](), func(a, b reflect.Value) bool {
		return statusEqual(a.Interface().(ContainerStatus), b.Interface().(ContainerStatus))
	})
	check("ContainerState", reflect.TypeFor[ContainerState](), func(a, b reflect.Value) bool {
		return statusEqual(ContainerStatus{State: a.Interface().(ContainerState)}, ContainerStatus{State: b.Interface().(ContainerState)})
	})
	check("Container", reflect.TypeFor[Container](), func(a, b reflect.Value) bool {
		return containerEqual(a.Addr().Interface().(*Container), b.Addr().Interface().(*Container))
	})
	check("Sandbox", reflect.TypeFor[Sandbox](), func(a, b reflect.Value) bool {
		return sandboxEqual(a.Addr().Interface().(*Sandbox), b.Addr().Interface().(*Sandbox))
	})
	started, alsoStarted := true, true
	if !statusEqual(ContainerStatus{Started: &started}, ContainerStatus{Started: &alsoStarted}) {
		t.Error("Started is compared by pointer, not by value")
	}
}

// A Correlator fed a sequence of related inputs (one byte of the node's
// description changed at a time, the clock moving) returns exactly what a
// fresh Correlate returns for each, and does reuse views along the way.
func TestCorrelatorMatchesCorrelate(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	reused := 0
	for seq := 0; seq < 50; seq++ {
		data := make([]byte, 40+r.IntN(200))
		for i := range data {
			data[i] = byte(r.IntN(256))
		}
		var c Correlator
		var prev Snapshot
		var src promisingSource
		for step := 0; step < 40; step++ {
			if step > 0 && r.IntN(3) > 0 {
				data[r.IntN(len(data))] = byte(r.IntN(256))
			}
			in := fuzzInput(data)
			if seq%4 == 3 {
				src.answer(&in) // records known by identity, answers by generation
			}
			in.Now = t0.Add(time.Duration(r.IntN(30)) * time.Second)
			if seq%2 == 1 {
				// The agent's case: the clock moving on in steps of
				// under a second, the sources answering as it does.
				in.Now = t0.Add(time.Duration(step) * 700 * time.Millisecond)
				for _, h := range []*SourceHealth{&in.Kubelet, &in.Runtime, &in.APIServer} {
					if h.Up {
						h.LastSuccess = in.Now
					}
				}
			}
			got, want := c.Correlate(in), Correlate(in)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seq %d step %d: Correlator and Correlate differ\ngot  %+v\nwant %+v", seq, step, got.Pods, want.Pods)
			}
			for _, p := range got.Pods {
				for _, q := range prev.Pods {
					if p.UID == q.UID && len(p.Containers) > 0 && len(q.Containers) > 0 && &p.Containers[0] == &q.Containers[0] {
						reused++
					}
				}
			}
			prev = got
		}
	}
	if reused == 0 {
		t.Fatal("the Correlator never reused a pod's view")
	}
	t.Logf("views reused %d times", reused)
}

// SameView must compare every field of PodView: this fails when one is added.
func TestSameViewCoversEveryField(t *testing.T) {
	var names []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[PodView]()) {
		names = append(names, f.Name)
	}
	const compared = "Namespace Name UID Phase Stage StageReason UnknownCause UnknownSince StatusFrom KubeletCache Reason Terminating Created Started " +
		"Conditions InKubelet InRuntime Sandbox APIServer Containers Mismatches"
	if got := strings.Join(names, " "); got != compared {
		t.Fatalf("PodView's fields are now\n%s\nSameView compares\n%s", got, compared)
	}
}

// promisingSource hands over an input as sources that keep the promises of
// Input.PodsGeneration, RuntimeGeneration and Pod.Revision do (cri.State,
// the kubelet's Pods API feed): a record equal to the last answer's is that
// record, an equal Sandboxes slice is the last one, a changed pod has a new
// revision, and each answer that changed has a new generation.
type promisingSource struct {
	last Input
	gen  uint64
}

func (s *promisingSource) answer(in *Input) {
	s.gen++
	last := &s.last
	sameRuntime := slices.EqualFunc(in.Sandboxes, last.Sandboxes, func(a, b Sandbox) bool { return sandboxEqual(&a, &b) })
	if sameRuntime {
		in.Sandboxes = last.Sandboxes
	}
	for i, c := range in.Containers {
		if j := slices.IndexFunc(last.Containers, func(o *Container) bool { return containerEqual(o, c) }); j >= 0 {
			in.Containers[i] = last.Containers[j]
		}
	}
	in.RuntimeGeneration = s.gen
	if sameRuntime && slices.Equal(in.Containers, last.Containers) {
		in.RuntimeGeneration = last.RuntimeGeneration
	}
	samePods := len(in.Pods) == len(last.Pods)
	in.Pods = slices.Clone(in.Pods)
	for i, p := range in.Pods {
		if j := slices.IndexFunc(last.Pods, func(o *Pod) bool { return podEqual(o, p) }); j >= 0 {
			in.Pods[i] = last.Pods[j] // the same record
		} else {
			changed := *p // a record is never modified: a new one
			changed.Revision = s.gen
			in.Pods[i] = &changed
		}
		p = in.Pods[i]
		samePods = samePods && p.Revision == last.Pods[i].Revision && p.UID == last.Pods[i].UID
	}
	in.PodsGeneration = s.gen
	if samePods {
		in.PodsGeneration = last.PodsGeneration
	}
	s.last = *in
}
