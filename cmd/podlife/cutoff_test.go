package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	podsv1alpha1 "k8s.io/kubelet/pkg/apis/pods/v1alpha1"

	"github.com/chromedp/chromedp"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// cutoffEnv is a real one-node cluster with the podlife agent on its node:
// the agent reads the real containerd, the registered kubelet's HTTPS /pods
// and /metrics (through the kubelet's webhook authentication and
// authorization) and reaches the API server through a link of its own.
type cutoffEnv struct {
	t         *testing.T
	c         *testenv.Cluster
	admin     kubernetes.Interface
	agentLink *testenv.Link
	server    string
	ns        string
	// mode is how the agent reads the kubelet: kubelet.ModePodsAPI (1.37's
	// default), or kubelet.ModePodsHTTP where the kubelet runs with
	// --feature-gates=PodsAPI=false.
	mode string
	// podsAPI is the kubelet's Pods API socket, which the test reads too.
	podsAPI string
	// ui, when set, is a browser on the agent's page through the cut.
	ui *testenv.Browser
}

func startCutoffEnv(t *testing.T, mode string) *cutoffEnv {
	if testing.Short() {
		t.Skip("real components: not in -short")
	}
	bin := buildPodlife(t)
	start := time.Now()
	opts := testenv.ClusterOptions{NodeMonitorGracePeriod: 20 * time.Second}
	if mode == kubelet.ModePodsHTTP {
		opts.KubeletArgs = []string{"--feature-gates=PodsAPI=false"}
	}
	c := testenv.StartCluster(t, opts)
	t.Logf("one-node cluster ready in %s", time.Since(start).Round(time.Second))
	e := &cutoffEnv{t: t, c: c, admin: c.Client(t), ns: "life", mode: mode,
		podsAPI: filepath.Join(c.Kubelet.Dir, "root", "pods-api", "pods-api.sock")}
	ctx := context.Background()
	if err := testenv.ApplyRBAC(ctx, e.admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	c.GrantKubeletAccess(t, testenv.AgentUser)
	c.CreateNamespace(t, e.ns)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(testenv.AgentToken), 0o600); err != nil {
		t.Fatal(err)
	}
	e.agentLink = c.NewLink(t)
	logPath := filepath.Join(dir, "agent.log")
	p := startAgent(t, bin, logPath, "--node-name", c.NodeName, "--cri-endpoint", c.Containerd.Endpoint,
		"--kubelet-url", c.KubeletURL, "--kubelet-token-file", tokenFile,
		"--kubelet-ca-file", c.API.CAFile, "--kubelet-serving-cert-file", c.KubeletServingCertFile,
		"--kubelet-pods-api-socket", e.podsAPI, "--poll-interval", "1s", "--upstream", "on",
		"--kubeconfig", e.agentLink.Kubeconfig(t, testenv.AgentToken), "--journal-path", filepath.Join(dir, "journal.db"),
		"--event-burst", "1000", "--stuck-threshold", "0", "--apiserver-probe-interval", "2s", "--delivery-jitter", "0")
	e.server = p.URL
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 6000))
		}
	})
	testenv.Eventually(t, "agent ready, reading the kubelet in mode "+mode, 30*time.Second, func() bool {
		var r agent.PodsResponse
		return getJSONFrom(e.server+"/readyz", &r) == 200 && getJSONFrom(e.server+"/api/v1/pods", &r) == 200 &&
			r.Sources[lifecycle.SourceKubelet].Mode == mode
	})
	return e
}

// kubeletPods reads the kubelet's Pods API directly (ListPods; each pod is
// v1.Pod protobuf): the kubelet's own live status, by pod name. nil where
// the socket does not answer (the pods-http mode).
func (e *cutoffEnv) kubeletPods() map[string]*corev1.Pod {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+e.podsAPI, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil
	}
	defer conn.Close()
	resp, err := podsv1alpha1.NewPodsClient(conn).ListPods(ctx, &podsv1alpha1.ListPodsRequest{})
	if err != nil {
		return nil
	}
	out := map[string]*corev1.Pod{}
	for _, b := range resp.GetPods() {
		p := &corev1.Pod{}
		if err := p.Unmarshal(b); err != nil {
			e.t.Fatalf("the kubelet's Pods API sent a pod that does not decode: %v", err)
		}
		if p.Namespace == e.ns {
			out[p.Name] = p
		}
	}
	return out
}

