// Package scale is the fleet harness (make scale): one real kube-apiserver,
// etcd, controller-manager and scheduler; N hollow kubelets (kubemark's, a
// real kubelet over a fake runtime); N real podlife agents, each on its own
// simulated node with its own journal, each node behind a link the harness
// cuts, grouped in racks. It measures from the API server's audit log what
// podlife costs per node against the kubelets, then cuts a rack (or the
// zone) while containers crash, heals it at once, and measures the burst,
// the drain, a kubelet-like Lease renewal's latency meanwhile, and whether
// every transition arrived exactly once. Not part of make test: it runs only
// with PODLIFE_SCALE=1.
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
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
)

// config is the run's shape, from the environment (SCALE_*).
type config struct {
	Nodes, Racks, Pods, Probes int
	Churn                      float64
	Cut                        string // rack (the first) or zone (all)
	Warmup, Steady, CutFor     time.Duration
	HealWindow                 time.Duration // measured after the heal in any case
	FlowControl                bool
	Deliver                    bool // false: the agents run with --upstream off (the kubelets' baseline)
	AgentArgs                  []string
	APIServerArgs              []string
}

func configFromEnv(t *testing.T) config {
	c := config{Nodes: 50, Racks: 5, Pods: 30, Probes: 20, Churn: 0.02, Cut: "rack",
		Warmup: time.Minute, Steady: 3 * time.Minute, CutFor: 5 * time.Minute, HealWindow: time.Minute, FlowControl: true}
	num := func(key string, v *int) {
		if s := os.Getenv(key); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive number", key, s)
			}
			*v = n
		}
	}
	dur := func(key string, v *time.Duration) {
		if s := os.Getenv(key); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatalf("%s=%q: %v", key, s, err)
			}
			*v = d
		}
	}
	num("SCALE_NODES", &c.Nodes)
	num("SCALE_RACKS", &c.Racks)
	num("SCALE_PODS", &c.Pods)
	num("SCALE_PROBES", &c.Probes)
	dur("SCALE_WARMUP", &c.Warmup)
	dur("SCALE_STEADY", &c.Steady)
	dur("SCALE_CUT_FOR", &c.CutFor)
	dur("SCALE_HEAL_WINDOW", &c.HealWindow)
	if s := os.Getenv("SCALE_CHURN"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 {
			t.Fatalf("SCALE_CHURN=%q: want restarts per second per node", s)
		}
		c.Churn = f
	}
	switch s := os.Getenv("SCALE_CUT"); s {
	case "", "rack", "zone":
		c.Cut = cmpOr(s, c.Cut)
	default:
		t.Fatalf("SCALE_CUT=%q: want rack or zone", s)
	}
	c.FlowControl = os.Getenv("SCALE_FLOWCONTROL") != "0"
	c.AgentArgs = strings.Fields(os.Getenv("SCALE_AGENT_ARGS"))
	c.Deliver = !upstreamOff(c.AgentArgs)
	c.APIServerArgs = strings.Fields(os.Getenv("SCALE_APISERVER_ARGS"))
	return c
}

