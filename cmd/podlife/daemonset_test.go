package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// dsImage is the reference the test builds, imports and deploys.
const dsImage = "ghcr.io/podlife/podlife:daemonset-test"

// The agent's identity in the cluster, as deploy/ creates it.
const (
	dsNamespace = "podlife"
	dsSA        = "system:serviceaccount:podlife:podlife"
)

// dsOverlay is the test's kustomization over the repository's deploy/: only
// what this machine forces. The image is the one built and imported here
// (never pulled). Pods must use hostNetwork (CNI has only loopback). The
// kubelet serves on 127.0.0.1:PORT, not status.hostIP:10250, and its
// self-signed certificate is not at /var/lib/kubelet/pki/kubelet.crt; the
// pin component ({{components}}) is the kubeadm/kind mode before 1.37 (the
// rolling update goes to the plain deploy/, which reads the Pods API only);
// its root directory, hence its pods-api/, is not /var/lib/kubelet, and its
// podLogsDir is not /var/log/pods: the runtime's absolute log paths are
// mounted where they are on the host. No kube-proxy: the API server is
// reached at 127.0.0.1 through KUBERNETES_SERVICE_HOST/PORT (through a link
// the test can cut). The CRI socket and the journal's hostPath are the test
// containerd's and a temp dir. The host network is shared with other tests,
// so the API port is a free one (the readiness probe follows the port).
const dsOverlay = `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- {{deploy}}
{{components}}images:
- name: ghcr.io/podlife/podlife
  newTag: daemonset-test
patches:
- target: {kind: DaemonSet, name: podlife}
  patch: |-
    - {op: replace, path: /spec/template/spec/containers/0/ports/0/containerPort, value: {{port}}}
- patch: |-
    apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: podlife, namespace: podlife}
    spec:
      template:
        spec:
          hostNetwork: true
          containers:
          - name: podlife
            imagePullPolicy: Never
            env:
            - {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
            - {name: KUBERNETES_SERVICE_PORT, value: "{{apiPort}}"}
            - {name: PODLIFE_KUBELET_URL, value: "{{kubeletURL}}"}
{{listenEnv}}
          volumes:
          - name: cri-socket
            hostPath: {path: {{criSocket}}, type: Socket}
          - name: journal
            hostPath: {path: {{journalDir}}, type: DirectoryOrCreate}
{{pinVolume}}          - name: kubelet-pods-api
            hostPath: {path: {{podsAPIDir}}, type: Directory}
          - name: test-pod-logs
            hostPath: {path: {{podLogsDir}}, type: Directory}
- target: {kind: DaemonSet, name: podlife}
  patch: |-
    - {op: add, path: /spec/template/spec/containers/0/volumeMounts/-, value: {name: test-pod-logs, mountPath: "{{podLogsDir}}", readOnly: true}}
`

// dsEnv is the DaemonSet deployed in a one-node cluster.
type dsEnv struct {
	t      *testing.T
	c      *testenv.Cluster
	admin  kubernetes.Interface
	kubect string
	link   *testenv.Link // the agent's path to the API server
	server string        // the agent's plain-HTTP API on 127.0.0.1 (the test reads it)
	secure string        // its secure API (HTTPS, callers reviewed by the API server)
	dir    string        // the test's temp dir

	pluginBin string // the dir holding kubectl-podlife, once built
	secretA   string // the line logs-a/crasher prints (checkBlackBoxAuth)
}