// podSummary is what kubectl get pods shows of a pod: phase, ready/total,
// restarts (regular containers), and its Ready condition.
func podSummary(p *corev1.Pod) (phase string, ready, total int, restarts int32, podReady bool) {
	for _, c := range p.Status.ContainerStatuses {
		total++
		if c.Ready {
			ready++
		}
		restarts += c.RestartCount
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			podReady = c.Status == corev1.ConditionTrue
		}
	}
	return string(p.Status.Phase), ready, total, restarts, podReady
}

// agreesWithKubelet reports, for each pod of the namespace the kubelet runs,
// where podlife's phase, restarts or readiness differ from the kubelet's own
// live status (its Pods API), read before and after podlife's view so that a
// change in between is not taken for a difference.
func (e *cutoffEnv) agreesWithKubelet() []string {
	before := e.kubeletPods()
	views := e.pods()
	after := e.kubeletPods()
	var diffs []string
	for name, k := range after {
		if b := before[name]; b == nil || !equalStatus(b, k) {
			return []string{name + ": changed while read"}
		}
		v, ok := views[name]
		phase, _, _, restarts, ready := podSummary(k)
		if !ok {
			diffs = append(diffs, name+": not in podlife's view")
			continue
		}
		r, tot := v.ReadyCount()
		if string(v.Phase) != phase || v.Restarts() != restarts || (r == tot) != ready {
			diffs = append(diffs, fmt.Sprintf("%s: kubelet %s restarts=%d ready=%v; podlife %s restarts=%d %d/%d (%s)",
				name, phase, restarts, ready, v.Phase, v.Restarts(), r, tot, v.StatusFrom))
		}
	}
	return diffs
}

func equalStatus(a, b *corev1.Pod) bool {
	pa, ra, ta, na, oka := podSummary(a)
	pb, rb, tb, nb, okb := podSummary(b)
	return pa == pb && ra == rb && ta == tb && na == nb && oka == okb
}

// pods is the agent's view of the test namespace's pods by name prefix.
func (e *cutoffEnv) pods() map[string]lifecycle.PodView {
	var r agent.PodsResponse
	getJSONFrom(e.server+"/api/v1/pods", &r)
	out := map[string]lifecycle.PodView{}
	for _, p := range r.Pods {
		if p.Namespace == e.ns {
			out[p.Name] = *p
		}
	}
	return out
}

// pod finds the agent's view of the pod whose name starts with prefix.
func (e *cutoffEnv) pod(prefix string) (lifecycle.PodView, bool) {
	for name, p := range e.pods() {
		if strings.HasPrefix(name, prefix) && p.InKubelet {
			return p, true
		}
	}
	return lifecycle.PodView{}, false
}

func (e *cutoffEnv) journal() agent.JournalResponse {
	var r agent.JournalResponse
	getJSONFrom(e.server+"/api/v1/journal", &r)
	return r
}

// table prints, for every pod of the namespace, what `kubectl get pods`
// shows (the API server's copy), the kubelet's own live status (its Pods
// API, read directly) and what `podlife pods` shows.
func (e *cutoffEnv) table(title string) string {
	summary := func(p *corev1.Pod) string {
		phase, ready, total, restarts, _ := podSummary(p)
		return fmt.Sprintf("%s %d/%d restarts=%d", phase, ready, total, restarts)
	}
	kubectl := map[string]string{}
	if l, err := e.admin.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{}); err == nil {
		for i := range l.Items {
			kubectl[l.Items[i].Name] = summary(&l.Items[i])
		}
	}
	live := map[string]string{}
	for name, p := range e.kubeletPods() {
		live[name] = summary(p)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\nPOD\tKUBECTL GET PODS\tKUBELET PODS API\tPODLIFE PODS\tWHY (podlife)\n", title)
	views := e.pods()
	var names []string
	for n := range views {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := views[n]
		r, tot := v.ReadyCount()
		why := v.StageReason
		if v.UnknownCause != "" {
			why = "[" + string(v.UnknownCause) + "] " + why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s %d/%d restarts=%d\t%s\n", n, cmp.Or(kubectl[n], "(unreachable)"), cmp.Or(live[n], "-"),
			v.Stage, r, tot, v.Restarts(), oneLineCut(why, 150))
	}
	tw.Flush()
	return b.String()
}

