package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Tokens the API server accepts (static token file).
const (
	AdminToken = "podlife-admin-token"
	// AgentToken authenticates as system:serviceaccount:kube-system:podlife, so
	// tests exercise the RBAC in deploy/.
	AgentToken = "podlife-agent-token"
	AgentUser  = "system:serviceaccount:kube-system:podlife"
)

// APIServer is a real kube-apiserver with its own etcd, on loopback.
type APIServer struct {
	URL    string // https://127.0.0.1:PORT
	CAFile string
	Dir    string
	// AdminKubeconfig (system:masters) and AgentKubeconfig (the podlife service account).
	AdminKubeconfig, AgentKubeconfig string

	t          testing.TB
	etcd, apis *proc
	args       []string
	logFile    string
}

// StartAPIServer starts etcd and kube-apiserver (RBAC on, static tokens,
// a generated CA and serving certificate for 127.0.0.1) and waits until
// /readyz answers. t.Cleanup stops both by PID.
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	etcdBin, apiBin := Bin(t, "etcd"), Bin(t, "kube-apiserver")
	dir, err := os.MkdirTemp("", "podlife-apiserver-")
	if err != nil {
		t.Fatal(err)
	}
	a := &APIServer{Dir: dir, t: t}
	t.Cleanup(func() {
		a.stop()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("apiserver dir kept for inspection: %s", dir)
		}
	})

	clientPort, peerPort, apiPort := loopbackPort(t), loopbackPort(t), loopbackPort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	a.etcd = startLogged(t, filepath.Join(dir, "etcd.log"), etcdBin,
		"--name=podlife", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=podlife="+peerURL, "--log-level=warn")

	ca, caKey := writeTestCA(t, dir)
	a.CAFile = filepath.Join(dir, "ca.crt")
	writeServingCert(t, dir, ca, caKey)
	saKey := filepath.Join(dir, "sa.key")
	writeRSAKey(t, saKey)
	tokens := fmt.Sprintf("%s,admin,uid-admin,system:masters\n%s,%s,uid-podlife,\"system:serviceaccounts,system:serviceaccounts:kube-system\"\n",
		AdminToken, AgentToken, AgentUser)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	a.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	a.args = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"), "--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		// No controller-manager runs, so no default service accounts exist.
		"--disable-admission-plugins=ServiceAccount",
	}
	a.logFile = filepath.Join(dir, "kube-apiserver.log")
	a.apis = startLogged(t, a.logFile, apiBin, a.args...)
	a.waitReady(90 * time.Second)
	a.AdminKubeconfig = a.writeKubeconfig("admin.kubeconfig", AdminToken)
	a.AgentKubeconfig = a.writeKubeconfig("agent.kubeconfig", AgentToken)
	return a
}

func (a *APIServer) writeKubeconfig(name, token string) string {
	path := filepath.Join(a.Dir, name)
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: user
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: user}
current-context: test
`, a.URL, a.CAFile, token)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		a.t.Fatal(err)
	}
	return path
}

// waitReady polls /readyz until it answers 200.
func (a *APIServer) waitReady(limit time.Duration) {
	a.t.Helper()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(a.CAFile)
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if a.apis.exited() {
			break
		}
		req, _ := http.NewRequest("GET", a.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	log, _ := os.ReadFile(a.logFile)
	a.t.Fatalf("kube-apiserver not ready within %s; last log lines:\n%s", limit, lastBytes(string(log), 3000))
}

// Freeze stops the API server process (SIGSTOP): connections hang, as in a
// network partition. Thaw resumes it.
func (a *APIServer) Freeze() { a.apis.Process.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen API server (SIGCONT).
func (a *APIServer) Thaw() { a.apis.Process.Signal(syscall.SIGCONT) }

// Stop kills the API server (connections are refused until Start).
func (a *APIServer) Stop() { a.apis.kill() }

// Start starts a stopped API server again on the same port and etcd.
func (a *APIServer) Start() {
	a.apis = startLogged(a.t, a.logFile, Bin(a.t, "kube-apiserver"), a.args...)
	a.waitReady(90 * time.Second)
}

func (a *APIServer) stop() {
	for _, c := range []*proc{a.apis, a.etcd} {
		if c != nil {
			c.kill()
		}
	}
}

// proc is a started process; one goroutine waits for it.
type proc struct {
	*exec.Cmd
	done chan struct{}
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the process (resuming it first if it was stopped) and waits.
func (p *proc) kill() {
	if !p.exited() {
		p.Process.Signal(syscall.SIGCONT)
		p.Process.Kill()
	}
	<-p.done
}

// startLogged runs a process with its output in logFile. The caller stops it.
func startLogged(t testing.TB, logFile, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &proc{Cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	return p
}

func loopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func writeRSAKey(t testing.TB, path string) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEMCert(t testing.TB, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeTestCA(t testing.TB, dir string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key := writeRSAKey(t, filepath.Join(dir, "ca.key"))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "podlife-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEMCert(t, filepath.Join(dir, "ca.crt"), der)
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func writeServingCert(t testing.TB, dir string, ca *x509.Certificate, caKey *rsa.PrivateKey) {
	t.Helper()
	key := writeRSAKey(t, filepath.Join(dir, "serving.key"))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEMCert(t, filepath.Join(dir, "serving.crt"), der)
}
