package kubelet

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/lifecycle"
)

// FuzzDecode checks the fast /pods decoder against the full one on
// arbitrary bodies:
//   - Decode never panics;
//   - on every body that both Decode and encoding/json into a corev1.PodList
//     accept, Decode extracts exactly what podFromV1 derives from the full
//     decode, pod by pod and field by field;
//   - a Decoder fed the body twice gives Decode's answer both times (the
//     second time from the pods it kept), and so does a Decoder that decoded
//     prev before it; a body Decode rejects is rejected by them too.
//
// The corpus (testdata/fuzz/FuzzDecode) holds the recorded /pods answer
// and hand-made edge cases; prev is an earlier answer of the same kubelet.
func FuzzDecode(f *testing.F) {
	rec := generatedPods(f)
	f.Add(rec, rec)
	f.Add([]byte(nil), rec)
	f.Fuzz(func(t *testing.T, prev, body []byte) {
		want, err := Decode(body)

		var d Decoder
		for i := 1; i <= 2; i++ {
			got, derr := d.Decode(body)
			if (derr == nil) != (err == nil) {
				t.Fatalf("Decoder call %d: error %v, Decode: %v", i, derr, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Decoder call %d differs from Decode:\n got %+v\nwant %+v", i, got, want)
			}
		}
		var after Decoder
		after.Decode(prev)
		got, derr := after.Decode(body)
		if (derr == nil) != (err == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("Decoder after %q: %+v (%v), Decode: %+v (%v)", prev, got, derr, want, err)
		}

		if err != nil {
			return
		}
		var full corev1.PodList
		if json.Unmarshal(body, &full) != nil {
			return // the fast decoder reads less, so it accepts more
		}
		if full.Kind != "PodList" {
			t.Fatalf("Decode accepts kind %q", full.Kind)
		}
		if len(want) != len(full.Items) {
			t.Fatalf("Decode: %d pods, encoding/json: %d", len(want), len(full.Items))
		}
		for i := range full.Items {
			if diff := podDiff(extracted(*want[i]), podFromV1(&full.Items[i])); diff != "" {
				t.Fatalf("pod %d: Decode and encoding/json differ: %s", i, diff)
			}
		}
	})
}

// generatedPods is the recorded node's /pods answer, as hack/genfixtures
// writes it to lifecycle/testdata/kubelet-pods.json.
func generatedPods(t testing.TB) []byte {
	b, err := json.Marshal(fixtures.Build().Pods)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// utc is t in UTC, as the decoder keeps every time.
func utc(t time.Time) time.Time { return t.UTC() }

// stateFromV1 is the lifecycle state of a v1 container state, taken
// independently of the decoder: terminated wins over running over waiting.
func stateFromV1(s corev1.ContainerState) lifecycle.ContainerState {
	switch {
	case s.Terminated != nil:
		x := s.Terminated
		return lifecycle.ContainerState{Kind: lifecycle.StateTerminated, Reason: x.Reason, Message: x.Message,
			ExitCode: x.ExitCode, Signal: x.Signal, StartedAt: utc(x.StartedAt.Time), FinishedAt: utc(x.FinishedAt.Time),
			ContainerID: x.ContainerID}
	case s.Running != nil:
		return lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: utc(s.Running.StartedAt.Time)}
	case s.Waiting != nil:
		return lifecycle.ContainerState{Kind: lifecycle.StateWaiting, Reason: s.Waiting.Reason, Message: s.Waiting.Message}
	}
	return lifecycle.ContainerState{}
}

// podFromV1 is what the lifecycle model takes from a fully decoded v1.Pod,
// written from the Kubernetes API types rather than from decode.go: init
// containers (sidecars where the spec's restartPolicy is Always), then regular,
// then ephemeral ones.
func podFromV1(p *corev1.Pod) lifecycle.Pod {
	var deleting time.Time
	if p.DeletionTimestamp != nil {
		deleting = utc(p.DeletionTimestamp.Time)
	}
	var started time.Time
	if p.Status.StartTime != nil {
		started = utc(p.Status.StartTime.Time)
	}
	lp := lifecycle.Pod{UID: string(p.UID), Namespace: p.Namespace, Name: p.Name, Phase: lifecycle.Phase(p.Status.Phase),
		Reason: p.Status.Reason, Message: p.Status.Message, RestartPolicy: string(p.Spec.RestartPolicy),
		Created: utc(p.CreationTimestamp.Time), Started: started, Deleting: deleting}
	for _, c := range p.Status.Conditions {
		lp.Conditions = append(lp.Conditions, lifecycle.Condition{Type: string(c.Type), Status: string(c.Status),
			Reason: c.Reason, Message: c.Message, LastTransitionTime: utc(c.LastTransitionTime.Time),
			LastProbeTime: utc(c.LastProbeTime.Time)})
	}
	sidecar := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecar[c.Name] = true
		}
	}
	add := func(cs []corev1.ContainerStatus, kind func(string) lifecycle.ContainerKind) {
		for _, c := range cs {
			lp.Containers = append(lp.Containers, lifecycle.ContainerStatus{Name: c.Name, Kind: kind(c.Name),
				State: stateFromV1(c.State), LastState: stateFromV1(c.LastTerminationState), Ready: c.Ready,
				Started: c.Started, RestartCount: c.RestartCount, Image: c.Image, ImageID: c.ImageID,
				ContainerID: c.ContainerID})
		}
	}
	add(p.Status.InitContainerStatuses, func(name string) lifecycle.ContainerKind {
		if sidecar[name] {
			return lifecycle.KindSidecar
		}
		return lifecycle.KindInit
	})
	add(p.Status.ContainerStatuses, func(string) lifecycle.ContainerKind { return lifecycle.KindRegular })
	add(p.Status.EphemeralContainerStatuses, func(string) lifecycle.ContainerKind { return lifecycle.KindEphemeral })
	return lp
}

