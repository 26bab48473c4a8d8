package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Static tokens of the cluster's components. The bootstrap RBAC policy grants
// system:kube-controller-manager and system:kube-scheduler what they need; a
// kubelet is system:node:<name> in system:nodes, for the Node authorizer.
const (
	controllerManagerToken = "podlife-controller-manager-token"
	schedulerToken         = "podlife-scheduler-token"
	nodeTokenPrefix        = "podlife-node-token-"
)

// ClusterOptions configure StartCluster; the zero value is a usable cluster.
type ClusterOptions struct {
	// NodeName is the kubelet's Node; default "podlife-node".
	NodeName string
	// NodeMonitorGracePeriod is how long the node lifecycle controller lets a
	// kubelet stay silent before it marks the Node's Ready condition Unknown
	// (kube-controller-manager --node-monitor-grace-period); default 20s.
	NodeMonitorGracePeriod time.Duration
	// NodeMonitorPeriod is how often the controller checks (--node-monitor-period); default 2s.
	NodeMonitorPeriod time.Duration
	// ReadyTimeout bounds StartCluster's wait for the Node to be Ready; default 3m.
	ReadyTimeout time.Duration
	// KubeletArgs, ControllerManagerArgs and SchedulerArgs are appended to
	// each component's flags (a repeated flag overrides the harness's).
	KubeletArgs, ControllerManagerArgs, SchedulerArgs []string
	// APIServerArgs are appended to kube-apiserver's flags (APIServerOptions.Args).
	APIServerArgs []string
	// Tokens are users the API server accepts besides the components' and
	// the admin (APIServer.Kubeconfig writes a kubeconfig for one).
	Tokens []StaticToken
}

// Cluster is a real one-node Kubernetes cluster on loopback: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, and a kubelet
// registered as a Node on a real containerd. Every component reaches the API
// server through its own Link, which a test can cut.
type Cluster struct {
	API        *APIServer  // etcd and kube-apiserver (Node,RBAC authorization)
	Containerd *Containerd // the node's runtime, with the test images and CNI loopback
	Kubelet    *Kubelet    // the registered kubelet
	NodeName   string      // its Node
	// KubeletURL is the kubelet's HTTPS API, https://127.0.0.1:PORT; it takes
	// a bearer token the API server authenticates and authorizes (see
	// GrantKubeletAccess), and serves KubeletServingCertFile.
	KubeletURL             string
	KubeletServingCertFile string
	KubeletPID             int
	// KubeletLink, ControllerManagerLink and SchedulerLink are each
	// component's own path to the API server.
	KubeletLink, ControllerManagerLink, SchedulerLink *Link
	// AdminKubeconfig reaches the API server directly, never through a link.
	AdminKubeconfig string
	// Dir holds the controller-manager's and scheduler's logs.
	Dir string
}

// StartCluster starts a one-node cluster and waits until its Node is Ready
// and the controller-manager and scheduler answer /healthz. The kubelet
// authenticates with a static token as system:node:<NodeName>, serves HTTPS
// on 127.0.0.1 with a self-signed certificate (webhook authentication and
// authorization, no anonymous access, no read-only port), and its --node-ip
// is held by a test-only interface (see Kubelet.NodeIP). containerd gets the
// test images and the CNI loopback network; pods must use hostNetwork.
// t.Cleanup stops every process by PID.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	start := time.Now()
	if opts.NodeName == "" {
		opts.NodeName = "podlife-node"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	c := &Cluster{NodeName: opts.NodeName}
	c.Containerd = StartContainerd(t)
	c.Containerd.ImportImages(t)
	c.Containerd.EnableLoopbackCNI(t)

	nodeToken := nodeTokenPrefix + opts.NodeName
	opts.Tokens = append([]StaticToken{{nodeToken, "system:node:" + opts.NodeName, []string{"system:nodes"}}}, opts.Tokens...)
	cp := startControlPlane(t, opts) // waited for below, while the kubelet starts
	c.API, c.AdminKubeconfig, c.Dir = cp.API, cp.API.AdminKubeconfig, cp.Dir
	c.ControllerManagerLink, c.SchedulerLink = cp.ControllerManagerLink, cp.SchedulerLink

	c.KubeletLink = c.API.NewLink(t)
	c.Kubelet = startKubelet(t, c.Containerd, opts.NodeName, kubeletOptions{
		kubeconfig: c.KubeletLink.Kubeconfig(t, nodeToken), args: opts.KubeletArgs})
	c.KubeletURL, c.KubeletServingCertFile, c.KubeletPID = c.Kubelet.HTTPSURL, c.Kubelet.ServingCertFile, c.Kubelet.PID
	cp.waitHealthy()
	c.WaitNodeReady(t, opts.ReadyTimeout)
	t.Logf("cluster ready in %s (node %s, kubelet %s)", time.Since(start).Round(time.Millisecond), c.NodeName, c.KubeletURL)
	return c
}