// TestDaemonSet deploys deploy/ as a DaemonSet in a real one-node cluster
// from an image built here: the agent reads the kubelet through its webhook
// authentication and authorization with its service-account token over
// verified TLS (the pinned kubelet certificate), reports Events and node
// conditions as its ServiceAccount, is denied nodes/proxy and secrets, loses
// nothing when its pod is deleted mid-churn (the journal on a hostPath), and
// survives a rolling update; kubectl podlife reaches it through the API
// server's pod proxy (checkPlugin).
func TestDaemonSet(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster, the image built and imported into its containerd): not in -short")
	}
	testStart := time.Now()
	dir := t.TempDir() // before the cluster: removed after its containers are gone
	journalDir := filepath.Join(dir, "journal")

	// The image, as make image builds it.
	imageTar := filepath.Join(dir, "podlife-image.tar")
	start := time.Now()
	out, err := exec.Command("go", "run", "../../hack/image", "-C", "../..", "-out", imageTar, "-ref", dsImage,
		"-version", "daemonset-test", "-platforms", "linux/amd64,linux/arm64").CombinedOutput()
	if err != nil {
		t.Fatalf("building the image: %v\n%s", err, out)
	}
	t.Logf("image built in %s:\n%s", time.Since(start).Round(100*time.Millisecond), out)

	start = time.Now()
	c := testenv.StartCluster(t, testenv.ClusterOptions{Tokens: pluginUsers,
		APIServerArgs: []string{"--request-timeout=" + pluginRequestTimeout.String()}})
	t.Logf("one-node cluster ready in %s", time.Since(start).Round(time.Second))
	e := &dsEnv{t: t, c: c, admin: c.Client(t), link: c.NewLink(t), dir: dir}
	if e.kubect, err = exec.LookPath("kubectl"); err != nil {
		e.kubect = testenv.Bin(t, "kubectl")
	}
	start = time.Now()
	ctrOut, err := exec.Command(testenv.Bin(t, "ctr"), "--address", c.Containerd.Socket, "-n", "k8s.io", "images", "import", imageTar).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, ctrOut)
	}
	t.Logf("ctr images import in %s", time.Since(start).Round(10*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpState()
		}
	})

	// The overlay, then apply → Ready.
	overlay, plain := e.writeOverlay(dir, journalDir)
	start = time.Now()
	e.kubectl("apply", "-k", overlay)
	first := e.waitAgentPod("", 3*time.Minute)
	applyToReady := time.Since(start)
	t.Logf("kubectl apply -k → agent pod %s Ready in %s", first.Name, applyToReady.Round(100*time.Millisecond))
	testenv.Eventually(t, "the agent's API on "+e.server, 60*time.Second, func() bool { return getJSONFrom(e.server+"/readyz", &struct{}{}) == 200 })

	t.Run("reads the kubelet over verified TLS with its service-account token", e.checkKubeletTrust)
	t.Run("ServiceAccount: allowed what deploy/ grants, denied nodes/proxy and secrets", e.checkRBAC)

	// Churn: a crash-looping pod, and pods created and deleted every few
	// seconds, until the end of the test.
	c.CreateNamespace(t, "churn")
	e.createPod("churn", "crashloop", []string{"sh", "-c", "sleep 1; exit 3"})
	stopChurn := e.flap("churn")
	defer stopChurn()

	t.Run("Events and node conditions as its ServiceAccount", e.checkReporting)
	t.Run("kubectl podlife --node: through the API server's pod proxy", e.checkPlugin)
	t.Run("crash black box: served to who may get pods/log, directly and through kubectl podlife", e.checkBlackBoxAuth)
	t.Run("kubectl podlife ui --node: the page through the API server, in headless Chromium", e.checkPluginUI)
	t.Run("agent pod deleted mid-churn: the journal on the hostPath loses nothing", func(t *testing.T) { e.checkPodDeletion(t, first) })
	t.Run("rolling update to the plain deploy/ (no pin): Ready, reading the kubelet's Pods API", func(t *testing.T) { e.checkRollingUpdate(t, plain) })
	t.Logf("TestDaemonSet: apply→Ready %s; whole test %s", applyToReady.Round(100*time.Millisecond), time.Since(testStart).Round(time.Second))
}

