package cri

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// splitContainers reads ID and state straight from the wire exactly as the
// protobuf decoder does, and each entry decodes in full to the original.
func TestSplitContainers(t *testing.T) {
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
	got, err := splitContainers(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Containers) {
		t.Fatalf("%d entries, want %d", len(got), len(want.Containers))
	}
	for i, l := range got {
		w := want.Containers[i]
		if string(l.id) != w.Id || l.state != w.State {
			t.Errorf("entry %d: id %q state %s, want %q %s", i, l.id, l.state, w.Id, w.State)
		}
		c, err := l.decode()
		if err != nil || !proto.Equal(c, w) {
			t.Errorf("entry %d decodes to %v (%v), want %v", i, c, err, w)
		}
	}
	if got, err := splitContainers(nil); err != nil || len(got) != 0 {
		t.Errorf("empty answer: %v, %v", got, err)
	}
}

func TestSplitContainersGarbage(t *testing.T) {
	valid, _ := proto.Marshal(&runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{{Id: "abc"}}})
	tests := []struct {
		name string
		in   []byte
		err  string // prefix, then the protobuf error's last words (its spacing varies on purpose)
	}{
		{"truncated", valid[:len(valid)-1], "list containers answer: unexpected EOF"},
		{"bad tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "list containers answer: integer overflow"},
		{"bad container", []byte{0x0a, 0x02, 0x0a, 0x05}, "list containers answer: container: unexpected EOF"},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n"), "list containers answer: "},
	}
	for _, tc := range tests {
		prefix, words, _ := strings.Cut(tc.err, ": ")
		_, err := splitContainers(tc.in)
		if err == nil || !strings.HasPrefix(err.Error(), prefix+":") || !strings.HasSuffix(err.Error(), words) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}
