package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// realAPI starts a real API server, creates node-a with two pods bound to it,
// grants the podlife service account the RBAC of deploy/, and returns an
// admin clientset, a clientset with the agent's credentials (to check its
// RBAC), and the agent's own clients (short-timeout and watch).
func realAPI(t *testing.T) (api *testenv.APIServer, admin, agentCS kubernetes.Interface, agent, watch *Client) {
	t.Helper()
	api = testenv.StartAPIServer(t)
	admin = clientset(t, ClientConfig{Kubeconfig: api.AdminKubeconfig})
	ctx := context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	if _, err := admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "worker"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "app", Image: "localhost/podlife/busybox:test"}}}}
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "node-b", Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	agentCS = clientset(t, ClientConfig{Kubeconfig: api.AgentKubeconfig, Timeout: 2 * time.Second})
	agent, _, err := NewClient(ClientConfig{Kubeconfig: api.AgentKubeconfig, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	watch, _, err = NewClient(ClientConfig{Kubeconfig: api.AgentKubeconfig, Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	return api, admin, agentCS, agent, watch
}

// clientset builds a full clientset configured like NewClient, for set-up and
// inspection.
func clientset(t *testing.T, cfg ClientConfig) kubernetes.Interface {
	t.Helper()
	_, rc, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (kube-apiserver, etcd): not in -short")
	}
	api, admin, agentCS, agent, watch := realAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Run("agent RBAC is least privilege", func(t *testing.T) {
		// Allowed: what podlife needs.
		if _, err := agentCS.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-a"}); err != nil {
			t.Fatalf("list own pods: %v", err)
		}
		if _, err := agentCS.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{}); err != nil {
			t.Fatalf("get own node: %v", err)
		}
		// Denied: everything else.
		denied := map[string]error{}
		_, denied["list secrets"] = agentCS.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
		denied["delete pod"] = agentCS.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{})
		_, denied["create pod"] = agentCS.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{})
		_, denied["patch node spec"] = agentCS.CoreV1().Nodes().Patch(ctx, "node-a", types.MergePatchType, []byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
		_, denied["list configmaps"] = agentCS.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		for what, err := range denied {
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: %v, want Forbidden", what, err)
			}
		}
	})

	view := NewAPIView(watch, agent, "node-a", 200*time.Millisecond, quiet())
	go view.Run(ctx)
	t.Run("view sees only this node and its pods", func(t *testing.T) {
		// The stores and the /readyz probe are separate: the probe may answer
		// after the informers listed (seen under load in CI), so wait for both.
		testenv.Eventually(t, "two pods, the node and the API server up", 10*time.Second, func() bool {
			return len(view.Pods()) == 2 && view.Node() != nil && view.Health().Up
		})
		for _, p := range view.Pods() {
			if p.Name == "elsewhere" {
				t.Fatal("pod of another node in the view")
			}
		}
		if n := view.Node(); n.Ready != "Unknown" || n.Reason != "NoReadyCondition" {
			t.Fatalf("node %+v", n)
		}
		if h := view.Health(); h.LastSuccess.IsZero() || h.LastError != "" {
			t.Fatalf("health %+v", h)
		}
		// The same slice while no pod changed (what the Correlator's
		// one-change path knows it by); a pod's change, a new one, the old
		// one untouched.
		before := view.Pods()
		if again := view.Pods(); &again[0] != &before[0] {
			t.Fatal("no pod changed, and the view built its pods again")
		}
		was := slices.Clone(before)
		if _, err := admin.CoreV1().Pods("default").Patch(ctx, "web", types.MergePatchType,
			[]byte(`{"status":{"conditions":[{"type":"Ready","status":"True"}]}}`), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "the view shows web Ready", 10*time.Second, func() bool {
			i := slices.IndexFunc(view.Pods(), func(p lifecycle.APIPod) bool { return p.Name == "web" })
			return i >= 0 && view.Pods()[i].Ready == "True"
		})
		if !reflect.DeepEqual(before, was) {
			t.Fatal("the view modified a pods slice it had handed out")
		}
	})

	t.Run("node conditions on the real Node", func(t *testing.T) {
		nc := NewNodeConditions(agent, "node-a", quiet())
		down := map[string]lifecycle.SourceHealth{
			lifecycle.SourceRuntime: {Configured: true, Up: true},
			lifecycle.SourceKubelet: {Configured: true, LastError: "Get \"https://127.0.0.1:10250/pods\": connection refused"},
		}
		if err := nc.Sync(ctx, down, time.Now()); err != nil {
			t.Fatal(err)
		}
		n, _ := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		rv := n.ResourceVersion
		got := map[string]corev1.NodeCondition{}
		for _, c := range n.Status.Conditions {
			got[string(c.Type)] = c
		}
		if got[CondKubeletUnreachable].Status != corev1.ConditionTrue || got[CondRuntimeUnreachable].Status != corev1.ConditionFalse ||
			!strings.Contains(got[CondKubeletUnreachable].Message, "connection refused") {
			t.Fatalf("conditions %+v", n.Status.Conditions)
		}
		if err := nc.Sync(ctx, down, time.Now()); err != nil {
			t.Fatal(err)
		}
		n, _ = admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		if n.ResourceVersion != rv {
			t.Fatal("an unchanged condition was patched again")
		}
	})

	t.Run("a healthy node asks nothing: the Lease's watch events keep the view fresh", func(t *testing.T) {
		quietNode(ctx, t, api, admin)
	})

	t.Run("a restarted agent patches no condition already on the Node", func(t *testing.T) {
		restarted := NewNodeConditions(agent, "node-a", quiet())
		restarted.Applied = view.NodeConditions
		n, _ := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
		testenv.Eventually(t, "the view shows the conditions", 10*time.Second, func() bool {
			conds, ok := view.NodeConditions()
			return ok && len(conds) == 2
		})
		down := map[string]lifecycle.SourceHealth{
			lifecycle.SourceRuntime: {Configured: true, Up: true},
			lifecycle.SourceKubelet: {Configured: true, LastError: "connection refused"},
		}
		if err := restarted.Sync(ctx, down, time.Now()); err != nil {
			t.Fatal(err)
		}
		if m, _ := admin.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{}); m.ResourceVersion != n.ResourceVersion {
			t.Fatal("a restarted agent patched a Node whose conditions were as desired")
		}
	})

	t.Run("partition: nothing lost, nothing twice, original times, agent restarted mid-partition", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "journal.db")
		j, err := journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		r := NewReporter(agent, j, ReporterConfig{Node: "node-a"}, quiet())
		before := []lifecycle.Transition{crash("web", 0)}
		before[0].Namespace = "default"
		j.Append(time.Now(), before)
		if _, err := r.DeliverOnce(ctx); err != nil {
			t.Fatal(err)
		}

		api.Freeze()
		var during []lifecycle.Transition
		base := time.Now().Truncate(time.Millisecond)
		for i := 0; i < 6; i++ {
			pod := []string{"web", "worker"}[i%2]
			ec := int32(137)
			during = append(during, lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Namespace: "default",
				Pod: pod, Container: "app", From: fmt.Sprint(i), To: fmt.Sprint(i + 1), Reason: "OOMKilled", ExitCode: &ec,
				ObservedAt: base.Add(time.Duration(i) * time.Second), HappenedAt: base.Add(time.Duration(i)*time.Second - 200*time.Millisecond)})
		}
		j.Append(time.Now(), during[:3])
		if _, err := r.DeliverOnce(ctx); err == nil {
			t.Fatal("delivery to a frozen API server succeeded")
		}
		testenv.Eventually(t, "apiserver reported down", 5*time.Second, func() bool { return !view.Health().Up })
		t.Logf("frozen apiserver: %s", view.Health().LastError)

		// The agent restarts in the middle of the partition.
		j.Close()
		j, err = journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		r = NewReporter(agent, j, ReporterConfig{Node: "node-a"}, quiet())
		j.Append(time.Now(), during[3:])
		if _, err := r.DeliverOnce(ctx); err == nil {
			t.Fatal("delivery to a frozen API server succeeded")
		}
		p, _ := j.Pending(0)
		if len(p) != 6 {
			t.Fatalf("%d pending during the partition, want 6", len(p))
		}
		want := map[uint64]bool{}
		for _, e := range p {
			want[e.Seq] = true
		}

		api.Thaw()
		testenv.Eventually(t, "apiserver back", 10*time.Second, func() bool { return view.Health().Up })
		testenv.Eventually(t, "backlog delivered", 20*time.Second, func() bool {
			r.DeliverOnce(ctx)
			p, _ := j.Pending(0)
			return len(p) == 0
		})
		evs, err := admin.EventsV1().Events("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// Each pod's three OOM kills are one Event with a series: every
		// journal sequence in exactly one Event's podlife.dev/seqs, the
		// Event at the first one's own time, the series at the last one's.
		seen := map[uint64]int{}
		var oom int
		for _, e := range evs.Items {
			if e.Reason != "OOMKilled" {
				continue
			}
			oom++
			seqs, err := ParseSeqRanges(e.Annotations[AnnotationSeqs])
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range seqs {
				seen[q]++
			}
			if e.Series == nil || e.Series.Count != int32(len(seqs)) {
				t.Errorf("%s: series %+v for seqs %v", e.Name, e.Series, seqs)
			}
		}
		lost, dup := 0, 0
		for q := range want {
			switch n := seen[q]; {
			case n == 0:
				lost++
			case n > 1:
				dup += n - 1
			}
		}
		t.Logf("partition: %d transitions during the partition, delivered after as %d Events with series, lost=%d duplicated=%d",
			len(during), oom, lost, dup)
		if lost != 0 || dup != 0 || oom != 2 || len(seen) != len(want) {
			t.Fatalf("lost %d, duplicated %d, %d Events (want 2), %d seqs shown for %d", lost, dup, oom, len(seen), len(want))
		}
	})
}

