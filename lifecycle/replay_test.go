package lifecycle_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The generated node in testdata (the kubelet's /pods and the runtime's CRI
// answers, written by hack/genfixtures from internal/fixtures with the real
// API types) replays through the real decoders into the stages it was
// generated with. Every file must decode: a damaged one fails the test.
func TestReplayGeneratedNode(t *testing.T) {
	pods, err := kubelet.Decode(read(t, "kubelet-pods.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sbl runtimeapi.ListPodSandboxResponse
	var cl runtimeapi.ListContainersResponse
	if err := protojson.Unmarshal(read(t, "cri-sandboxes.json"), &sbl); err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(read(t, "cri-containers.json"), &cl); err != nil {
		t.Fatal(err)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(read(t, "cri-container-statuses.json"), &raw); err != nil {
		t.Fatalf("cri-container-statuses.json: %v", err)
	}
	if len(raw) != len(cl.Containers) {
		t.Fatalf("%d container statuses for %d containers", len(raw), len(cl.Containers))
	}
	statuses := map[string]*runtimeapi.ContainerStatus{}
	for _, r := range raw {
		var s runtimeapi.ContainerStatusResponse
		if err := protojson.Unmarshal(r, &s); err != nil {
			t.Fatalf("cri-container-statuses.json: %v", err)
		}
		statuses[s.Status.Id] = s.Status
	}
	sbs := map[string]*lifecycle.Sandbox{}
	var sandboxes []lifecycle.Sandbox
	for _, sb := range sbl.Items {
		v := cri.ConvertSandbox(sb)
		sbs[v.ID] = &v
		sandboxes = append(sandboxes, v)
	}
	var containers []*lifecycle.Container
	for _, c := range cl.Containers {
		if statuses[c.Id] == nil {
			t.Fatalf("container %s has no status in cri-container-statuses.json", c.Id)
		}
		v := cri.ConvertContainer(c, statuses[c.Id], sbs)
		containers = append(containers, &v)
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: now}
	snap := lifecycle.Correlate(lifecycle.Input{Node: "node-a", Now: now, Pods: pods, Kubelet: up,
		Sandboxes: sandboxes, Containers: containers, Runtime: up})
	var want map[string]string
	if err := json.Unmarshal(read(t, "expected-stages.json"), &want); err != nil {
		t.Fatalf("expected-stages.json: %v", err)
	}
	if len(snap.Pods) != len(want) {
		t.Fatalf("%d pods, want %d", len(snap.Pods), len(want))
	}
	for _, p := range snap.Pods {
		if string(p.Stage) != want[p.Key()] {
			t.Errorf("%s: %s (%s), generated as %s", p.Key(), p.Stage, p.StageReason, want[p.Key()])
		}
		if len(p.Mismatches) != 0 {
			t.Errorf("%s: mismatches %+v in a node whose views agree", p.Key(), p.Mismatches)
		}
	}
}
