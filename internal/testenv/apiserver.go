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
	"strings"
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
	// CAKeyFile signs CAFile's certificates (a controller-manager's cluster signer).
	CAKeyFile string
	// ServiceAccountKeyFile signs and verifies service account tokens.
	ServiceAccountKeyFile string
	Dir                   string
	// AdminKubeconfig (system:masters) and AgentKubeconfig (the podlife service account).
	AdminKubeconfig, AgentKubeconfig string

	t          testing.TB
	etcd, apis *proc
	args       []string
	logFile    string
}

// APIServerOptions configure StartAPIServerWith; the zero value is what
// StartAPIServer runs.
type APIServerOptions struct {
	// NodeAuthorization turns on what registered kubelets and a
	// controller-manager need: --authorization-mode=Node,RBAC, the
	// NodeRestriction admission plugin, and the ServiceAccount admission plugin
	// (otherwise off, as no controller creates the default service accounts).
	NodeAuthorization bool
	// Tokens are static tokens accepted besides AdminToken and AgentToken.
	Tokens []StaticToken
	// Args are kube-apiserver flags appended to the harness's (a repeated
	// flag overrides it), such as --watch-cache=false.
	Args []string
}

// StaticToken is one identity of the API server's --token-auth-file.
type StaticToken struct {
	Token, User string   // bearer token, user name
	Groups      []string // the user's groups
}

// StartAPIServer starts etcd and kube-apiserver (RBAC on, static tokens,
// a generated CA and serving certificate for 127.0.0.1) and waits until
// /readyz answers. t.Cleanup stops both by PID.
func StartAPIServer(t testing.TB) *APIServer {
	t.Helper()
	return StartAPIServerWith(t, APIServerOptions{})
}

// StartAPIServerWith is StartAPIServer with options.
func StartAPIServerWith(t testing.TB, opts APIServerOptions) *APIServer {
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

	clientPort, peerPort, apiPort := LoopbackPort(t), LoopbackPort(t), LoopbackPort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	a.etcd = startLogged(t, filepath.Join(dir, "etcd.log"), etcdBin,
		"--name=podlife", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=podlife="+peerURL, "--log-level=warn")

	ca, caKey := writeTestCA(t, dir)
	a.CAFile, a.CAKeyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	writeCert(t, filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key"),
		servingTemplate(2, "kube-apiserver", []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}), ca, caKey)
	a.ServiceAccountKeyFile = filepath.Join(dir, "sa.key")
	writeRSAKey(t, a.ServiceAccountKeyFile)
	tokens := append([]StaticToken{{AdminToken, "admin", []string{"system:masters"}},
		{AgentToken, AgentUser, []string{"system:serviceaccounts", "system:serviceaccounts:kube-system"}}}, opts.Tokens...)
	var csv strings.Builder
	for _, tok := range tokens {
		fmt.Fprintf(&csv, "%s,%s,uid-%s", tok.Token, tok.User, tok.User)
		if len(tok.Groups) > 0 {
			fmt.Fprintf(&csv, ",%q", strings.Join(tok.Groups, ","))
		}
		csv.WriteString("\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	a.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	a.args = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"), "--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--service-account-key-file=" + a.ServiceAccountKeyFile, "--service-account-signing-key-file=" + a.ServiceAccountKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	if opts.NodeAuthorization {
		a.args = append(a.args, "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction")
	} else {
		// No controller-manager runs, so no default service accounts exist.
		a.args = append(a.args, "--authorization-mode=RBAC", "--disable-admission-plugins=ServiceAccount")
	}
	a.args = append(a.args, opts.Args...)
	a.logFile = filepath.Join(dir, "kube-apiserver.log")
	a.apis = startLogged(t, a.logFile, apiBin, a.args...)
	a.waitReady(90 * time.Second)
	a.AdminKubeconfig = a.writeKubeconfig("admin.kubeconfig", AdminToken)
	a.AgentKubeconfig = a.writeKubeconfig("agent.kubeconfig", AgentToken)
	return a
}

// Kubeconfig writes a kubeconfig named name (in the API server's dir) that
// reaches it directly with token, and returns its path.
func (a *APIServer) Kubeconfig(name, token string) string { return a.writeKubeconfig(name, token) }

func (a *APIServer) writeKubeconfig(name, token string) string {
	path := filepath.Join(a.Dir, name)
	writeKubeconfig(a.t, path, a.URL, a.CAFile, token)
	return path
}

// writeKubeconfig writes a kubeconfig for server, verified with caFile, that
// authenticates with a bearer token.
func writeKubeconfig(t testing.TB, path, server, caFile, token string) {
	t.Helper()
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
`, server, caFile, token)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
}

// waitReady polls /readyz until it answers 200.
func (a *APIServer) waitReady(limit time.Duration) {
	a.t.Helper()
	pool, err := certPool(a.CAFile)
	if err != nil {
		a.t.Fatalf("API server CA: %v", err)
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if waitHTTP(c, a.URL+"/readyz", AdminToken, a.apis, limit) {
		return
	}
	log, _ := os.ReadFile(a.logFile)
	a.t.Fatalf("kube-apiserver not ready within %s; last log lines:\n%s", limit, Tail(string(log), 3000))
}

// certPool is a pool holding the PEM certificates in file.
func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}

// waitHTTP polls url (with a bearer token unless empty) until it answers
// 200, p exits or limit passes, and reports whether it answered.
func waitHTTP(c *http.Client, url, token string, p *proc, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && !p.exited() {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// Freeze stops the API server process (SIGSTOP): connections hang, as in a
// network partition. It returns once every thread has stopped (the kernel
// stops them one by one, so a loaded machine could otherwise still answer a
// request sent right after the signal). Thaw resumes it.
func (a *APIServer) Freeze() {
	a.apis.Process.Signal(syscall.SIGSTOP)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !allStopped(a.apis.Process.Pid); {
		time.Sleep(5 * time.Millisecond)
	}
}

// allStopped reports whether every thread of pid is stopped (state T).
func allStopped(pid int) bool {
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		// pid (comm) state ...: comm may hold spaces, so look after the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return len(stats) > 0
}

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
	return startLoggedEnv(t, logFile, nil, bin, args...)
}

// startLoggedEnv is startLogged with env added to this process's environment.
func startLoggedEnv(t testing.TB, logFile string, env []string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
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
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "podlife-test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	return writeCert(t, filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"), tmpl, nil, nil)
}

// servingTemplate is a TLS server certificate for the given names.
func servingTemplate(serial int64, cn string, ips []net.IP, dnsNames []string) *x509.Certificate {
	return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: ips, DNSNames: dnsNames,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
}

// writeCert writes a new key to keyPath and the certificate made from tmpl,
// signed by parent (self-signed when parent is nil), to certPath.
func writeCert(t testing.TB, certPath, keyPath string, tmpl, parent *x509.Certificate, parentKey *rsa.PrivateKey) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key := writeRSAKey(t, keyPath)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("certificate %s: %v", certPath, err)
	}
	writePEMCert(t, certPath, der)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certificate %s: %v", certPath, err)
	}
	return cert, key
}