// An API server answering 429, 500 or garbage: delivery fails with a clear
// error and keeps every entry; health says down in one line.
func TestFaultyAPIServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"429", http.StatusTooManyRequests, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"slow down","reason":"TooManyRequests","code":429}`, "slow down"},
		{"500", http.StatusInternalServerError, "boom", "an error on the server"},
		{"garbage", http.StatusOK, "\x00\x01not json at all", "create event ns/a.podlife."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "0")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			// The timeout spans client-go's whole retry loop on 429 and 500:
			// generous, so that a slow machine under -race cannot turn the
			// error looked for into a timeout.
			cs, err := newClientFor(&rest.Config{Host: srv.URL, Timeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			j := openJournal(t)
			j.Append(t0, []lifecycle.Transition{crash("a", 0)})
			r := NewReporter(cs, j, ReporterConfig{Node: "node-a"}, quiet())
			_, err = r.DeliverOnce(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line containing %q", err, tc.want)
			}
			if p, _ := j.Pending(0); len(p) != 1 {
				t.Fatal("entry lost")
			}
			if tc.status != http.StatusOK {
				v := NewAPIView(cs, cs, "node-a", time.Second, quiet())
				v.probeOnce(context.Background())
				if h := v.Health(); h.Up || h.LastError == "" || strings.Contains(h.LastError, "\n") {
					t.Fatalf("health %+v", h)
				}
			}
		})
	}
}

// quietNode runs a view whose probe client counts its requests while the
// test renews node-a's Lease as a kubelet does (faster here): no /readyz and
// no GET of the Lease for longer than the probe interval. When the renewals
// stop, the view asks /readyz after a quiet interval and reads the Lease the
// watch shows expired.
func quietNode(ctx context.Context, t *testing.T, api *testenv.APIServer, admin kubernetes.Interface) {
	const every = 5 * time.Second
	leases := admin.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	d := int32(2)
	l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec: coordinationv1.LeaseSpec{LeaseDurationSeconds: &d, RenewTime: &metav1.MicroTime{Time: time.Now()}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var readyz, leaseGets atomic.Int32
	rc, err := RESTConfig(api.AgentKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.Timeout = 2 * time.Second
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			switch {
			case r.URL.Path == "/readyz":
				readyz.Add(1)
			case strings.HasSuffix(r.URL.Path, "/leases/node-a"):
				leaseGets.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	probe, err := newClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	watch, _, err := NewClient(ClientConfig{Kubeconfig: api.AgentKubeconfig, Timeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	vctx, stop := context.WithCancel(ctx)
	defer stop()
	v := NewAPIView(watch, probe, "node-a", every, quiet())
	go v.Run(vctx)
	renew := func() time.Time {
		l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
		if l, err = leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return l.Spec.RenewTime.Time
	}
	var first time.Time
	testenv.Eventually(t, "up, and a renewal seen through the watch", 20*time.Second, func() bool {
		renewed := renew()
		if first.IsZero() && v.Health().Up {
			first = renewed
		}
		return !first.IsZero() && !v.Lease().RenewTime.Before(first)
	})
	r0, g0 := readyz.Load(), leaseGets.Load()
	testenv.Eventually(t, "renewals seen for 1.5 probe intervals", 60*time.Second, func() bool {
		renew()
		return v.Lease().RenewTime.Sub(first) >= every*3/2
	})
	if r, g := readyz.Load(), leaseGets.Load(); r != r0 || g != g0 || g > 1 {
		t.Fatalf("while the Lease was renewed: %d /readyz and %d Lease GETs after the first (%d, %d); want none", r-r0, g-g0, r0, g0)
	}
	if h := v.Health(); !h.Up || time.Since(h.LastSuccess) > every {
		t.Fatalf("health %+v: the watch events should keep it fresh", h)
	}
	last := renew()
	testenv.Eventually(t, "the expired Lease confirmed by a GET after a quiet interval", 30*time.Second, func() bool {
		return readyz.Load() > r0 && leaseGets.Load() > g0 && v.Lease().RenewTime.Equal(last)
	})
	t.Logf("steady: 0 requests for %s of renewals; quiet: %d /readyz, %d Lease GETs", every*3/2, readyz.Load()-r0, leaseGets.Load()-g0)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