// upstreamOff tells whether agent arguments turn reporting off: the run is
// then the kubelets' own baseline, with nothing to drain.
func upstreamOff(args []string) bool {
	for i, a := range args {
		if a == "--upstream=off" || a == "--upstream" && i+1 < len(args) && args[i+1] == "off" {
			return true
		}
	}
	return false
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestScale(t *testing.T) {
	if os.Getenv("PODLIFE_SCALE") != "1" {
		t.Skip("the fleet harness: make scale (PODLIFE_SCALE=1)")
	}
	c := configFromEnv(t)
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("scale: %d nodes in %d racks, %d pods each, churn %.3g/s per node, cut %s for %s; flowcontrol %v; agent args %q; loadavg %s",
		c.Nodes, c.Racks, c.Pods, c.Churn, c.Cut, c.CutFor, c.FlowControl, c.AgentArgs, strings.TrimSpace(string(load)))
	raiseInotify(t, 1024)
	dir := t.TempDir()
	// SCALE_PODLIFE: another build to measure (an earlier commit's, say:
	// git worktree add /tmp/base COMMIT && go build -o /tmp/podlife-base ./cmd/podlife).
	podlife := os.Getenv("SCALE_PODLIFE")
	if podlife == "" {
		podlife = filepath.Join(dir, "podlife")
		if out, err := exec.Command("go", "build", "-o", podlife, "../../cmd/podlife").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	auditLog := filepath.Join(dir, "audit.log")
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	cp := testenv.StartControlPlane(t, testenv.ClusterOptions{
		// The upstream defaults (pkg/controller/nodelifecycle/config/v1alpha1/defaults.go).
		NodeMonitorGracePeriod: 50 * time.Second, NodeMonitorPeriod: 5 * time.Second,
		Tokens: tokens(c.Nodes, c.Probes),
		APIServerArgs: append([]string{"--audit-policy-file=" + policy, "--audit-log-path=" + auditLog,
			"--audit-log-format=json", "--audit-log-mode=batch", "--audit-log-maxsize=0"}, c.APIServerArgs...)})
	admin := adminClient(t, cp.API)
	ctx := context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, agentUser); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"load", "podlife"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if c.FlowControl {
		kubectl(t, cp.API, "apply", "-f", filepath.Join(testenv.RepoRoot(), "deploy", "flowcontrol.yaml"))
	}
	f := startFleet(t, cp.API, admin, c, podlife, dir)
	f.podlife = podlife
	res := f.run(t, c)
	if c.Deliver {
		res.verify(t, f, admin)
	}
	t.Log(res.table(c))
	verdict := res.verdict(c)
	fmt.Println(verdict)
	if !strings.HasPrefix(verdict, "scale: PASS") && !strings.HasPrefix(verdict, "scale: BASELINE") {
		t.Error(verdict)
	}
}

// raiseInotify lets every hollow kubelet and agent have its inotify
// instances (this machine's default is 128 per user), and puts the old
// value back.
func raiseInotify(t *testing.T, n int) {
	const p = "/proc/sys/fs/inotify/max_user_instances"
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := strconv.Atoi(strings.TrimSpace(string(old))); v >= n {
		return
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(n)), 0o644); err != nil {
		t.Fatalf("%s: %v (the harness runs as root)", p, err)
	}
	t.Cleanup(func() { os.WriteFile(p, old, 0o644) })
}