func oneLineCut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// podlifeEvents lists the Events podlife posted in the namespace.
func (e *cutoffEnv) podlifeEvents() []eventsv1.Event {
	l, err := e.admin.EventsV1().Events(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "podlife.dev/seq"})
	if err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

// checkEvents asserts every journaled transition is in an Event exactly
// once (made it, or folded into its series), and Events were made in
// journal order: no seq twice, creation times in seq order.
func (e *cutoffEnv) checkEvents(what string) int {
	evs := e.podlifeEvents()
	seen := map[string]int{}
	type ev struct {
		seq     int
		created time.Time
	}
	var list []ev
	for _, x := range evs {
		for _, s := range eventSeqs(e.t, x) {
			seen[s]++
		}
		var n int
		fmt.Sscan(x.Labels["podlife.dev/seq"], &n)
		list = append(list, ev{n, x.CreationTimestamp.Time})
	}
	for s, n := range seen {
		if n > 1 {
			e.t.Errorf("%s: journal entry %s is in %d Events", what, s, n)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].seq < list[j].seq })
	for i := 1; i < len(list); i++ {
		if list[i].created.Before(list[i-1].created) {
			e.t.Errorf("%s: Event of entry %d created before that of entry %d", what, list[i].seq, list[i-1].seq)
		}
	}
	return len(evs)
}

// TestNodeCutOff runs pods created through the API server on a registered
// kubelet, with the real controllers, and cuts links: the kubelet's, podlife's,
// both, and then kills the API server. podlife on the node must keep telling
// what the pods really do, say who lost whom, and lose no Event. The kubelet
// is 1.37's: podlife follows its Pods API, the kubelet's own live status.
func TestNodeCutOff(t *testing.T) {
	e := startCutoffEnv(t, kubelet.ModePodsAPI)
	e.startPods()
	e.ui = testenv.StartBrowser(t)
	e.ui.Do(t, time.Minute, chromedp.Navigate(e.server+"/ui/"), chromedp.WaitVisible(`#pods tbody tr`))
	t.Run("a: the kubelet alone is cut off", e.kubeletCut)
	e.partitions(t)
}

// TestNodeCutOffPodsHTTP: the kubelet-alone cut again, with the kubelet's
// Pods API off (--feature-gates=PodsAPI=false, as before 1.37): podlife falls
// back to /pods, whose status of API pods is the API server's copy, frozen
// by the cut, and derives the truth from the runtime and the prober.
func TestNodeCutOffPodsHTTP(t *testing.T) {
	e := startCutoffEnv(t, kubelet.ModePodsHTTP)
	e.startPods()
	t.Run("a: the kubelet alone is cut off, /pods", e.kubeletCut)
}

// startPods starts the scenario's pods: a Deployment, a pod with a readiness
// probe, a crash loop and a static pod.
func (e *cutoffEnv) startPods() {
	t := e.t
	ctx := context.Background()
	one := int32(1)
	labels := map[string]string{"app": "web"}
	if _, err := e.admin.AppsV1().Deployments(e.ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: cutoffPodSpec("exec sleep 3600", corev1.RestartPolicyAlways)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod with a readiness probe: while the kubelet is cut off, its
	// readiness comes from the kubelet's prober (its Pods API, or
	// /metrics/probes behind /pods).
	probed := cutoffPodSpec("exec sleep 3600", corev1.RestartPolicyAlways)
	probed.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 2,
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
	if _, err := e.admin.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probed"},
		Spec: probed}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "crash"},
		Spec: cutoffPodSpec("sleep 4; exit 3", corev1.RestartPolicyAlways)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A static pod: its status is the kubelet's live one on either path,
	// and the API server's copy is its mirror pod, joined by the config hash.
	e.c.Kubelet.AddStaticPod(t, "static", testenv.PodManifest(t, "sleeper", "static", "life"))
	testenv.Eventually(t, "web serving and crash looping, through the API server", 3*time.Minute, func() bool {
		web, ok1 := e.pod("web-")
		crash, ok2 := e.pod("crash")
		probed, ok3 := e.pod("probed")
		return ok1 && ok2 && ok3 && web.Stage == lifecycle.StageServing && crash.Restarts() >= 2 && probed.Stage == lifecycle.StageServing
	})
	if web, _ := e.pod("web-"); web.StatusFrom != e.apiPodsFrom() {
		t.Fatalf("an API pod's status comes from %q, want %q", web.StatusFrom, e.apiPodsFrom())
	}
	testenv.Eventually(t, "the static pod joined to its mirror pod", time.Minute, func() bool {
		p, ok := e.pod("static-")
		return ok && p.StatusFrom == lifecycle.FromKubelet && p.APIServer != nil && p.APIServer.UID != p.UID
	})
	t.Log(e.table("before any cut"))
}