// ControlPlane is etcd, kube-apiserver (Node,RBAC authorization),
// kube-controller-manager (every controller) and kube-scheduler on loopback,
// each component through its own Link: a cluster without a kubelet, to
// which a test adds its own (StartCluster's, or many hollow ones).
type ControlPlane struct {
	API                                  *APIServer
	ControllerManagerLink, SchedulerLink *Link
	// Dir holds the controller-manager's and scheduler's logs.
	Dir         string
	waitHealthy func()
}

// StartControlPlane starts the control plane with opts' API server flags,
// tokens and controller-manager and scheduler flags, and waits until the
// controller-manager and scheduler answer /healthz. t.Cleanup stops every
// process by PID.
func StartControlPlane(t testing.TB, opts ClusterOptions) *ControlPlane {
	t.Helper()
	cp := startControlPlane(t, opts)
	cp.waitHealthy()
	return cp
}

// startControlPlane starts the control plane without waiting for it.
func startControlPlane(t testing.TB, opts ClusterOptions) *ControlPlane {
	t.Helper()
	if opts.NodeMonitorGracePeriod == 0 {
		opts.NodeMonitorGracePeriod = 20 * time.Second
	}
	if opts.NodeMonitorPeriod == 0 {
		opts.NodeMonitorPeriod = 2 * time.Second
	}
	c := &Cluster{}
	c.API = StartAPIServerWith(t, APIServerOptions{NodeAuthorization: true, Tokens: append([]StaticToken{
		{controllerManagerToken, "system:kube-controller-manager", nil},
		{schedulerToken, "system:kube-scheduler", nil},
	}, opts.Tokens...), Args: opts.APIServerArgs})
	dir, err := os.MkdirTemp("", "podlife-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c.Dir = dir
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("cluster dir kept for inspection: %s", dir)
		}
	})
	cp := &ControlPlane{API: c.API, Dir: dir}
	var kcmHealth, schedHealth func()
	cp.ControllerManagerLink, kcmHealth = c.startComponent(t, "kube-controller-manager", controllerManagerToken, append([]string{
		"--use-service-account-credentials=true",
		"--controllers=*",
		"--service-account-private-key-file=" + c.API.ServiceAccountKeyFile,
		"--root-ca-file=" + c.API.CAFile,
		"--cluster-signing-cert-file=" + c.API.CAFile, "--cluster-signing-key-file=" + c.API.CAKeyFile,
		"--node-monitor-grace-period=" + opts.NodeMonitorGracePeriod.String(),
		"--node-monitor-period=" + opts.NodeMonitorPeriod.String(),
	}, opts.ControllerManagerArgs...))
	cp.SchedulerLink, schedHealth = c.startComponent(t, "kube-scheduler", schedulerToken, opts.SchedulerArgs)
	cp.waitHealthy = func() { kcmHealth(); schedHealth() }
	return cp
}