// extracted keeps the fields of a decoded pod that podFromV1 derives, so that
// a field the decoder learns to extract later does not fail this comparison
// before podFromV1 learns it too. Empty and nil lists are the same.
func extracted(p lifecycle.Pod) lifecycle.Pod {
	out := lifecycle.Pod{UID: p.UID, Namespace: p.Namespace, Name: p.Name, Phase: p.Phase, Reason: p.Reason,
		Message: p.Message, RestartPolicy: p.RestartPolicy, Created: p.Created, Started: p.Started, Deleting: p.Deleting}
	for _, c := range p.Conditions {
		out.Conditions = append(out.Conditions, lifecycle.Condition{Type: c.Type, Status: c.Status, Reason: c.Reason,
			Message: c.Message, LastTransitionTime: c.LastTransitionTime, LastProbeTime: c.LastProbeTime})
	}
	for _, c := range p.Containers {
		out.Containers = append(out.Containers, lifecycle.ContainerStatus{Name: c.Name, Kind: c.Kind, State: c.State,
			LastState: c.LastState, Ready: c.Ready, Started: c.Started, RestartCount: c.RestartCount, Image: c.Image,
			ImageID: c.ImageID, ContainerID: c.ContainerID})
	}
	return out
}

// podDiff names the first field in which two pods differ ("" when equal).
func podDiff(got, want lifecycle.Pod) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	gc, wc := got.Containers, want.Containers
	got.Containers, want.Containers = nil, nil
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("pod fields\n got %+v\nwant %+v", got, want)
	}
	if len(gc) != len(wc) {
		return fmt.Sprintf("%d containers, want %d", len(gc), len(wc))
	}
	for i := range gc {
		if !reflect.DeepEqual(gc[i], wc[i]) {
			return fmt.Sprintf("container %d\n got %+v\nwant %+v", i, gc[i], wc[i])
		}
	}
	return ""
}