// apiPodsFrom is where an API pod's status comes from in this mode: the
// kubelet's own (Pods API) or the API server's copy (/pods).
func (e *cutoffEnv) apiPodsFrom() string {
	if e.mode == kubelet.ModePodsAPI {
		return lifecycle.FromKubelet
	}
	return lifecycle.FromKubeletCache
}

func cutoffPodSpec(cmd string, policy corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{HostNetwork: true, RestartPolicy: policy, TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{Name: "app", Image: testenv.BusyboxImage, ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", cmd}}}}
}

// kubeletCut cuts the kubelet alone from the API server: podlife, on its own
// link, keeps reporting; the crash loop advances, a Job completes, web keeps
// serving; on the Pods API path podlife says what the kubelet itself says.
func (e *cutoffEnv) kubeletCut(t *testing.T) {
	ctx := context.Background()
	defer func() {
		if t.Failed() {
			t.Log(e.table("(a) when it failed"))
		}
	}()
	{
		// A Job whose pod completes during the cut.
		if _, err := e.admin.BatchV1().Jobs(e.ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "report"},
			Spec: batchv1.JobSpec{BackoffLimit: new(int32), Template: corev1.PodTemplateSpec{
				Spec: cutoffPodSpec("sleep 20; exit 0", corev1.RestartPolicyNever)}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "job pod running", 2*time.Minute, func() bool {
			p, ok := e.pod("report-")
			return ok && p.Phase == lifecycle.PhaseRunning && p.StatusFrom == e.apiPodsFrom()
		})
		before, _ := e.pod("crash")
		eventsBefore := len(e.podlifeEvents())
		e.c.KubeletLink.Cut()
		defer e.c.KubeletLink.Heal()
		cutAt := time.Now()
		testenv.Eventually(t, "podlife names the cause: kubelet-apiserver-unreachable", 90*time.Second, func() bool {
			p, ok := e.pod("web-")
			return ok && p.UnknownCause == lifecycle.CauseKubeletAPIServerUnreachable
		})
		t.Logf("cause shown %s after the cut", time.Since(cutAt).Round(time.Second))
		if e.ui != nil {
			e.checkUIDuringCut(t)
		}
		testenv.Eventually(t, "the API server shows the node Unknown", 90*time.Second, func() bool {
			n, err := e.c.NodeReadyCondition(ctx, e.admin)
			return err == nil && n.Status == corev1.ConditionUnknown && n.Reason == "NodeStatusUnknown"
		})
		testenv.Eventually(t, "crash loop advances, job completed, web serving — during the cut", 2*time.Minute, func() bool {
			crash, _ := e.pod("crash")
			job, _ := e.pod("report-")
			web, _ := e.pod("web-")
			return crash.Restarts() >= before.Restarts()+2 && crash.Stage == lifecycle.StageFailing &&
				crash.UnknownCause == lifecycle.CauseKubeletAPIServerUnreachable &&
				job.Stage == lifecycle.StageTerminated && job.Phase == lifecycle.PhaseSucceeded &&
				job.UnknownCause == lifecycle.CauseKubeletAPIServerUnreachable &&
				web.Stage == lifecycle.StageServing && web.UnknownCause == lifecycle.CauseKubeletAPIServerUnreachable
		})
		if e.mode == kubelet.ModePodsAPI {
			e.checkLiveDuringCut(t)
		} else {
			e.checkFrozenDuringCut(t)
		}
		t.Log(e.table("(a) during the kubelet's cut"))
		if n := len(e.podlifeEvents()); n <= eventsBefore {
			t.Errorf("no Event reached the API server during the kubelet's cut (%d before, %d now)", eventsBefore, n)
		}
		e.c.KubeletLink.Heal()
		testenv.Eventually(t, "the node Ready again after healing", 2*time.Minute, func() bool {
			n, err := e.c.NodeReadyCondition(ctx, e.admin)
			return err == nil && n.Status == corev1.ConditionTrue
		})
		testenv.Eventually(t, "the cause clears", 90*time.Second, func() bool {
			p, ok := e.pod("web-")
			return ok && p.UnknownCause == "" && p.Stage == lifecycle.StageServing
		})
		testenv.Eventually(t, "journal delivered", 60*time.Second, func() bool {
			j := e.journal()
			return j.Stats.Delivered >= j.Stats.LastSeq
		})
		e.checkEvents("(a)")
		testenv.Eventually(t, "a KubeletPartitionSummary for the crash-looping pod", time.Minute, func() bool {
			l, _ := e.admin.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{})
			for _, ev := range l.Items {
				if ev.Reason == "KubeletPartitionSummary" && ev.Regarding.Name == "crash" {
					t.Logf("summary: %s", ev.Note)
					return true
				}
			}
			return false
		})
		t.Log(e.table("(a) after healing"))
		if e.ui != nil {
			e.checkUIAfterHeal(t)
		}
	}
}

// checkUIDuringCut: the page, open since before the cut, shows a banner that
// names the kubelet's cut and the pods' Unknown cause, without a reload.
func (e *cutoffEnv) checkUIDuringCut(t *testing.T) {
	var banner string
	testenv.Eventually(t, "the page's banner naming the kubelet's cut", time.Minute, func() bool {
		banner = testenv.Eval[string](t, e.ui, `document.querySelector('#banner').hidden ? '' : document.querySelector('#banner').textContent`)
		return strings.Contains(banner, "The kubelet is cut off from the API server") &&
			strings.Contains(banner, string(lifecycle.CauseKubeletAPIServerUnreachable))
	})
	t.Logf("the page's banner during the cut: %s", banner)
	screenshot(t, e.ui, "cut-node.png")
}

// checkUIAfterHeal: once healed, the banner is gone and the crash-looping
// pod's timeline shades the cut, closed, on its kubelet and API server lanes.
func (e *cutoffEnv) checkUIAfterHeal(t *testing.T) {
	testenv.Eventually(t, "the page's banner gone after the heal", time.Minute, func() bool {
		return testenv.Eval[bool](t, e.ui, `document.querySelector('#banner').hidden`)
	})
	crash, _ := e.pod("crash")
	e.ui.Do(t, time.Minute, chromedp.Navigate(e.server+"/ui/#/pod/"+e.ns+"/"+crash.Name), chromedp.WaitVisible(`#timeline svg`))
	var shade string
	testenv.Eventually(t, "the cut shaded on the timeline, closed", time.Minute, func() bool {
		shade = testenv.Eval[string](t, e.ui, `[...document.querySelectorAll('#timeline rect[data-shade="kubelet-apiserver"] title')].map(t => t.textContent).join('\n')`)
		return strings.Contains(shade, "kubelet cut off from the API server") && !strings.Contains(shade, "– now")
	})
	t.Logf("the cut on %s's timeline: %s", crash.Name, shade)
	screenshot(t, e.ui, "cut-pod.png")
	if errs := e.ui.Errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
}

// checkLiveDuringCut: with the Pods API, podlife's phase, restarts and
// readiness are the kubelet's own during the cut, readiness from its prober
// with no /metrics/probes, and the API server's frozen copy shows as the
// finding apiserver-behind-kubelet for the crash-looping pod.
func (e *cutoffEnv) checkLiveDuringCut(t *testing.T) {
	var diffs []string
	testenv.Eventually(t, "podlife equal to the kubelet's own live status", time.Minute, func() bool {
		diffs = e.agreesWithKubelet()
		return len(diffs) == 0
	})
	p, _ := e.pod("probed")
	if p.Stage != lifecycle.StageServing || p.StatusFrom != lifecycle.FromKubelet || len(p.Containers) != 1 || p.Containers[0].ReadyFrom != "" {
		t.Errorf("probed: %s, status from %q, containers %+v: want Serving with the kubelet's own readiness", p.Stage, p.StatusFrom, p.Containers)
	}
	var behind lifecycle.Mismatch
	testenv.Eventually(t, "the crash loop's restarts the API server's copy lacks: apiserver-behind-kubelet", time.Minute, func() bool {
		crash, _ := e.pod("crash")
		for _, m := range crash.Mismatches {
			if m.Kind == lifecycle.MismatchAPIBehindKubelet {
				behind = m
				return crash.StatusFrom == lifecycle.FromKubelet && crash.KubeletCache == nil
			}
		}
		return false
	})
	t.Logf("crash: %s: %s", behind.Kind, behind.Detail)
	for _, p := range e.pods() {
		for _, m := range p.Mismatches {
			if m.Kind != lifecycle.MismatchAPIBehindKubelet && m.Kind != lifecycle.MismatchAPIStale && m.Kind != lifecycle.MismatchAPIRunningButExited {
				t.Errorf("%s: mismatch %s (%s) between the kubelet's live status and the runtime", p.Name, m.Kind, m.Detail)
			}
		}
	}
}

// checkFrozenDuringCut: behind /pods, the API server's copy is frozen:
// readiness comes from /metrics/probes, the crash loop is derived from the
// runtime ahead of the copy, and the frozen copy raises no mismatch.
func (e *cutoffEnv) checkFrozenDuringCut(t *testing.T) {
	testenv.Eventually(t, "readiness from the kubelet's prober during the cut", time.Minute, func() bool {
		p, _ := e.pod("probed")
		return p.Stage == lifecycle.StageServing && len(p.Containers) == 1 && p.Containers[0].ReadyFrom == lifecycle.FromProbes
	})
	crash, _ := e.pod("crash")
	if crash.StatusFrom != lifecycle.FromRuntime || crash.KubeletCache == nil || crash.KubeletCache.Restarts >= crash.Restarts() {
		t.Errorf("crash: status from %q, kubelet's copy %+v, restarts %d: want derived from the runtime, ahead of the frozen copy",
			crash.StatusFrom, crash.KubeletCache, crash.Restarts())
	}
	for _, p := range e.pods() {
		for _, m := range p.Mismatches {
			// A static pod's status is the kubelet's own on /pods too: its
			// mirror pod may lag it (apiserver-behind-kubelet).
			behind := m.Kind == lifecycle.MismatchAPIBehindKubelet && p.StatusFrom == lifecycle.FromKubelet
			if m.Kind != lifecycle.MismatchAPIStale && m.Kind != lifecycle.MismatchAPIRunningButExited && !behind {
				t.Errorf("%s: mismatch %s (%s) from a cut-off kubelet's frozen copy", p.Name, m.Kind, m.Detail)
			}
		}
	}
}

// partitions runs scenarios b, c and d: podlife's link cut, the whole
// node's, the API server killed.
func (e *cutoffEnv) partitions(t *testing.T) {
	ctx := context.Background()
	// partition cuts podlife's own link (and the kubelet's when both) and
	// checks that the journal keeps everything and delivers it after healing.
	// newCrashLoop starts a fresh crash-looping pod, so the kubelet's
	// back-off (10 s, doubling) is short again for this scenario.
	newCrashLoop := func(t *testing.T, name string) {
		if _, err := e.admin.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: cutoffPodSpec("sleep 4; exit 3", corev1.RestartPolicyAlways)}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, name+" running", 2*time.Minute, func() bool {
			p, ok := e.pod(name)
			return ok && p.Phase == lifecycle.PhaseRunning
		})
	}
	partition := func(t *testing.T, crash string, cutKubelet bool, wantCause lifecycle.Cause) {
		newCrashLoop(t, crash)
		before, _ := e.pod(crash)
		cutAt := time.Now().Add(-time.Second)
		e.agentLink.Cut()
		if cutKubelet {
			e.c.KubeletLink.Cut()
		}
		healed := false
		defer func() { // a failed scenario leaves the next one a whole cluster
			if !healed {
				e.agentLink.Heal()
				e.c.KubeletLink.Heal()
			}
		}()
		testenv.Eventually(t, "podlife names the cause "+string(wantCause), 90*time.Second, func() bool {
			p, ok := e.pod("web-")
			return ok && p.UnknownCause == wantCause
		})
		testenv.Eventually(t, "the crash loop advances during the cut", 2*time.Minute, func() bool {
			p, _ := e.pod(crash)
			return p.Restarts() >= before.Restarts()+2
		})
		j := e.journal()
		var during []string
		for _, p := range j.Pending {
			if upstream.Reportable(p.Transition) && p.Transition.Kind != lifecycle.TransitionSourceDown &&
				p.Transition.Kind != lifecycle.TransitionSourceUp && p.Transition.Pod == crash {
				during = append(during, fmt.Sprint(p.Seq))
			}
		}
		if len(during) == 0 {
			t.Fatalf("no container transition of the crash loop pending during the cut; journal %+v", j.Stats)
		}
		t.Log(e.table(fmt.Sprintf("during the cut (%s)", wantCause)))
		if cutKubelet {
			e.c.KubeletLink.Heal()
		}
		e.agentLink.Heal()
		healed = true
		testenv.Eventually(t, "journal delivered after healing", 2*time.Minute, func() bool {
			j := e.journal()
			return j.Stats.Delivered >= j.Stats.LastSeq
		})
		got := map[string]int{}
		for _, ev := range e.podlifeEvents() {
			for _, q := range eventSeqs(t, ev) {
				got[q]++
			}
		}
		// The summary follows once the backlog has drained.
		summary := false
		testenv.Eventually(t, "a PartitionSummary", time.Minute, func() bool {
			l, _ := e.admin.EventsV1().Events(e.ns).List(ctx, metav1.ListOptions{})
			for _, ev := range l.Items {
				if ev.Reason == "PartitionSummary" && ev.Regarding.Name == crash && ev.CreationTimestamp.After(cutAt) {
					summary = true
					t.Logf("summary: %s", ev.Note)
				}
			}
			return summary
		})
		for _, s := range during {
			if got[s] != 1 {
				t.Errorf("journal entry %s of the cut became %d Events, want 1", s, got[s])
			}
		}
		if !summary {
			t.Error("no PartitionSummary after the cut healed")
		}
		e.checkEvents(string(wantCause))
		t.Logf("%d container transitions of the crash loop journaled during the cut, all delivered once after it", len(during))
	}
	t.Run("b: podlife alone is cut off", func(t *testing.T) {
		partition(t, "crash-b", false, lifecycle.CauseAPIServerUnreachable)
	})
	t.Run("c: the whole node is cut off", func(t *testing.T) {
		partition(t, "crash-c", true, lifecycle.CauseNodeCutOff)
	})
	t.Run("d: the API server is killed and restarted", func(t *testing.T) {
		newCrashLoop(t, "crash-d")
		before, _ := e.pod("crash-d")
		e.c.KillAPIServer()
		restarted := false
		defer func() {
			if !restarted {
				e.c.StartAPIServer()
			}
		}()
		testenv.Eventually(t, "podlife says the node is cut off", 90*time.Second, func() bool {
			p, ok := e.pod("web-")
			return ok && p.UnknownCause == lifecycle.CauseNodeCutOff
		})
		testenv.Eventually(t, "the crash loop advances without an API server", 2*time.Minute, func() bool {
			crash, _ := e.pod("crash-d")
			return crash.Restarts() >= before.Restarts()+2 && crash.Stage == lifecycle.StageFailing
		})
		t.Log(e.table("(d) API server down"))
		e.c.StartAPIServer()
		restarted = true
		testenv.Eventually(t, "journal delivered after the API server is back", 2*time.Minute, func() bool {
			j := e.journal()
			return j.Stats.Delivered >= j.Stats.LastSeq
		})
		testenv.Eventually(t, "the cause clears", 2*time.Minute, func() bool {
			p, ok := e.pod("web-")
			return ok && p.UnknownCause == ""
		})
		e.checkEvents("(d)")
	})
}