// writeOverlay writes the test's kustomization and returns its dir.
func (e *dsEnv) writeOverlay(dir, journalDir string) (pinned, plain string) {
	t := e.t
	_, apiPort, err := net.SplitHostPort(e.link.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.LoopbackPort(t)
	// The agent serves its API on port; the test reads it over plain HTTP on
	// 127.0.0.1. Where the API has a secure listener (HTTPS, callers
	// reviewed by the API server), that one takes port and a plain one on
	// 127.0.0.1 is added for the test.
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	agent.Flags(fs)
	listenEnv := fmt.Sprintf("            - {name: PODLIFE_LISTEN_ADDRESS, value: \":%d\"}", port)
	e.server = fmt.Sprintf("http://127.0.0.1:%d", port)
	if fs.Lookup("secure-listen-address") != nil {
		plain := testenv.LoopbackPort(t)
		listenEnv = fmt.Sprintf("            - {name: PODLIFE_SECURE_LISTEN_ADDRESS, value: \":%d\"}\n"+
			"            - {name: PODLIFE_INSECURE_LISTEN_ADDRESS, value: \"127.0.0.1:%d\"}", port, plain)
		e.server = fmt.Sprintf("http://127.0.0.1:%d", plain)
		e.secure = fmt.Sprintf("https://127.0.0.1:%d", port)
	}
	write := func(name string, pin bool) string {
		overlay := filepath.Join(dir, name)
		if err := os.MkdirAll(overlay, 0o755); err != nil {
			t.Fatal(err)
		}
		deploy, err := filepath.Rel(overlay, filepath.Join(testenv.RepoRoot(), "deploy"))
		if err != nil {
			t.Fatal(err)
		}
		components, pinVolume := "", ""
		if pin {
			components = "components:\n- " + deploy + "/components/pin-kubelet-cert\n"
			pinVolume = "          - name: kubelet-serving-cert\n            hostPath: {path: " + e.c.KubeletServingCertFile + ", type: File}\n"
		}
		k := strings.NewReplacer("{{deploy}}", deploy, "{{port}}", strconv.Itoa(port), "{{apiPort}}", apiPort,
			"{{kubeletURL}}", e.c.KubeletURL, "{{listenEnv}}", listenEnv, "{{criSocket}}", e.c.Containerd.Socket,
			"{{journalDir}}", journalDir, "{{components}}", components, "{{pinVolume}}", pinVolume,
			"{{podsAPIDir}}", filepath.Join(e.c.Kubelet.Dir, "root", "pods-api"),
			"{{podLogsDir}}", filepath.Join(e.c.Kubelet.Dir, "logs")).Replace(dsOverlay)
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("overlay %s:\n%s", name, k)
		return overlay
	}
	return write("overlay", true), write("overlay-plain", false)
}

func (e *dsEnv) kubectl(args ...string) string {
	e.t.Helper()
	out, err := exec.Command(e.kubect, append([]string{"--kubeconfig", e.c.AdminKubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitAgentPod waits until an agent pod other than notUID is Ready, and
// returns it.
func (e *dsEnv) waitAgentPod(notUID types.UID, limit time.Duration) corev1.Pod {
	e.t.Helper()
	var ready corev1.Pod
	testenv.Eventually(e.t, "a Ready agent pod", limit, func() bool {
		l, err := e.admin.CoreV1().Pods(dsNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podlife"})
		if err != nil {
			return false
		}
		for _, p := range l.Items {
			if p.UID != notUID && p.DeletionTimestamp == nil && podReady(&p) {
				ready = p
				return true
			}
		}
		return false
	})
	return ready
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// dumpState logs what explains a failure: the pods, the namespace's events,
// and the agent's own log (from the kubelet's pod log dir).
func (e *dsEnv) dumpState() {
	t := e.t
	if out, err := exec.Command(e.kubect, "--kubeconfig", e.c.AdminKubeconfig, "get", "pods", "-A", "-o", "wide").CombinedOutput(); err == nil {
		t.Logf("pods:\n%s", out)
	}
	if out, err := exec.Command(e.kubect, "--kubeconfig", e.c.AdminKubeconfig, "-n", dsNamespace, "get", "events", "--sort-by=.lastTimestamp").CombinedOutput(); err == nil {
		t.Logf("events in %s:\n%s", dsNamespace, testenv.Tail(string(out), 6000))
	}
	logs, _ := filepath.Glob(filepath.Join(e.c.Kubelet.Dir, "logs", dsNamespace+"_*", "podlife", "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		t.Logf("agent log %s:\n%s", f, testenv.Tail(string(b), 5000))
	}
}

// agentLog is the current agent containers' log, from the kubelet's pod log dir.
func (e *dsEnv) agentLog(pod corev1.Pod) string {
	logs, _ := filepath.Glob(filepath.Join(e.c.Kubelet.Dir, "logs", dsNamespace+"_"+pod.Name+"_"+string(pod.UID), "podlife", "*.log"))
	var b strings.Builder
	for _, f := range logs {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

func (e *dsEnv) pods() agent.PodsResponse {
	var r agent.PodsResponse
	getJSONFrom(e.server+"/api/v1/pods", &r)
	return r
}

func (e *dsEnv) journal() agent.JournalResponse {
	var r agent.JournalResponse
	getJSONFrom(e.server+"/api/v1/journal", &r)
	return r
}

func (e *dsEnv) metrics() string {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(e.server + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// checkKubeletTrust: the kubelet source is up over HTTPS, verified with the
// pinned certificate for the node name (the cluster CA, tried first, did not
// sign the test kubelet's self-signed one), and /pods through the kubelet's
// webhook authn/authz shows the agent's own pod.
func (e *dsEnv) checkKubeletTrust(t *testing.T) {
	var r agent.PodsResponse
	testenv.Eventually(t, "the agent's own pod in its view, from the kubelet", 60*time.Second, func() bool {
		r = e.pods()
		for _, p := range r.Pods {
			if p.Namespace == dsNamespace && strings.HasPrefix(p.Name, "podlife-") && p.InKubelet {
				return true
			}
		}
		return false
	})
	// With the Pods API (a local socket) the pod can be there before the
	// agent's first HTTPS request to the kubelet (its /metrics, every 5 s):
	// wait for that connection's verdict, then check it.
	testenv.EventuallyState(t, "the kubelet source's TLS verdict", 60*time.Second, func() (bool, any) {
		r = e.pods()
		h := r.Sources[lifecycle.SourceKubelet]
		return h.TLS != "" && !strings.Contains(h.TLS, "not connected yet"), h
	})
	k := r.Sources[lifecycle.SourceKubelet]
	for _, want := range []string{"verified: ", "the kubelet certificate pinned in kubelet-serving-cert-file /var/lib/kubelet/pki/kubelet.crt",
		"valid for " + e.c.NodeName} {
		if !k.Up || !strings.Contains(k.TLS, want) {
			t.Errorf("kubelet source up %v, tls %q: want %q", k.Up, k.TLS, want)
		}
	}
	if m := e.metrics(); !hasLine(m, `podlife_kubelet_tls_verified{mode="cluster-ca+pinned-cert"} 1`) {
		t.Errorf("/metrics lacks podlife_kubelet_tls_verified{mode=\"cluster-ca+pinned-cert\"} 1")
	}
	// The kubelet authenticates every request with the API server
	// (--anonymous-auth=false, token webhook) and authorizes it there
	// (--authorization-mode=Webhook): the agent's only credential is its
	// pod's projected service-account token.
	var pod corev1.Pod
	l, err := e.admin.CoreV1().Pods(dsNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podlife"})
	if err != nil || len(l.Items) == 0 {
		t.Fatalf("agent pods: %v", err)
	}
	pod = l.Items[0]
	if pod.Spec.ServiceAccountName != "podlife" || !projectsToken(&pod) {
		t.Errorf("agent pod %s: service account %q, projected token %v", pod.Name, pod.Spec.ServiceAccountName, projectsToken(&pod))
	}
	log := e.agentLog(pod)
	for _, want := range []string{`"msg":"kubelet TLS"`, `"tlsMode":"cluster-ca+pinned-cert"`, `"msg":"kubelet reachable"`} {
		if !strings.Contains(log, want) {
			t.Errorf("agent log lacks %s:\n%s", want, testenv.Tail(log, 3000))
		}
	}
	if strings.Contains(log, "NOT verified") || strings.Contains(log, "insecure") {
		t.Errorf("agent log mentions an unverified kubelet:\n%s", testenv.Tail(log, 3000))
	}
	if k.Mode != kubelet.ModePodsAPI {
		t.Errorf("kubelet source mode %q (%s), want %q", k.Mode, k.ModeReason, kubelet.ModePodsAPI)
	}
	t.Logf("kubelet source: %s, %s", k.Mode, k.TLS)
}

func projectsToken(p *corev1.Pod) bool {
	for _, v := range p.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				return true
			}
		}
	}
	return false
}

// checkRBAC asks the API server (SubjectAccessReview, as the kubelet's
// webhook does) what the agent's ServiceAccount may do.
func (e *dsEnv) checkRBAC(t *testing.T) {
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + dsNamespace, "system:authenticated"}
	node := e.c.NodeName
	for _, tc := range []struct {
		attrs authzv1.ResourceAttributes
		allow bool
	}{
		{authzv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "pods", Name: node}, true},
		{authzv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "metrics", Name: node}, true},
		{authzv1.ResourceAttributes{Verb: "patch", Resource: "nodes", Subresource: "status", Name: node}, true},
		{authzv1.ResourceAttributes{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "churn"}, true},
		{authzv1.ResourceAttributes{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-node-lease", Name: node}, true},
		{authzv1.ResourceAttributes{Verb: "watch", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-node-lease", Name: node}, true},
		{authzv1.ResourceAttributes{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-node-lease", Name: node}, false},
		// nodes/proxy: through the kubelet, exec into every pod on the node.
		{authzv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: node}, false},
		{authzv1.ResourceAttributes{Verb: "create", Resource: "nodes", Subresource: "proxy", Name: node}, false},
		{authzv1.ResourceAttributes{Verb: "create", Resource: "pods", Subresource: "exec", Namespace: "churn"}, false},
		{authzv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: dsNamespace}, false},
		{authzv1.ResourceAttributes{Verb: "list", Resource: "secrets"}, false},
		{authzv1.ResourceAttributes{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system"}, false},
	} {
		a := tc.attrs
		sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: dsSA, Groups: groups, ResourceAttributes: &a}}
		got, err := e.admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		if got.Status.Allowed != tc.allow {
			t.Errorf("%s %s/%s %s/%s: allowed %v, want %v (%s)", a.Verb, a.Group, a.Resource, a.Subresource, a.Name,
				got.Status.Allowed, tc.allow, got.Status.Reason)
		}
	}
}

// createPod creates a hostNetwork busybox pod.
func (e *dsEnv) createPod(ns, name string, command []string) {
	e.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
		HostNetwork: true, TerminationGracePeriodSeconds: new(int64),
		Containers: []corev1.Container{{Name: "app", Image: testenv.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: command}}}}
	if _, err := e.admin.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		e.t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
}

// flap creates a pod every 4 s and deletes the one before, until stopped.
func (e *dsEnv) flap(ns string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		zero := int64(0)
		for i := 0; ; i++ {
			name := fmt.Sprintf("flap-%d", i)
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{
				HostNetwork: true, TerminationGracePeriodSeconds: &zero,
				Containers: []corev1.Container{{Name: "app", Image: testenv.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"}}}}}
			e.admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
			if i > 0 {
				e.admin.CoreV1().Pods(ns).Delete(ctx, fmt.Sprintf("flap-%d", i-1), metav1.DeleteOptions{GracePeriodSeconds: &zero})
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(4 * time.Second):
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// podlifeEvents maps journal seq → the podlife Events standing for it.
func (e *dsEnv) podlifeEvents() map[string][]eventsv1.Event {
	l, err := e.admin.EventsV1().Events("").List(context.Background(), metav1.ListOptions{LabelSelector: "podlife.dev/seq"})
	if err != nil {
		e.t.Fatalf("list events: %v", err)
	}
	out := map[string][]eventsv1.Event{}
	for _, ev := range l.Items {
		for _, q := range eventSeqs(e.t, ev) {
			out[q] = append(out[q], ev)
		}
	}
	return out
}

// checkReporting: the agent, whose only API credential is its
// ServiceAccount's token (in-cluster configuration), posts Events about the
// crash-looping pod and sets its node conditions.
func (e *dsEnv) checkReporting(t *testing.T) {
	testenv.Eventually(t, "podlife Events about the crash-looping pod", 120*time.Second, func() bool {
		for _, evs := range e.podlifeEvents() {
			ev := evs[0]
			if ev.Regarding.Name == "crashloop" && ev.ReportingController == "podlife" && strings.Contains(ev.ReportingInstance, e.c.NodeName) {
				t.Logf("event %s: %s %s: %s", ev.Name, ev.Type, ev.Reason, ev.Note)
				return true
			}
		}
		return false
	})
	testenv.Eventually(t, "podlife's node conditions", 60*time.Second, func() bool {
		n, err := e.admin.CoreV1().Nodes().Get(context.Background(), e.c.NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		got := 0
		for _, c := range n.Status.Conditions {
			if (c.Type == upstream.CondKubeletUnreachable || c.Type == upstream.CondRuntimeUnreachable) && c.Status == corev1.ConditionFalse {
				got++
			}
		}
		return got == 2
	})
	if st := e.journal().Stats; st.LastSeq == 0 || st.Delivered == 0 {
		t.Errorf("journal %+v: nothing journaled or delivered", st)
	}
}

// checkPodDeletion cuts the agent off the API server so that transitions
// wait in the journal, deletes the agent's pod while pods churn, and checks
// that the DaemonSet's next pod opens the same journal (same entry IDs, the
// sequence going on), delivers every waiting entry once the link heals, and
// drops none.
func (e *dsEnv) checkPodDeletion(t *testing.T, first corev1.Pod) {
	e.link.Cut()
	healed := false
	defer func() {
		if !healed {
			e.link.Heal()
		}
	}()
	var before agent.JournalResponse
	testenv.Eventually(t, "reportable transitions waiting in the journal while the agent is cut off", 120*time.Second, func() bool {
		before = e.journal()
		n := 0
		for _, en := range before.Pending {
			if upstream.Reportable(en.Transition) {
				n++
			}
		}
		return n >= 3
	})
	var waiting []journal.Entry
	for _, en := range before.Pending {
		if upstream.Reportable(en.Transition) {
			waiting = append(waiting, en)
		}
	}
	eventsBefore := e.podlifeEvents()
	journalID := waiting[0].ID[:strings.LastIndexByte(waiting[0].ID, '-')]

	// The pod, deleted as an operator would (its grace period, SIGTERM).
	start := time.Now()
	if err := e.admin.CoreV1().Pods(dsNamespace).Delete(context.Background(), first.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete agent pod: %v", err)
	}
	second := e.waitAgentPod(first.UID, 3*time.Minute)
	t.Logf("agent pod %s deleted → %s Ready in %s", first.Name, second.Name, time.Since(start).Round(100*time.Millisecond))
	var after agent.JournalResponse
	testenv.Eventually(t, "the new agent's journal", 60*time.Second, func() bool {
		after = e.journal()
		return getJSONFrom(e.server+"/readyz", &struct{}{}) == 200 && after.Stats.LastSeq >= before.Stats.LastSeq
	})
	pendingAfter := map[string]bool{}
	for _, en := range after.Pending {
		pendingAfter[en.ID] = true
		if !strings.HasPrefix(en.ID, journalID+"-") {
			t.Errorf("entry %s after the restart: not of journal %s (a new journal file?)", en.ID, journalID)
		}
	}
	for _, en := range waiting {
		if !pendingAfter[en.ID] {
			t.Errorf("entry %s (seq %d, %s %s/%s) waited before the pod was deleted and is gone after", en.ID, en.Seq, en.Transition.Kind, en.Transition.Namespace, en.Transition.Pod)
		}
	}
	// Heal: the waiting entries become Events, each exactly once.
	e.link.Heal()
	healed = true
	target := after.Stats.LastSeq
	testenv.Eventually(t, "the backlog delivered", 120*time.Second, func() bool { return e.journal().Stats.Delivered >= target })
	got := e.podlifeEvents()
	lost, dup := 0, 0
	for _, en := range waiting {
		evs := got[strconv.FormatUint(en.Seq, 10)]
		switch {
		case len(evs) == 0:
			lost++
			t.Errorf("seq %d (%s %s/%s %s -> %s): no Event after the restart", en.Seq, en.Transition.Kind, en.Transition.Namespace, en.Transition.Pod,
				en.Transition.From, en.Transition.To)
		case len(evs) > 1:
			dup += len(evs) - 1
		case !strings.HasSuffix(evs[0].Name, ".podlife."+en.ID):
			t.Errorf("seq %d: event %s is not named after entry %s", en.Seq, evs[0].Name, en.ID)
		}
	}
	for seq := range eventsBefore {
		if len(got[seq]) != 1 {
			t.Errorf("seq %s: %d Events after the restart, 1 before", seq, len(got[seq]))
		}
	}
	st := e.journal().Stats
	if lost != 0 || dup != 0 || st.Dropped != 0 {
		t.Errorf("lost %d, duplicated %d, dropped %d", lost, dup, st.Dropped)
	}
	seqs := make([]int, 0, len(waiting))
	for _, en := range waiting {
		seqs = append(seqs, int(en.Seq))
	}
	sort.Ints(seqs)
	t.Logf("journal %s: %d reportable entries waited across the pod's deletion (seq %v), all delivered after it; lastSeq %d → %d; %d Events before, %d after; dropped %d",
		journalID, len(waiting), seqs, before.Stats.LastSeq, st.LastSeq, len(eventsBefore), len(got), st.Dropped)
}

// checkRollingUpdate changes the pod template and waits for the rollout to
// complete, the new pod serving with the same journal.
func (e *dsEnv) checkRollingUpdate(t *testing.T, plain string) {
	ctx := context.Background()
	dsc := e.admin.AppsV1().DaemonSets(dsNamespace)
	before, err := dsc.Get(ctx, "podlife", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := e.journal().Stats.LastSeq
	start := time.Now()
	// The plain deploy/: no pin component, so no kubelet certificate and no
	// PODLIFE_KUBELET_SERVING_CERT_FILE; kubectl apply drops both.
	e.kubectl("apply", "-k", plain)
	var ds *appsv1.DaemonSet
	testenv.Eventually(t, "the rolling update to complete", 3*time.Minute, func() bool {
		ds, err = dsc.Get(ctx, "podlife", metav1.GetOptions{})
		if err != nil {
			return false
		}
		s := ds.Status
		return s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled == 1 && s.UpdatedNumberScheduled == 1 &&
			s.NumberAvailable == 1 && s.NumberUnavailable == 0
	})
	rollout := time.Since(start)
	l, err := e.admin.CoreV1().Pods(dsNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podlife"})
	if err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			live = append(live, p)
		}
	}
	if len(live) != 1 || !podReady(&live[0]) || len(live[0].Spec.Containers) != 1 {
		t.Fatalf("after the rollout: %d pods, %+v", len(live), live)
	}
	for _, env := range live[0].Spec.Containers[0].Env {
		if env.Name == "PODLIFE_KUBELET_SERVING_CERT_FILE" {
			t.Fatalf("after the rollout to the plain deploy/: the pod still pins %s", env.Value)
		}
	}
	testenv.Eventually(t, "the updated agent serving, its journal going on", 60*time.Second, func() bool {
		return getJSONFrom(e.server+"/readyz", &struct{}{}) == 200 && e.journal().Stats.LastSeq >= lastSeq
	})
	// Kubernetes 1.37: the kubelet's Pods API needs no certificate and no
	// token; the agent's own pod is in its view from there.
	var k lifecycle.SourceHealth
	testenv.Eventually(t, "the agent's own pod in its view, from the kubelet's Pods API", 60*time.Second, func() bool {
		r := e.pods()
		k = r.Sources[lifecycle.SourceKubelet]
		for _, p := range r.Pods {
			if p.Name == live[0].Name && p.InKubelet {
				return k.Up && k.Mode == kubelet.ModePodsAPI
			}
		}
		return false
	})
	if log := e.agentLog(live[0]); !strings.Contains(log, `"msg":"kubelet source mode"`) || !strings.Contains(log, `"mode":"pods-api"`) {
		t.Errorf("agent log lacks the kubelet source mode line:\n%s", testenv.Tail(log, 3000))
	}
	t.Logf("plain deploy/: kubelet source %s (%s); tls %q", k.Mode, k.ModeReason, k.TLS)
	t.Logf("rolling update (generation %d → %d) complete in %s: pod %s", before.Generation, ds.Generation, rollout.Round(100*time.Millisecond), live[0].Name)
}