func adminClient(t *testing.T, api *testenv.APIServer) kubernetes.Interface {
	rc, err := clientcmd.BuildConfigFromFlags("", api.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func kubectl(t *testing.T, api *testenv.APIServer, args ...string) {
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		bin = testenv.Bin(t, "kubectl")
	}
	if out, err := exec.Command(bin, append([]string{"--kubeconfig", api.AdminKubeconfig}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
}

// partitionSlack is how long before the cut a cut node's partition may
// begin: at the oldest transition it could not deliver, observed before the
// cut and sent after it.
const partitionSlack = 10 * time.Second

// fleet is the running nodes.
type fleet struct {
	api     *testenv.APIServer
	nodes   []*node
	racks   []rack
	probe   *leaseProbe
	audit   string
	podlife string // the binary under test
	cancel  context.CancelFunc
}

// rows is `podlife nodes -o json` against the harness's API server.
func (f *fleet) rows() ([]cli.NodeRow, error) {
	out, err := exec.Command(f.podlife, "nodes", "--kubeconfig", f.api.AdminKubeconfig, "-o", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("podlife nodes: %w", err)
	}
	var rows []cli.NodeRow
	return rows, json.Unmarshal(out, &rows)
}

// checkNodes tells what `podlife nodes` shows of the cut nodes (during the
// cut: trouble; after the heal: their last partition), and whether it holds
// for all of them and for no other node.
func (f *fleet) checkNodes(cut map[string]bool, ok func(cli.NodeRow) bool) (string, bool) {
	rows, err := f.rows()
	if err != nil {
		return err.Error(), false
	}
	right, wrong := 0, []string(nil)
	for _, r := range rows {
		if ok(r) == cut[r.Node] {
			right++
		} else if len(wrong) < 5 {
			wrong = append(wrong, fmt.Sprintf("%s (cut %t, trouble %d, last partition %s)", r.Node, cut[r.Node], r.Trouble, r.LastPartition.Format(time.TimeOnly)))
		}
	}
	msg := fmt.Sprintf("%d of %d rows as expected", right, len(rows))
	if len(wrong) > 0 {
		msg += ", not: " + strings.Join(wrong, ", ")
	}
	return msg, right == len(rows) && len(rows) == len(f.nodes)
}

// startFleet starts every node, eight at a time, and waits until every Node
// is Ready and every agent answers.
func startFleet(t *testing.T, api *testenv.APIServer, admin kubernetes.Interface, c config, podlife, dir string) *fleet {
	o := fleetOptions{Nodes: c.Nodes, Racks: c.Racks, Pods: c.Pods, Churn: c.Churn, AgentArgs: c.AgentArgs,
		Hollow: testenv.Bin(t, "hollowlocal"), Podlife: podlife, Dir: dir}
	f := &fleet{api: api, nodes: make([]*node, c.Nodes), racks: make([]rack, c.Racks), audit: filepath.Join(dir, "audit.log")}
	start := time.Now()
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			n := startNode(t, api, o, i)
			mu.Lock()
			f.nodes[i] = n
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, n := range f.nodes {
		f.racks[n.rack] = append(f.racks[n.rack], n)
	}
	testenv.Eventually(t, fmt.Sprintf("%d Nodes Ready", c.Nodes), 5*time.Minute, func() bool {
		l, err := admin.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		ready := 0
		for _, n := range l.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == c.Nodes
	})
	testenv.Eventually(t, "every agent answering", 2*time.Minute, func() bool {
		for _, n := range f.nodes {
			if _, err := n.journal(); err != nil {
				return false
			}
		}
		return true
	})
	t.Logf("fleet of %d up in %s", c.Nodes, time.Since(start).Round(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	t.Cleanup(cancel)
	f.probe = &leaseProbe{}
	f.probe.start(ctx, t, api, c.Probes)
	return f
}

// result is what a run measured.
type result struct {
	nodes, pods                        int
	steadyFrom, steadyTo               time.Time
	cutAt, healAt, drainedAt, healTo   time.Time
	drained                            bool
	cutNodes                           int
	steadyPodlife, steadyKubelet       rates
	healPodlife                        rates
	peak                               int
	peakAt                             time.Time
	leaseSteady, leaseHeal             quantiles
	leaseWindow                        quantiles // the first SCALE_HEAL_WINDOW after the heal
	slowest                            []sample
	serverSteady, serverWindow         quantiles // the probe's renewals, as the audit log timed them
	kubeletWindow, controllersWindow   rates
	kubeletPeak                        int
	nodesDuringCut, nodesAfterHeal     string // what podlife nodes showed
	nodesDuringCutOK, nodesAfterHealOK bool
	kubeletPeakAt                      time.Time
	peakKinds                          rates // podlife's requests in its peak second
	held                               int   // cut agents that held their backlog after the heal
	heldWaits                          []time.Duration
	expected                           map[string]bool // node/seq journaled during the cut
	lost, dup, covered, eventsListed   int
}

// run goes through the phases: warm-up, steady, cut, heal, drain.
func (f *fleet) run(t *testing.T, c config) *result {
	r := &result{nodes: c.Nodes, pods: c.Nodes * c.Pods}
	time.Sleep(c.Warmup) // a measurement window, not a wait for an event
	r.steadyFrom = time.Now()
	time.Sleep(c.Steady)
	r.steadyTo = time.Now()
	cut := f.racks[:1]
	if c.Cut == "zone" {
		cut = f.racks
	}
	var cutNodes []*node
	for _, rk := range cut {
		cutNodes = append(cutNodes, rk...)
	}
	r.cutNodes = len(cutNodes)
	r.cutAt = time.Now()
	for _, rk := range cut {
		rk.cut()
	}
	t.Logf("cut %d nodes at %s for %s", len(cutNodes), r.cutAt.Format(time.TimeOnly), c.CutFor)
	time.Sleep(c.CutFor)
	// What must arrive: every reportable entry the cut nodes hold.
	r.expected = map[string]bool{}
	for _, n := range cutNodes {
		j, err := n.journal()
		if err != nil {
			t.Fatalf("%s before the heal: %v", n.name, err)
		}
		for _, e := range j.Pending {
			if upstream.Reportable(e.Transition) {
				r.expected[n.name+"/"+strconv.FormatUint(e.Seq, 10)] = true
			}
		}
	}
	cutSet := map[string]bool{}
	for _, n := range cutNodes {
		cutSet[n.name] = true
	}
	// The Node controller has marked the cut Nodes Unknown (50 s grace).
	r.nodesDuringCut, r.nodesDuringCutOK = f.checkNodes(cutSet, func(row cli.NodeRow) bool { return row.Trouble >= 4 })
	r.healAt = time.Now()
	for _, rk := range cut {
		rk.heal()
	}
	t.Logf("healed at %s: %d transitions to deliver", r.healAt.Format(time.TimeOnly), len(r.expected))
	if c.Deliver {
		r.waitDrained(f.nodes)
	}
	r.drainedAt = time.Now()
	r.held, r.heldWaits = backlogsHeld(cutNodes, r.healAt)
	if c.Deliver {
		// Each cut agent's heartbeat Lease names the partition within
		// MinGap of its end.
		deadline := time.Now().Add(upstream.MinGap + 30*time.Second)
		for {
			// A partition begins at the oldest transition podlife could not
			// deliver: one observed a moment before the link was cut.
			r.nodesAfterHeal, r.nodesAfterHealOK = f.checkNodes(cutSet, func(row cli.NodeRow) bool { return row.LastPartition.After(r.cutAt.Add(-partitionSlack)) })
			if r.nodesAfterHealOK || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Second)
		}
	}
	// The heal window is measured whole in every run, so that runs compare.
	time.Sleep(time.Until(r.healAt.Add(c.HealWindow)))
	time.Sleep(5 * time.Second) // the audit log is written in batches
	reqs, err := readAuditFile(f.audit)
	if err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(os.TempDir(), fmt.Sprintf("podlife-scale-%s.audit.log", r.healAt.Format("20060102-150405")))
	if err := os.Rename(f.audit, keep); err == nil {
		t.Logf("audit log kept: %s", keep)
	}
	steady := window(reqs, r.steadyFrom, r.steadyTo)
	d := r.steadyTo.Sub(r.steadyFrom)
	r.steadyPodlife = perNodeMinute(steady, "podlife", c.Nodes, d)
	r.steadyKubelet = perNodeMinute(steady, "kubelet", c.Nodes, d)
	r.healTo = r.drainedAt.Add(time.Second)
	if !c.Deliver {
		r.healTo = r.healAt.Add(c.HealWindow)
	}
	heal := window(reqs, r.healAt, r.healTo)
	r.healPodlife = perNodeMinute(heal, "podlife", len(cutNodes), r.healTo.Sub(r.healAt))
	r.peak, r.peakAt = peak(heal, "podlife")
	r.peakKinds = perNodeMinute(window(heal, r.peakAt, r.peakAt.Add(time.Second)), "podlife", 1, time.Minute)
	r.leaseSteady = f.probe.window(r.steadyFrom, r.steadyTo)
	r.leaseHeal = f.probe.window(r.healAt, r.healTo)
	// The same heal window in every run, and what the API server itself
	// took for the probe's renewals (the audit log's stage timestamps): the
	// rest of a slow renewal is spent on this machine outside the API server.
	hw := window(reqs, r.healAt, r.healAt.Add(c.HealWindow))
	r.leaseWindow = f.probe.window(r.healAt, r.healAt.Add(c.HealWindow))
	r.slowest = f.probe.slowest(r.healAt, r.healAt.Add(c.HealWindow), 5)
	r.serverSteady = serverLatency(steady, "probe", "update")
	r.serverWindow = serverLatency(hw, "probe", "update")
	r.kubeletWindow = perNodeMinute(hw, "kubelet", len(cutNodes), c.HealWindow)
	r.kubeletPeak, r.kubeletPeakAt = peak(hw, "kubelet")
	r.controllersWindow = perNodeMinute(hw, "controllers", len(cutNodes), c.HealWindow)
	return r
}

// backlogsHeld reads the cut agents' logs: how many held their backlog
// after the heal (the reporter's "the backlog waits its turn"), and until
// when, as offsets from the heal.
func backlogsHeld(nodes []*node, healAt time.Time) (int, []time.Duration) {
	held := 0
	var waits []time.Duration
	for _, n := range nodes {
		b, err := os.ReadFile(n.log)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var e struct {
				Time  time.Time `json:"time"`
				Msg   string    `json:"msg"`
				Until time.Time `json:"until"`
			}
			if json.Unmarshal([]byte(line), &e) != nil || !strings.Contains(e.Msg, "the backlog waits its turn") || e.Time.Before(healAt) {
				continue
			}
			held++
			waits = append(waits, e.Until.Sub(healAt).Round(time.Second))
			break
		}
	}
	slices.Sort(waits)
	return held, waits
}

// waitDrained polls every agent's journal each second until none holds a
// pending entry, for at most 10 minutes.
func (r *result) waitDrained(nodes []*node) {
	deadline := r.healAt.Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		r.drained = true
		for _, n := range nodes {
			if j, err := n.journal(); err != nil || len(j.Pending) > 0 {
				r.drained = false
				break
			}
		}
		if r.drained {
			return
		}
		time.Sleep(time.Second)
	}
}

// verify lists podlife's Events and checks that every transition journaled
// during the cut is in exactly one (its podlife.dev/seqs), and that no
// journal entry of any node is in two.
func (r *result) verify(t *testing.T, f *fleet, admin kubernetes.Interface) {
	seen := map[string]int{}
	cont := ""
	for {
		l, err := admin.EventsV1().Events("").List(context.Background(), metav1.ListOptions{
			FieldSelector: "reportingController=" + upstream.Controller, Limit: 500, Continue: cont})
		if err != nil {
			t.Fatalf("list events: %v", err)
		}
		for _, e := range l.Items {
			r.eventsListed++
			a, ok := e.Annotations[upstream.AnnotationSeqs]
			if !ok {
				continue // a summary
			}
			seqs, err := upstream.ParseSeqRanges(a)
			if err != nil {
				t.Errorf("event %s: %v", e.Name, err)
				continue
			}
			for _, q := range seqs {
				seen[e.ReportingInstance+"/"+strconv.FormatUint(q, 10)]++
			}
		}
		if cont = l.Continue; cont == "" {
			break
		}
	}
	for k := range r.expected {
		switch n := seen[k]; {
		case n == 0:
			r.lost++
		default:
			r.covered++
		}
	}
	for _, n := range seen {
		if n > 1 {
			r.dup += n - 1
		}
	}
}

// verdict is the one line make scale prints.
func (r *result) verdict(c config) string {
	if !c.Deliver {
		return fmt.Sprintf("scale: BASELINE (agents not reporting) nodes=%d pods=%d steady podlife=%.2f kubelet=%.2f req/node/min heal(%s, %d nodes) kubelet-peak=%d req/s lease-p99=%s (first %s)",
			r.nodes, r.pods, r.steadyPodlife.Total, r.steadyKubelet.Total, c.Cut, r.cutNodes, r.kubeletPeak,
			r.leaseWindow.P99.Round(time.Millisecond), c.HealWindow)
	}
	status := "PASS"
	var why []string
	if r.lost > 0 || r.dup > 0 {
		why = append(why, fmt.Sprintf("lost %d, duplicated %d", r.lost, r.dup))
	}
	if !r.drained {
		why = append(why, "not drained within 10 minutes")
	}
	if r.leaseHeal.P99 >= time.Second {
		why = append(why, "Lease renewal p99 ≥ 1s during the heal")
	}
	if os.Getenv("SCALE_PODLIFE") == "" && (!r.nodesDuringCutOK || !r.nodesAfterHealOK) {
		why = append(why, "podlife nodes: "+r.nodesDuringCut+" during the cut, "+r.nodesAfterHeal+" after the heal")
	}
	if len(why) > 0 {
		status = "FAIL (" + strings.Join(why, "; ") + ")"
	}
	return fmt.Sprintf("scale: %s nodes=%d pods=%d steady podlife=%.2f kubelet=%.2f req/node/min heal(%s, %d nodes) peak=%d req/s drain=%s lease-p99=%s lost=%d dup=%d",
		status, r.nodes, r.pods, r.steadyPodlife.Total, r.steadyKubelet.Total, c.Cut, r.cutNodes, r.peak,
		r.drainedAt.Sub(r.healAt).Round(time.Second), r.leaseHeal.P99.Round(time.Millisecond), r.lost, r.dup)
}

// table is the run's figures, for the log and the README.
func (r *result) table(c config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "steady (%s): podlife %s req/node/min\n", r.steadyTo.Sub(r.steadyFrom).Round(time.Second), r.steadyPodlife)
	fmt.Fprintf(&b, "steady: kubelet %s req/node/min\n", r.steadyKubelet)
	if c.Deliver {
		fmt.Fprintf(&b, "heal → drained (%s): podlife %s req/node/min over the cut nodes; peak %d req/s at +%s: %s\n",
			r.drainedAt.Sub(r.healAt).Round(time.Second), r.healPodlife, r.peak, r.peakAt.Sub(r.healAt.Truncate(time.Second)), r.peakKinds)
		fmt.Fprintf(&b, "lease renewal: steady %s; heal → drained %s\n", r.leaseSteady, r.leaseHeal)
	}
	if c.Deliver {
		fmt.Fprintf(&b, "backlogs held after the heal (--delivery-jitter): %d of %d agents, until +%s\n", r.held, r.cutNodes, r.heldWaits)
	}
	fmt.Fprintf(&b, "first %s after the heal: kubelet %s req/node/min, peak %d req/s at +%s; controllers %s req/node/min\n",
		c.HealWindow, r.kubeletWindow, r.kubeletPeak, r.kubeletPeakAt.Sub(r.healAt.Truncate(time.Second)), r.controllersWindow)
	fmt.Fprintf(&b, "lease renewal, first %s: %s; slowest:", c.HealWindow, r.leaseWindow)
	for _, s := range r.slowest {
		fmt.Fprintf(&b, " %s at +%s", s.latency.Round(time.Millisecond), s.at.Sub(r.healAt).Round(100*time.Millisecond))
	}
	fmt.Fprintf(&b, "\npodlife nodes: during the cut (the cut nodes in trouble) %s; after the heal (their last partition) %s", r.nodesDuringCut, r.nodesAfterHeal)
	fmt.Fprintf(&b, "\nlease renewal inside the API server (audit): steady %s; first %s %s\n", r.serverSteady, c.HealWindow, r.serverWindow)
	if c.Deliver {
		fmt.Fprintf(&b, "transitions journaled during the cut: %d, in exactly one Event: %d, lost %d, duplicated %d (%d podlife Events listed)",
			len(r.expected), r.covered, r.lost, r.dup, r.eventsListed)
	}
	return b.String()
}
