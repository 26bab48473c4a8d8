package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podlife/podlife/internal/upstream"
)

// The fleet's rows, most trouble first: a silent agent, then a kubelet cut
// off or a Node not Ready, then a podlife condition, then failing pods, then
// a recent partition.
func TestNodeRows(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	node := func(name, ready string, conds ...string) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelTopologyZone: "rack-1"}}}
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionStatus(ready)})
		for _, c := range conds {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeConditionType(c), Status: corev1.ConditionTrue})
		}
		return n
	}
	lease := func(nodeName string, renewedAgo time.Duration, ann map[string]string) coordinationv1.Lease {
		d := int32(600)
		return coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: upstream.HeartbeatLeasePrefix + nodeName, Annotations: ann},
			Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &d, RenewTime: &metav1.MicroTime{Time: now.Add(-renewedAgo)}}}
	}
	ok := map[string]string{upstream.AnnotationPodsFailing: "0", upstream.AnnotationPodsUnknown: "0", upstream.AnnotationKubeletLink: "up"}
	nodes := []corev1.Node{
		node("a-quiet", "True"), node("b-failing", "True"), node("c-silent", "True"), node("d-cut", "True"),
		node("e-runtime", "True", upstream.CondRuntimeUnreachable), node("f-none", "True"), node("g-partition", "True"),
		node("h-notready", "Unknown"),
	}
	leases := []coordinationv1.Lease{
		lease("a-quiet", time.Minute, ok),
		lease("b-failing", time.Minute, map[string]string{upstream.AnnotationPodsFailing: "3", upstream.AnnotationPodsUnknown: "1", upstream.AnnotationKubeletLink: "up"}),
		lease("c-silent", 11*time.Minute, ok),
		lease("d-cut", time.Minute, map[string]string{upstream.AnnotationKubeletLink: "cut-off"}),
		lease("e-runtime", time.Minute, ok),
		lease("g-partition", time.Minute, map[string]string{upstream.AnnotationKubeletLink: "up",
			upstream.AnnotationLastPartition: now.Add(-20 * time.Minute).Format(time.RFC3339), upstream.AnnotationLastPartitionSummary: "5m0s; 3 pods, 7 restarts, 2 exits"}),
		lease("h-notready", time.Minute, ok),
		{ObjectMeta: metav1.ObjectMeta{Name: "some-other-lease"}},
	}
	rows := NodeRows(nodes, leases, now)
	var order []string
	for _, r := range rows {
		order = append(order, r.Node+":"+r.Agent)
	}
	want := "c-silent:silent f-none:none d-cut:reports h-notready:reports e-runtime:reports b-failing:reports g-partition:reports a-quiet:reports"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order\n got %s\nwant %s", got, want)
	}
	var b bytes.Buffer
	PrintNodes(&b, rows, now)
	for _, line := range []string{
		"b-failing    rack-1  reports (60s ago)  True     up            -                            3        1",
		"e-runtime    rack-1  reports (60s ago)  True     up            ContainerRuntimeUnreachable  0        0",
		"g-partition  rack-1  reports (60s ago)  True     up            -                            0        0        20m ago: 5m0s; 3 pods, 7 restarts, 2 exits",
		"f-none       rack-1  none               True     -",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("table lacks %q:\n%s", line, b.String())
		}
	}
}
