package testenv

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RenewServingCert writes the API server a new serving certificate and key
// signed by the same CA (a new serial: clients that trust CAFile accept it)
// and returns its serial number. A running kube-apiserver takes it for new
// connections (it watches the files); Stop and Start make every client
// reconnect to it.
func (a *APIServer) RenewServingCert(t testing.TB) string {
	t.Helper()
	ca, caKey := a.loadCA(t)
	cert, _ := writeCert(t, filepath.Join(a.Dir, "serving.crt"), filepath.Join(a.Dir, "serving.key"),
		servingTemplate(time.Now().UnixNano(), "kube-apiserver", []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"}), ca, caKey)
	return cert.SerialNumber.String()
}

// loadCA reads the test CA and its key back from CAFile and CAKeyFile.
func (a *APIServer) loadCA(t testing.TB) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	cb, err := os.ReadFile(a.CAFile)
	if err != nil {
		t.Fatalf("API server CA: %v", err)
	}
	kb, err := os.ReadFile(a.CAKeyFile)
	if err != nil {
		t.Fatalf("API server CA key: %v", err)
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		t.Fatalf("API server CA or key: not PEM")
	}
	ca, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		t.Fatalf("API server CA: %v", err)
	}
	key, err := x509.ParsePKCS1PrivateKey(kblk.Bytes)
	if err != nil {
		t.Fatalf("API server CA key: %v", err)
	}
	return ca, key
}

// SetTokenAccepted rewrites the API server's static token file so that
// token is accepted or not (a token not accepted gets 401 Unauthorized).
// kube-apiserver reads the file at start only: Stop and Start it to apply.
func (a *APIServer) SetTokenAccepted(t testing.TB, token string, accepted bool) {
	t.Helper()
	file := filepath.Join(a.Dir, "tokens.csv")
	aside := filepath.Join(a.Dir, "tokens-revoked.csv") // its lines while not accepted
	from, to := file, aside
	if accepted {
		from, to = aside, file
	}
	src, _ := os.ReadFile(from)
	dst, _ := os.ReadFile(to)
	var keep, moved []string
	for _, l := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, token+","):
			moved = append(moved, l)
		default:
			keep = append(keep, l)
		}
	}
	if len(moved) == 0 {
		t.Fatalf("token %q: not in %s", token, from)
	}
	if err := os.WriteFile(from, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("token file: %v", err)
	}
	if err := os.WriteFile(to, append(dst, strings.Join(moved, "\n")+"\n"...), 0o600); err != nil {
		t.Fatalf("token file: %v", err)
	}
}

// Stop stops the runtime's daemon gracefully (SIGTERM, SIGKILL after 10 s),
// as a service manager restarting it does; containers (and their shims or
// conmon) keep running. Restart starts it again.
func (d *criDaemon) Stop(t testing.TB) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.cmd.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s did not stop on SIGTERM within 10s: killed", d.Endpoint)
		d.cmd.kill()
	}
	if d.cmd.ProcessState != nil && !d.cmd.ProcessState.Success() {
		t.Logf("%s exit: %s", d.Endpoint, fmt.Sprint(d.cmd.ProcessState))
	}
}
