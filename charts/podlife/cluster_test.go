package chart

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/podlife/podlife/internal/testenv"
)

// chartTestImage is the reference the test builds, imports and installs.
const chartTestImage = "ghcr.io/podlife/podlife:chart-test"

// clusterValues are the values a helm install on the one-node cluster
// needs, and only what this machine forces (as the DaemonSet test's
// kustomize overlay): the image built and imported here, hostNetwork (CNI
// has only loopback), the kubelet on 127.0.0.1 with its self-signed
// certificate where the harness keeps it (pinned, as on kubeadm and kind),
// the test containerd's socket, a temp journal, the API server at 127.0.0.1
// without kube-proxy, and a free port on the shared host network.
const clusterValues = `image:
  tag: chart-test
  pullPolicy: Never
hostNetwork: true
containerPort: {{port}}
kubelet:
  url: {{kubeletURL}}
  tls:
    mode: pinned
    servingCertPath: {{kubeletCert}}
  podsAPIDir: {{podsAPIDir}}
cri:
  socketPath: {{criSocket}}
journal:
  hostPath: {{journal}}
extraEnv:
- {name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1"}
- {name: KUBERNETES_SERVICE_PORT, value: "{{apiPort}}"}
serviceMonitor:
  enabled: true
prometheusRule:
  enabled: true
grafanaDashboard:
  enabled: true
cli:
  subjects:
  - {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}
`

