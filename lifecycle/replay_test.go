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
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The recorded node in testdata (the kubelet's /pods and the runtime's CRI
// answers, written from the real API types) replays through the real
// decoders into the stages it was recorded with.
func TestReplayRecordedNode(t *testing.T) {
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
	json.Unmarshal(read(t, "cri-container-statuses.json"), &raw)
	statuses := map[string]*runtimeapi.ContainerStatus{}
	for _, r := range raw {
		var s runtimeapi.ContainerStatusResponse
		if err := protojson.Unmarshal(r, &s); err != nil {
			t.Fatal(err)
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
	var containers []lifecycle.Container
	for _, c := range cl.Containers {
		containers = append(containers, cri.ConvertContainer(c, statuses[c.Id], sbs))
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: now}
	snap := lifecycle.Correlate(lifecycle.Input{Node: "node-a", Now: now, Pods: pods, Kubelet: up,
		Sandboxes: sandboxes, Containers: containers, Runtime: up})
	var want map[string]string
	json.Unmarshal(read(t, "expected-stages.json"), &want)
	if len(snap.Pods) != len(want) {
		t.Fatalf("%d pods, want %d", len(snap.Pods), len(want))
	}
	for _, p := range snap.Pods {
		if string(p.Stage) != want[p.Key()] {
			t.Errorf("%s: %s (%s), recorded as %s", p.Key(), p.Stage, p.StageReason, want[p.Key()])
		}
		if len(p.Mismatches) != 0 {
			t.Errorf("%s: mismatches %+v in an agreeing recording", p.Key(), p.Mismatches)
		}
	}
}
