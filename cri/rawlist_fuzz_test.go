package cri

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/internal/fixtures"
)

// fullItem is one item of a list answer as the generated protobuf code
// decodes it.
type fullItem struct {
	id    string
	state int32
	msg   proto.Message
}

// fullList decodes a ListPodSandboxResponse (sandboxes) or a
// ListContainersResponse in full with proto.Unmarshal.
func fullList(b []byte, sandboxes bool) ([]fullItem, error) {
	var out []fullItem
	if sandboxes {
		var l runtimeapi.ListPodSandboxResponse
		if err := proto.Unmarshal(b, &l); err != nil {
			return nil, err
		}
		for _, it := range l.Items {
			out = append(out, fullItem{it.GetId(), int32(it.GetState()), it})
		}
		return out, nil
	}
	var l runtimeapi.ListContainersResponse
	if err := proto.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	for _, it := range l.Containers {
		out = append(out, fullItem{it.GetId(), int32(it.GetState()), it})
	}
	return out, nil
}

// stateField and newItem are the wire field of an item's state and an empty
// item, for sandboxes or containers.
func stateField(sandboxes bool) protowire.Number {
	if sandboxes {
		return fieldSandboxState
	}
	return fieldContainerState
}

func newItem(sandboxes bool) proto.Message {
	if sandboxes {
		return &runtimeapi.PodSandbox{}
	}
	return &runtimeapi.Container{}
}

// FuzzSplitList checks the hand-written CRI list parser against the
// generated protobuf decoder on arbitrary bytes:
//   - it never panics;
//   - it rejects only what proto.Unmarshal rejects too, with a "list answer:"
//     error;
//   - whatever both accept, they agree on the number of items and on each
//     item's ID and state, and each item's raw bytes decode to the very item
//     the full decode holds;
//   - when it accepts an answer that the full decode rejects (an item broken
//     below the ID and state, which a relist skips for known items), decoding
//     the items one by one, as a relist does for new ones, fails too.
//
// The corpus (testdata/fuzz/FuzzSplitList) holds the recorded node's
// listings and hand-made edge cases; the recorded listings are added here
// too so that they stay current with internal/fixtures.
func FuzzSplitList(f *testing.F) {
	n := fixtures.Build()
	for _, m := range []struct {
		msg       proto.Message
		sandboxes bool
	}{{n.Sandboxes, true}, {n.Containers, false}} {
		b, err := proto.Marshal(m.msg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, m.sandboxes)
	}
	f.Fuzz(func(t *testing.T, data []byte, sandboxes bool) {
		got, err := splitList(data, stateField(sandboxes))
		want, werr := fullList(data, sandboxes)
		if err != nil {
			if werr == nil {
				t.Fatalf("splitList rejects what proto.Unmarshal accepts (%d items): %v", len(want), err)
			}
			if !strings.HasPrefix(err.Error(), "list answer: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line starting %q", err, "list answer: ")
			}
			return
		}
		if werr != nil {
			for _, l := range got {
				if l.decode(newItem(sandboxes)) != nil {
					return
				}
			}
			t.Fatalf("splitList accepts %d items that each decode, but the full decode fails: %v", len(got), werr)
		}
		if len(got) != len(want) {
			t.Fatalf("splitList: %d items, full decode: %d", len(got), len(want))
		}
		for i, l := range got {
			w := want[i]
			if string(l.id) != w.id || l.state != w.state {
				t.Fatalf("item %d: splitList id %q state %d, full decode id %q state %d", i, l.id, l.state, w.id, w.state)
			}
			m := newItem(sandboxes)
			if err := l.decode(m); err != nil {
				t.Fatalf("item %d (%q) does not decode alone: %v", i, l.id, err)
			}
			if !proto.Equal(m, w.msg) {
				t.Fatalf("item %d decodes alone to %v, in the list to %v", i, m, w.msg)
			}
		}
	})
}
