package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
)

// TestNodesAtFleetSize times `podlife nodes` against a real API server
// holding SCALE_FLEET_NODES (5,000) Nodes shaped like a kubelet's (its
// conditions, podlife's two, addresses, capacity, 30 images) and as many
// heartbeat Leases: what `kubectl podlife nodes` costs at the upstream
// node limit (make scale-nodes).
func TestNodesAtFleetSize(t *testing.T) {
	if os.Getenv("PODLIFE_SCALE") != "1" {
		t.Skip("the fleet harness: make scale (PODLIFE_SCALE=1)")
	}
	n := 5000
	if s := os.Getenv("SCALE_FLEET_NODES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 10 {
			t.Fatalf("SCALE_FLEET_NODES=%q: want a number ≥ 10", s)
		}
	}
	api := testenv.StartAPIServer(t)
	admin := adminClient(t, api)
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "podlife"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	start := time.Now()
	parallel(t, n, 16, func(i int) error { return createFleetNode(ctx, admin, i, now) })
	t.Logf("%d Nodes and heartbeat Leases created in %s", n, time.Since(start).Round(time.Second))
	bin := filepath.Join(t.TempDir(), "podlife")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/podlife").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var took []time.Duration
	var rows []cli.NodeRow
	for range 5 {
		cmd := exec.Command(bin, "nodes", "--kubeconfig", api.AdminKubeconfig, "-o", "json")
		begin := time.Now()
		out, err := cmd.Output()
		took = append(took, time.Since(begin))
		if err != nil {
			t.Fatalf("podlife nodes: %v", err)
		}
		rows = nil
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("podlife nodes -o json: %v", err)
		}
		t.Logf("podlife nodes: %d rows, %d bytes of JSON, in %s, max RSS %d MiB", len(rows), len(out),
			took[len(took)-1].Round(time.Millisecond), maxRSSMiB(cmd))
	}
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	// The troubled nodes (every 100th agent silent, every 100th from the
	// 50th its kubelet cut off) come first, silent agents before them.
	want := n/100 + (n-50+99)/100
	for i, r := range rows[:want] {
		if r.Trouble < 4 {
			t.Fatalf("row %d %+v: the %d troubled nodes should come first", i, r, want)
		}
	}
	if r := rows[0]; r.Agent != "silent" || r.Trouble != 5 {
		t.Errorf("first row %+v, want a silent agent", r)
	}
	if r := rows[want]; r.Trouble >= 4 {
		t.Errorf("row %d %+v: trouble %d after the troubled ones", want, r, r.Trouble)
	}
	slices.Sort(took)
	fmt.Printf("scale: podlife nodes at %d nodes: median %s (of %d: %s … %s)\n", n, took[len(took)/2].Round(time.Millisecond),
		len(took), took[0].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// createFleetNode creates node i (hn-NNNNN) with a kubelet's status and its
// agent's heartbeat Lease.
func createFleetNode(ctx context.Context, cs kubernetes.Interface, i int, now time.Time) error {
	name := fmt.Sprintf("hn-%05d", i)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		corev1.LabelHostname: name, corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%3),
		corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}}}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	cutOff := i%100 == 50
	created.Status = fleetNodeStatus(name, now, cutOff)
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s status: %w", name, err)
	}
	renewed := metav1.NewMicroTime(now)
	if i%100 == 0 {
		renewed = metav1.NewMicroTime(now.Add(-time.Hour)) // a silent agent
	}
	d := int32(900)
	link := "up"
	if cutOff {
		link = "cut-off"
	}
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: upstream.HeartbeatLeasePrefix + name, Annotations: map[string]string{
			upstream.AnnotationPodsFailing: strconv.Itoa(i % 3), upstream.AnnotationPodsUnknown: "0",
			upstream.AnnotationKubeletLink: link}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &name, LeaseDurationSeconds: &d, RenewTime: &renewed},
	}
	if _, err := cs.CoordinationV1().Leases("podlife").Create(ctx, l, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("lease of %s: %w", name, err)
	}
	return nil
}

// fleetNodeStatus is a status of the size a kubelet writes.
func fleetNodeStatus(name string, now time.Time, cutOff bool) corev1.NodeStatus {
	t := metav1.NewTime(now)
	cond := func(typ corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: s, Reason: reason, Message: "kubelet has " + reason,
			LastHeartbeatTime: t, LastTransitionTime: t}
	}
	ready := cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady")
	if cutOff {
		ready = cond(corev1.NodeReady, corev1.ConditionUnknown, "NodeStatusUnknown")
	}
	s := corev1.NodeStatus{
		Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"),
			corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("500Gi")},
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"), ready,
			cond(upstream.CondRuntimeUnreachable, corev1.ConditionFalse, "ContainerRuntimeReachable"),
			cond(upstream.CondKubeletUnreachable, corev1.ConditionFalse, "KubeletReachable"),
		},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.37.2", ContainerRuntimeVersion: "containerd://2.2.0",
			OSImage: "Debian GNU/Linux 13", KernelVersion: "6.12.0", OperatingSystem: "linux", Architecture: "amd64"},
	}
	s.Allocatable = s.Capacity
	for i := range 30 {
		s.Images = append(s.Images, corev1.ContainerImage{SizeBytes: 50 << 20, Names: []string{
			fmt.Sprintf("registry.example/team-%d/app@sha256:%064x", i, i),
			fmt.Sprintf("registry.example/team-%d/app:v1.%d", i, i)}})
	}
	return s
}

// parallel runs f(0..n-1) on w workers and fails t on the first error.
func parallel(t *testing.T, n, w int, f func(int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, w)
	next := make(chan int)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// maxRSSMiB is a finished command's peak resident set.
func maxRSSMiB(cmd *exec.Cmd) int64 {
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return u.Maxrss >> 10
	}
	return -1
}
