package cri

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/podlife/podlife/lifecycle"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// splitList reads ID and state straight from the wire exactly as the
// protobuf decoder does, and each entry decodes in full to the original.
func TestSplitList(t *testing.T) {
	want := &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{
		{Id: "a", State: runtimeapi.ContainerState_CONTAINER_RUNNING, Labels: map[string]string{"io.kubernetes.pod.uid": "u"},
			Annotations: map[string]string{"io.kubernetes.container.hash": "1"}, Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2}},
		{Id: "b"}, // CONTAINER_CREATED is 0: not on the wire
		{Id: "c", State: runtimeapi.ContainerState_CONTAINER_EXITED, CreatedAt: 42, ImageRef: "sha256:x"},
	}}
	b, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := splitList(b, fieldContainerState)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Containers) {
		t.Fatalf("%d entries, want %d", len(got), len(want.Containers))
	}
	for i, l := range got {
		w := want.Containers[i]
		if string(l.id) != w.Id || l.state != int32(w.State) {
			t.Errorf("entry %d: id %q state %d, want %q %s", i, l.id, l.state, w.Id, w.State)
		}
		c := &runtimeapi.Container{}
		if err := l.decode(c); err != nil || !proto.Equal(c, w) {
			t.Errorf("entry %d decodes to %v (%v), want %v", i, c, err, w)
		}
	}
	if got, err := splitList(nil, fieldContainerState); err != nil || len(got) != 0 {
		t.Errorf("empty answer: %v, %v", got, err)
	}
}

func TestSplitListGarbage(t *testing.T) {
	valid, _ := proto.Marshal(&runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: "abc"}}})
	tests := []struct {
		name string
		in   []byte
		err  string // prefix, then the protobuf error's last words (its spacing varies on purpose)
	}{
		{"truncated", valid[:len(valid)-1], "list answer: unexpected EOF"},
		{"bad tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "list answer: integer overflow"},
		{"bad container", []byte{0x0a, 0x02, 0x0a, 0x05}, "list answer: item: unexpected EOF"},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n"), "list answer: "},
	}
	for _, tc := range tests {
		prefix, words, _ := strings.Cut(tc.err, ": ")
		_, err := splitList(tc.in, fieldContainerState)
		if err == nil || !strings.HasPrefix(err.Error(), prefix+":") || !strings.HasSuffix(err.Error(), words) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestSplitListSandboxes(t *testing.T) {
	want := &runtimeapi.ListPodSandboxResponse{Items: []*runtimeapi.PodSandbox{
		{Id: "s1", State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY, Metadata: &runtimeapi.PodSandboxMetadata{Uid: "u", Attempt: 1},
			Labels: map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"}, CreatedAt: 7},
		{Id: "s2"}, // SANDBOX_READY is 0: not on the wire
	}}
	b, _ := proto.Marshal(want)
	got, err := splitList(b, fieldSandboxState)
	if err != nil || len(got) != 2 {
		t.Fatalf("%v, %v", got, err)
	}
	for i, l := range got {
		w := want.Items[i]
		var sb runtimeapi.PodSandbox
		if err := l.decode(&sb); string(l.id) != w.Id || l.state != int32(w.State) || err != nil || !proto.Equal(&sb, w) {
			t.Errorf("item %d: id %q state %d decoded %v (%v), want %v", i, l.id, l.state, &sb, err, w)
		}
	}
}

// The source keeps its containers sorted through any sequence of additions,
// replacements (a state change keeps the place; a new attempt gets its own)
// and deletions, as a full sort would order them.
func TestContainerOrderKeptIncrementally(t *testing.T) {
	s, err := New(Config{Endpoint: "unix:///nonexistent.sock"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	states := []lifecycle.RuntimeState{lifecycle.RuntimeCreated, lifecycle.RuntimeRunning, lifecycle.RuntimeExited}
	s.State() // builds the (empty) order
	for step := 0; step < 3000; step++ {
		id := fmt.Sprintf("c%d", r.IntN(60))
		s.mu.Lock()
		if r.IntN(5) == 0 {
			s.deleteContainer(id)
		} else {
			n := r.IntN(60)
			s.setContainer(&lifecycle.Container{ID: id, PodUID: fmt.Sprintf("u%d", n%7), Name: fmt.Sprintf("n%d", n%3),
				Attempt: uint32(n % 4), State: states[r.IntN(3)]})
		}
		s.changed(true)
		kept := s.order != nil
		s.mu.Unlock()
		if !kept {
			t.Fatalf("step %d: the order was lost and must be sorted again", step)
		}
		if step%50 != 0 {
			continue
		}
		got := s.State().Containers
		want := make([]*lifecycle.Container, 0, len(s.containers))
		for _, c := range s.containers {
			want = append(want, c)
		}
		slices.SortFunc(want, containerOrder)
		if len(got) != len(want) {
			t.Fatalf("step %d: %d containers in State, %d in the source", step, len(got), len(want))
		}
		for i := range got {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("step %d: State[%d] = %+v, want %+v", step, i, got[i], *want[i])
			}
		}
	}
}
