package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kubelet is a real kubelet on a test containerd: standalone (StartKubelet)
// or registered with an API server as a Node (StartCluster). It serves static
// pods from ManifestDir either way.
type Kubelet struct {
	Name        string // node name (--hostname-override)
	ManifestDir string
	// ReadOnlyURL is http://127.0.0.1:PORT, standalone only (empty in a cluster).
	ReadOnlyURL string
	// HTTPSURL is https://127.0.0.1:PORT, serving ServingCertFile: anonymous
	// and unrestricted when standalone; in a cluster a bearer token checked by
	// the API server (token webhook, webhook authorization).
	HTTPSURL string
	// ServingCertFile is the kubelet's self-signed serving certificate (for
	// 127.0.0.1, NodeIP and Name): a client can pin it as its CA.
	ServingCertFile string
	// NodeIP is the kubelet's --node-ip, held by a test-only network interface;
	// it keeps the kubelet from looking up an address for its node name. It
	// is used (the API server's pod proxy to hostNetwork pods) only where the
	// tests run in a network namespace of their own (MainInNetns).
	NodeIP  string
	Dir     string // root, certificates, manifests, pod logs
	PID     int
	LogFile string // the kubelet's own log

	bin, keyFile, ready string
	args                []string
	cmd                 *proc
	serial              int64 // of the serving certificate
}

// kubeletOptions select the kubelet's mode.
type kubeletOptions struct {
	kubeconfig string   // register with this API server; empty: standalone
	args       []string // extra flags, last (they win)
	config     string   // more of the configuration file (YAML, top-level keys)
}