// startComponent runs kube-controller-manager or kube-scheduler with its own
// link and static token, serving HTTPS on a loopback port, stopped by PID in
// t.Cleanup. It returns the link and a function that waits for /healthz.
func (c *Cluster) startComponent(t testing.TB, name, token string, args []string) (*Link, func()) {
	t.Helper()
	link := c.API.NewLink(t)
	kubeconfig := link.Kubeconfig(t, token)
	port := LoopbackPort(t)
	logFile := filepath.Join(c.Dir, name+".log")
	p := startLogged(t, logFile, Bin(t, name), append([]string{
		"--kubeconfig=" + kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port), "--cert-dir=" + filepath.Join(c.Dir, name),
	}, args...)...)
	t.Cleanup(p.kill)
	return link, func() {
		t.Helper()
		// Its certificate is self-signed at start: nothing to pin.
		hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		if !waitHTTP(hc, "https://127.0.0.1:"+strconv.Itoa(port)+"/healthz", "", p, 90*time.Second) {
			log, _ := os.ReadFile(logFile)
			t.Fatalf("%s not healthy within 90s; log tail:\n%s", name, Tail(string(log), 4000))
		}
	}
}

// NewLink gives one more client (such as the podlife agent) its own cuttable
// path to the API server; see Link.Kubeconfig.
func (c *Cluster) NewLink(t testing.TB) *Link {
	t.Helper()
	return c.API.NewLink(t)
}

// Client returns an admin (system:masters) client that reaches the API
// server directly.
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	if err != nil {
		t.Fatalf("admin kubeconfig: %v", err)
	}
	rc.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	return cs
}

// NodeReadyCondition returns the Node's Ready condition as the API server
// has it (Type empty when the Node or the condition does not exist).
func (c *Cluster) NodeReadyCondition(ctx context.Context, cs kubernetes.Interface) (corev1.NodeCondition, error) {
	n, err := cs.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return corev1.NodeCondition{}, fmt.Errorf("get node %s: %w", c.NodeName, err)
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond, nil
		}
	}
	return corev1.NodeCondition{}, nil
}

// WaitNodeReady waits until the Node's Ready condition is True.
func (c *Cluster) WaitNodeReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	c.WaitNodeReadyStatus(t, corev1.ConditionTrue, timeout)
}

// WaitNodeReadyStatus waits until the Node's Ready condition has status and
// returns it; the test fails after timeout.
func (c *Cluster) WaitNodeReadyStatus(t testing.TB, status corev1.ConditionStatus, timeout time.Duration) corev1.NodeCondition {
	t.Helper()
	cs := c.Client(t)
	var last corev1.NodeCondition
	var lastErr error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		last, lastErr = c.NodeReadyCondition(context.Background(), cs)
		if lastErr == nil && last.Status == status {
			return last
		}
	}
	log, _ := os.ReadFile(c.Kubelet.LogFile)
	t.Fatalf("node %s not Ready=%s within %s: last %+v (error %v); kubelet log tail:\n%s",
		c.NodeName, status, timeout, last, lastErr, Tail(string(log), 3000))
	return last
}

// GrantKubeletAccess lets user (e.g. AgentUser, for AgentToken) read the
// kubelet's HTTPS API: get on nodes/pods, nodes/metrics and nodes/proxy.
func (c *Cluster) GrantKubeletAccess(t testing.TB, user string) {
	t.Helper()
	if err := GrantKubeletRead(context.Background(), c.Client(t), user); err != nil {
		t.Fatalf("grant kubelet access to %s: %v", user, err)
	}
}

// CreateNamespace creates a namespace and waits until the controller-manager
// has given it the default service account and the kube-root-ca.crt
// ConfigMap, which pods need (ServiceAccount admission is on).
func (c *Cluster) CreateNamespace(t testing.TB, name string) {
	t.Helper()
	cs, ctx := c.Client(t), context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	var errSA, errCM error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_, errSA = cs.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		_, errCM = cs.CoreV1().ConfigMaps(name).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if errSA == nil && errCM == nil {
			return
		}
	}
	t.Fatalf("namespace %s not set up by the controller-manager within 60s: service account: %v; root CA: %v", name, errSA, errCM)
}

// KillAPIServer kills the API server (etcd keeps running); clients get
// connection refused until StartAPIServer.
func (c *Cluster) KillAPIServer() { c.API.Stop() }

// StartAPIServer starts a killed API server again on the same port and etcd
// and waits until it is ready.
func (c *Cluster) StartAPIServer() { c.API.Start() }