// TestChartInCluster installs the chart with helm into a real one-node
// cluster, from the image make image builds, imported into the node's
// containerd: the agent pod becomes Ready, reads the kubelet over verified
// TLS, and serves /metrics over HTTPS to the chart's scraper token (and to
// no one without a token); the metrics pass promtool check metrics. Then a
// helm upgrade rolls the DaemonSet, and helm uninstall removes it.
func TestChartInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster, the image built and imported, helm): not in -short")
	}
	testStart := time.Now()
	dir := t.TempDir() // before the cluster: removed after its containers are gone
	root := testenv.RepoRoot()

	start := time.Now()
	imageTar := filepath.Join(dir, "podlife-image.tar")
	if out, err := exec.Command("go", "run", filepath.Join(root, "hack", "image"), "-C", root, "-out", imageTar,
		"-ref", chartTestImage, "-version", "chart-test", "-platforms", "linux/amd64").CombinedOutput(); err != nil {
		t.Fatalf("building the image (make image): %v\n%s", err, out)
	}
	t.Logf("image built in %s", time.Since(start).Round(100*time.Millisecond))

	c := testenv.StartCluster(t, testenv.ClusterOptions{Tokens: []testenv.StaticToken{{Token: "jane-token", User: "jane"}}})
	admin := c.Client(t)
	if out, err := exec.Command(testenv.Bin(t, "ctr"), "--address", c.Containerd.Socket, "-n", "k8s.io", "images", "import", imageTar).CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	installCRDs(t, c.AdminKubeconfig)
	c.CreateNamespace(t, "podlife")

	link := c.NewLink(t)
	_, apiPort, err := net.SplitHostPort(link.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.LoopbackPort(t)
	values := strings.NewReplacer("{{port}}", strconv.Itoa(port), "{{kubeletURL}}", c.KubeletURL,
		"{{kubeletCert}}", c.KubeletServingCertFile, "{{criSocket}}", c.Containerd.Socket,
		"{{journal}}", filepath.Join(dir, "journal"), "{{apiPort}}", apiPort,
		"{{podsAPIDir}}", filepath.Join(c.Kubelet.Dir, "root", "pods-api")).Replace(clusterValues)
	valuesFile := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("values:\n%s", values)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := kubectl(t, "", "--kubeconfig", c.AdminKubeconfig, "get", "pods,events", "-A", "-o", "wide")
			t.Logf("cluster state:\n%s", out)
			logs, _ := filepath.Glob(filepath.Join(c.Kubelet.Dir, "logs", "podlife_*", "podlife", "*.log"))
			for _, f := range logs {
				b, _ := os.ReadFile(f)
				t.Logf("agent log %s:\n%s", f, testenv.Tail(string(b), 4000))
			}
		}
	})

	start = time.Now()
	notes, err := helm(t, "install", "podlife", chartDir, "--kubeconfig", c.AdminKubeconfig, "--namespace", "podlife", "-f", valuesFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, notes)
	}
	first := waitAgentPod(t, admin, "", 3*time.Minute)
	t.Logf("helm install → agent pod %s Ready in %s", first.Name, time.Since(start).Round(100*time.Millisecond))
	t.Run("kubectl podlife as the NOTES say, by a cli.subjects user", func(t *testing.T) { checkPluginFromNotes(t, c, notes, first) })

	// Prometheus' view: the chart's scraper token, over HTTPS.
	var token string
	testenv.Eventually(t, "the podlife-scraper-token Secret filled in", time.Minute, func() bool {
		s, err := admin.CoreV1().Secrets("podlife").Get(context.Background(), "podlife-scraper-token", metav1.GetOptions{})
		if err == nil {
			token = string(s.Data["token"])
		}
		return token != ""
	})
	secure := "https://127.0.0.1:" + strconv.Itoa(port)
	if code, _ := httpsGet(t, secure+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: HTTP %d, want 401", code)
	}
	var metrics string
	testenv.Eventually(t, "/metrics with the scraper token: the kubelet source up", time.Minute, func() bool {
		code, body := httpsGet(t, secure+"/metrics", token)
		metrics = body
		return code == 200 && strings.Contains(body, `podlife_source_up{source="kubelet"} 1`)
	})
	cmd := exec.Command(testenv.Bin(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	code, body := httpsGet(t, secure+"/api/v1/pods", token)
	var pods struct {
		Sources map[string]struct {
			Up  bool   `json:"up"`
			TLS string `json:"tls"`
		} `json:"sources"`
	}
	if err := json.Unmarshal([]byte(body), &pods); code != 200 || err != nil {
		t.Fatalf("/api/v1/pods: HTTP %d, %v\n%s", code, err, testenv.Tail(body, 1000))
	}
	if k := pods.Sources["kubelet"]; !k.Up || !strings.HasPrefix(k.TLS, "verified") {
		t.Errorf("kubelet source: up %v, tls %q: want verified", k.Up, k.TLS)
	}

	// An upgrade rolls the DaemonSet: a new pod, Ready.
	start = time.Now()
	if out, err := helm(t, "upgrade", "podlife", chartDir, "--kubeconfig", c.AdminKubeconfig, "--namespace", "podlife",
		"-f", valuesFile, "--set", "extraArgs[0]=--stuck-threshold=10m"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	second := waitAgentPod(t, admin, first.UID, 3*time.Minute)
	if !strings.Contains(strings.Join(second.Spec.Containers[0].Args, " "), "--stuck-threshold=10m") {
		t.Errorf("upgraded pod's args %v", second.Spec.Containers[0].Args)
	}
	t.Logf("helm upgrade → new agent pod %s Ready in %s", second.Name, time.Since(start).Round(100*time.Millisecond))

	if out, err := helm(t, "uninstall", "podlife", "--kubeconfig", c.AdminKubeconfig, "--namespace", "podlife", "--wait"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	testenv.Eventually(t, "the agent pods gone after helm uninstall", 2*time.Minute, func() bool {
		l, err := admin.CoreV1().Pods("podlife").List(context.Background(), metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
	t.Logf("TestChartInCluster: %s", time.Since(testStart).Round(time.Second))
}

// checkPluginFromNotes runs the kubectl podlife command the chart's NOTES
// print (its flags name the release's namespace, labels and viewer) as jane,
// whom cli.subjects binds to Role FULLNAME-cli, through a real kubectl and the
// API server's pod proxy: it lists the agent's own pod.
func checkPluginFromNotes(t *testing.T, c *testenv.Cluster, notes string, agentPod corev1.Pod) {
	_, cmdline, ok := strings.Cut(notes, "  kubectl podlife pods ")
	if !ok {
		t.Fatalf("the NOTES print no kubectl podlife command:\n%s", notes)
	}
	var args []string
	for _, line := range strings.Split(cmdline, "\n") {
		line = strings.TrimSpace(line)
		more := strings.HasSuffix(line, "\\")
		args = append(args, strings.Fields(strings.TrimSuffix(line, "\\"))...)
		if !more {
			break
		}
	}
	for i, a := range args {
		if a == "<NODE>" {
			args[i] = c.NodeName
		}
	}
	bin := filepath.Join(t.TempDir(), "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-podlife"), "./cmd/podlife")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build kubectl-podlife: %v\n%s", err, out)
	}
	cmd := exec.Command(kubectlBin(t), append([]string{"podlife", "pods"}, append(args, "-o", "json")...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "KUBECONFIG="+c.API.Kubeconfig("jane.kubeconfig", "jane-token"))
	out, err := cmd.Output()
	var got struct {
		Node string
		Pods []struct{ Namespace, Name string }
	}
	if err != nil || json.Unmarshal(out, &got) != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kubectl podlife pods %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	found := false
	for _, p := range got.Pods {
		found = found || (p.Namespace == "podlife" && p.Name == agentPod.Name)
	}
	if got.Node != c.NodeName || !found {
		t.Errorf("kubectl podlife pods %s: node %q, want %q and the agent pod %s among %d pods", strings.Join(args, " "), got.Node, c.NodeName, agentPod.Name, len(got.Pods))
	}
	t.Logf("kubectl podlife pods %s: %d pods", strings.Join(args, " "), len(got.Pods))
}

// waitAgentPod waits until an agent pod other than notUID is Ready.
func waitAgentPod(t *testing.T, cs kubernetes.Interface, notUID types.UID, limit time.Duration) corev1.Pod {
	t.Helper()
	var ready corev1.Pod
	testenv.Eventually(t, "a Ready agent pod", limit, func() bool {
		l, err := cs.CoreV1().Pods("podlife").List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=podlife"})
		if err != nil {
			return false
		}
		for _, p := range l.Items {
			if p.UID == notUID || p.DeletionTimestamp != nil {
				continue
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					ready = p
					return true
				}
			}
		}
		return false
	})
	return ready
}

// httpsGet GETs an agent's secure URL (its certificate is self-signed) with
// a bearer token.
func httpsGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