// kubeletConfig sets what only the configuration file can: container logs go
// under the kubelet's own dir instead of /var/log/pods.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
podLogsDir: %s
`

// StartKubelet starts a standalone kubelet against c (cgroupfs, no swap or
// cgroup v1 checks, root, cert and pod log dirs in a temp dir, loopback ports)
// and waits until /pods answers. Static pod manifests go in ManifestDir (it may
// be filled before or after). t.Cleanup stops it by PID; the containerd
// harness then removes the pods' sandboxes.
func StartKubelet(t testing.TB, c CRIRuntime, name string) *Kubelet {
	t.Helper()
	return startKubelet(t, c, name, kubeletOptions{})
}

// StartKubeletRestartingFast is StartKubelet with a crash loop's back-off
// capped at one second (KubeletConfiguration
// crashLoopBackOff.maxContainerRestartPeriod, feature
// KubeletCrashLoopBackOffMax: beta and on since 1.35), for tests that need
// many attempts of a container.
func StartKubeletRestartingFast(t testing.TB, c CRIRuntime, name string) *Kubelet {
	t.Helper()
	return startKubelet(t, c, name, kubeletOptions{config: "crashLoopBackOff: {maxContainerRestartPeriod: 1s}\n"})
}

func startKubelet(t testing.TB, c CRIRuntime, name string, opts kubeletOptions) *Kubelet {
	t.Helper()
	bin := Bin(t, "kubelet")
	dir, err := os.MkdirTemp("", "podlife-kubelet-")
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{Name: name, Dir: dir, ManifestDir: filepath.Join(dir, "manifests"), LogFile: filepath.Join(dir, "kubelet.log")}
	for _, d := range []string{k.ManifestDir, filepath.Join(dir, "root"), filepath.Join(dir, "certs"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, kubeletConfig+opts.config, filepath.Join(dir, "logs")), 0o644); err != nil {
		t.Fatal(err)
	}
	k.NodeIP = addNodeIP(t)
	k.ServingCertFile = filepath.Join(dir, "certs", "kubelet.crt")
	keyFile := filepath.Join(dir, "certs", "kubelet.key")
	k.keyFile = keyFile
	k.writeServingCert(t)

	port, hz := LoopbackPort(t), LoopbackPort(t)
	k.HTTPSURL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--config=" + config,
		"--pod-manifest-path=" + k.ManifestDir,
		"--container-runtime-endpoint=" + c.CRIEndpoint(),
		"--cgroup-driver=cgroupfs", "--fail-swap-on=false", "--fail-cgroupv1=false",
		"--root-dir=" + filepath.Join(dir, "root"), "--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + k.ServingCertFile, "--tls-private-key-file=" + keyFile,
		"--address=127.0.0.1", "--port=" + strconv.Itoa(port),
		"--healthz-bind-address=127.0.0.1", "--healthz-port=" + strconv.Itoa(hz),
		"--cgroups-per-qos=false", "--enforce-node-allocatable=",
		"--hostname-override=" + name, "--node-ip=" + k.NodeIP,
		"--file-check-frequency=1s", "--sync-frequency=2s",
		"--image-gc-high-threshold=100", "--eviction-hard=", "--v=1",
	}
	ready := "http://127.0.0.1:" + strconv.Itoa(hz) + "/healthz"
	if opts.kubeconfig == "" {
		ro := LoopbackPort(t)
		k.ReadOnlyURL = "http://127.0.0.1:" + strconv.Itoa(ro)
		ready = k.ReadOnlyURL + "/pods"
		args = append(args, "--read-only-port="+strconv.Itoa(ro),
			"--anonymous-auth=true", "--authentication-token-webhook=false", "--authorization-mode=AlwaysAllow")
	} else {
		// As kubeadm configures it: bearer tokens reviewed by the API server.
		args = append(args, "--kubeconfig="+opts.kubeconfig, "--read-only-port=0",
			"--anonymous-auth=false", "--authentication-token-webhook=true", "--authorization-mode=Webhook")
	}
	k.bin, k.args, k.ready = bin, append(args, opts.args...), ready
	t.Cleanup(func() {
		k.stop()
		unmountUnder(dir)
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("kubelet dir kept for inspection: %s", dir)
		}
	})
	k.start(t)
	return k
}

// writeServingCert writes a new self-signed serving certificate and key (for
// 127.0.0.1, NodeIP and Name), as kubeadm's kubelet makes its own.
func (k *Kubelet) writeServingCert(t testing.TB) {
	t.Helper()
	k.serial++
	tmpl := servingTemplate(k.serial, k.Name, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(k.NodeIP)}, []string{k.Name, "localhost"})
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	writeCert(t, k.ServingCertFile, k.keyFile, tmpl, nil, nil)
}

// start runs the kubelet and waits until it answers.
func (k *Kubelet) start(t testing.TB) {
	t.Helper()
	k.cmd = startLogged(t, k.LogFile, k.bin, k.args...)
	k.PID = k.cmd.Process.Pid
	if waitHTTP(&http.Client{Timeout: 2 * time.Second}, k.ready, "", k.cmd, 60*time.Second) {
		return
	}
	log, _ := os.ReadFile(k.LogFile)
	t.Fatalf("kubelet %s not answering within 60s; log tail:\n%s", k.ready, Tail(string(log), 4000))
}

// stop stops the kubelet by PID: SIGTERM, then SIGKILL after 5 s.
func (k *Kubelet) stop() {
	if k.cmd == nil {
		return
	}
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.cmd.done:
	case <-time.After(5 * time.Second):
		k.cmd.kill()
	}
}

// RestartWithNewCert stops the kubelet, gives it a new self-signed serving
// certificate and key in the same files (as a kubelet that renews its own
// certificate on restart), and starts it again with the same flags, root dir
// and static pods; the pods' containers keep running meanwhile.
func (k *Kubelet) RestartWithNewCert(t testing.TB) {
	t.Helper()
	k.stop()
	k.writeServingCert(t)
	k.start(t)
}

// Restart stops the kubelet gracefully (SIGTERM) and starts it again with
// the same flags, root directory and static pods, as a service manager
// restarting it does; the pods' containers keep running meanwhile.
func (k *Kubelet) Restart(t testing.TB) {
	t.Helper()
	k.stop()
	k.start(t)
}

// Kill SIGKILLs the kubelet and waits for it: no cleanup, so its sockets
// stay behind, refusing. Start starts it again.
func (k *Kubelet) Kill() { k.cmd.kill() }

// Hang stops the kubelet process (SIGSTOP: it answers nothing, its sockets
// still accept, as a hung kubelet) and returns the function that resumes it
// (SIGCONT), which may be called more than once; t.Cleanup resumes it too.
func (k *Kubelet) Hang(t testing.TB) (resume func()) {
	t.Helper()
	if err := syscall.Kill(k.PID, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP kubelet %d: %v", k.PID, err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { syscall.Kill(k.PID, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}

// Start starts a killed kubelet again with the same flags.
func (k *Kubelet) Start(t testing.TB) {
	t.Helper()
	k.start(t)
}

// PodsAPISocket is the kubelet's Pods API socket (Kubernetes 1.37,
// <root-dir>/pods-api/pods-api.sock).
func (k *Kubelet) PodsAPISocket() string {
	return filepath.Join(k.Dir, "root", "pods-api", "pods-api.sock")
}

// HTTPClient returns a client for HTTPSURL that trusts only ServingCertFile.
func (k *Kubelet) HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	pool, err := certPool(k.ServingCertFile)
	if err != nil {
		t.Fatalf("kubelet serving certificate: %v", err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// AddStaticPod writes a static pod manifest (YAML) for the kubelet to run.
func (k *Kubelet) AddStaticPod(t testing.TB, name, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(k.ManifestDir, name+".yaml"), []byte(strings.TrimSpace(yaml)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Node addresses for test kubelets come from TEST-NET-2: interface plnodeN
// holds 198.51.100.N/32. Creating the interface is the lock that keeps
// concurrent test processes apart.
const nodeIfacePrefix, nodeNet = "plnode", "198.51.100."

// addNodeIP creates a test-only interface (dummy, or ifb where the kernel has
// no dummy driver) holding a free node address, left down unless the tests
// run in their own network namespace (MainInNetns); t.Cleanup deletes it.
func addNodeIP(t testing.TB) string {
	t.Helper()
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Fatalf("node address: the ip command (Debian package iproute2; run `make tools`): %v", err)
	}
	ip := func(args ...string) (string, error) {
		out, err := exec.Command(ipBin, args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	for n := 1; n < 255; n++ {
		name := nodeIfacePrefix + strconv.Itoa(n)
		out, err := ip("link", "add", name, "type", "dummy")
		if err != nil && strings.Contains(out, "Unknown device type") {
			out, err = ip("link", "add", name, "type", "ifb")
		}
		if err != nil {
			if strings.Contains(out, "File exists") {
				continue // another cluster's, or left by a killed test
			}
			t.Fatalf("node address: ip link add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { ip("link", "del", name) })
		addr := nodeNet + strconv.Itoa(n)
		if out, err := ip("addr", "add", addr+"/32", "dev", name); err != nil {
			t.Fatalf("node address: ip addr add %s dev %s: %v: %s", addr, name, err, out)
		}
		if InOwnNetns() { // the test's own namespace (MainInNetns): the address may be used
			if out, err := ip("link", "set", name, "up"); err != nil {
				t.Fatalf("node address: ip link set %s up: %v: %s", name, err, out)
			}
		}
		return addr
	}
	t.Fatalf("node address: %s1..254 all exist", nodeIfacePrefix)
	return ""
}
