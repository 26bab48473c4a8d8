package testenv

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Kubelet is a real kubelet run standalone (no API server) on a test
// containerd, serving static pods from ManifestDir.
type Kubelet struct {
	Name        string // node name (--hostname-override)
	ManifestDir string
	ReadOnlyURL string // http://127.0.0.1:PORT
	HTTPSURL    string // https://127.0.0.1:PORT (self-signed, anonymous auth)
	Dir         string
	PID         int
	LogFile     string
}

// StartKubelet starts a standalone kubelet against c (cgroupfs, no swap or
// cgroup v1 checks, root and cert dirs in a temp dir, loopback ports) and
// waits until /pods answers. Static pod manifests go in ManifestDir (it may
// be filled before or after). t.Cleanup stops it by PID; the containerd
// harness then removes the pods' sandboxes.
func StartKubelet(t testing.TB, c *Containerd, name string) *Kubelet {
	t.Helper()
	bin := Bin(t, "kubelet")
	dir, err := os.MkdirTemp("", "podlife-kubelet-")
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{Name: name, Dir: dir, ManifestDir: filepath.Join(dir, "manifests"), LogFile: filepath.Join(dir, "kubelet.log")}
	for _, d := range []string{k.ManifestDir, filepath.Join(dir, "root"), filepath.Join(dir, "certs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port, ro, hz := loopbackPort(t), loopbackPort(t), loopbackPort(t)
	k.ReadOnlyURL = "http://127.0.0.1:" + strconv.Itoa(ro)
	k.HTTPSURL = "https://127.0.0.1:" + strconv.Itoa(port)
	cmd := startLogged(t, k.LogFile, bin,
		"--pod-manifest-path="+k.ManifestDir,
		"--container-runtime-endpoint="+c.Endpoint,
		"--cgroup-driver=cgroupfs", "--fail-swap-on=false", "--fail-cgroupv1=false",
		"--root-dir="+filepath.Join(dir, "root"), "--cert-dir="+filepath.Join(dir, "certs"),
		"--address=127.0.0.1", "--port="+strconv.Itoa(port), "--read-only-port="+strconv.Itoa(ro),
		"--healthz-bind-address=127.0.0.1", "--healthz-port="+strconv.Itoa(hz),
		"--cgroups-per-qos=false", "--enforce-node-allocatable=",
		"--hostname-override="+name, "--file-check-frequency=1s", "--sync-frequency=2s",
		"--image-gc-high-threshold=100", "--eviction-hard=", "--v=1")
	k.PID = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-cmd.done:
		case <-time.After(5 * time.Second):
			cmd.kill()
		}
		unmountUnder(dir)
		// The kubelet writes container logs under /var/log/pods/NS_NAME-NODE_UID.
		if logs, _ := filepath.Glob("/var/log/pods/*-" + name + "_*"); len(logs) > 0 {
			for _, l := range logs {
				os.RemoveAll(l)
			}
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("kubelet dir kept for inspection: %s", dir)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(k.ReadOnlyURL + "/pods"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return k
			}
		}
		if cmd.exited() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(k.LogFile)
	t.Fatalf("kubelet /pods not answering within 60s; log tail:\n%s", lastBytes(string(log), 4000))
	return nil
}

// AddStaticPod writes a static pod manifest (YAML) for the kubelet to run.
func (k *Kubelet) AddStaticPod(t testing.TB, name, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(k.ManifestDir, name+".yaml"), []byte(strings.TrimSpace(yaml)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
