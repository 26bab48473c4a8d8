package kubelet

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testCert is a serving certificate with its PEM file content.
type testCert struct {
	tls tls.Certificate
	pem []byte // the certificate chain as the kubelet writes it (leaf first)
}

var serial atomic.Int64

// issue makes a certificate for names (IPs where they parse), signed by
// parent (self-signed when nil), valid from notBefore for a day.
func issue(t *testing.T, cn string, names []string, isCA bool, parent *testCert, notBefore time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, tmpl.KeyUsage|x509.KeyUsageCertSign
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.tls.Leaf, parent.tls.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	c := &testCert{tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pem: pemOf(der)}
	if parent != nil && parent.tls.Leaf.Subject.CommonName != "cluster-ca" {
		// kubeadm's self-signed kubelet.crt: the serving certificate, then
		// the throwaway CA that signed it; both are sent in the handshake.
		c.tls.Certificate = append(c.tls.Certificate, parent.tls.Certificate[0])
		c.pem = append(c.pem, parent.pem...)
	}
	return c
}

// kubeadmCert is a kubelet's self-signed serving certificate as kubeadm's
// kubelet makes it (client-go cert.GenerateSelfSignedCertKey): a CA
// "host-ca@..." and the serving certificate "host@..." for the hostname only.
func kubeadmCert(t *testing.T, host string) *testCert {
	now := time.Now().Add(-time.Hour)
	ca := issue(t, host+"-ca@1700000000", nil, true, nil, now)
	return issue(t, host+"@1700000000", []string{host}, false, ca, now)
}

// tlsKubelet is an httptest HTTPS kubelet whose certificate a test can
// change; it records the Authorization headers it received.
type tlsKubelet struct {
	*httptest.Server
	cert atomic.Pointer[tls.Certificate]
	mu   sync.Mutex
	auth []string
}

func newTLSKubelet(t *testing.T, c *testCert) *tlsKubelet {
	t.Helper()
	body := generated(t)
	k := &tlsKubelet{}
	k.cert.Store(&c.tls)
	k.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.auth = append(k.auth, r.Header.Get("Authorization"))
		k.mu.Unlock()
		w.Write(body)
	}))
	// GetConfigForClient wins over the certificate httptest adds.
	k.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{*k.cert.Load()}}, nil
	}}
	k.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes podlife aborts on purpose
	k.StartTLS()
	t.Cleanup(k.Close)
	return k
}

func (k *tlsKubelet) tokens() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.auth...)
}

// writeFile writes b to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every TLS mode against a kubelet on 127.0.0.1: what verifies it, what the
// one-line error says (the cause and the flag that fixes it), whether the
// token was sent, and the status and metric inputs.
func TestKubeletTLSModes(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	clusterCA := issue(t, "cluster-ca", nil, true, nil, past)
	caSigned := issue(t, "system:node:node-a", []string{"node-a", "127.0.0.1"}, false, clusterCA, past)
	caSignedOtherIP := issue(t, "system:node:node-a", []string{"10.0.0.7"}, false, clusterCA, past)
	selfSigned := kubeadmCert(t, "node-a")
	other := kubeadmCert(t, "node-a")
	expired := issue(t, "node-a", []string{"node-a"}, false, nil, time.Now().Add(-48*time.Hour))
	dir := t.TempDir()
	caFile := writeFile(t, dir, "ca.crt", clusterCA.pem)
	token := writeFile(t, dir, "token", []byte("sa-token"))
	pin := func(c *testCert) string { return writeFile(t, t.TempDir(), "kubelet.crt", c.pem) }

	tests := []struct {
		name     string
		served   *testCert
		cfg      Config
		mode     string
		verified bool
		want     []string // in the status detail (and the error when not up)
		up       bool
	}{
		{name: "cluster CA, certificate for the node IP", served: caSigned, cfg: Config{CAFile: caFile, Node: "node-a"},
			mode: TLSModeClusterCA, verified: true, up: true, want: []string{"verified: subject system:node:node-a, issuer cluster-ca", "kubelet-ca-file " + caFile, "valid for 127.0.0.1"}},
		{name: "cluster CA, certificate for the node name only", served: issue(t, "n", []string{"node-a"}, false, clusterCA, past),
			cfg: Config{CAFile: caFile, Node: "node-a"}, mode: TLSModeClusterCA, verified: true, up: true, want: []string{"valid for node-a"}},
		{name: "cluster CA, certificate for another address", served: caSignedOtherIP, cfg: Config{CAFile: caFile, Node: "node-b"},
			mode: TLSModeClusterCA, want: []string{"signed by the cluster CA but valid for [10.0.0.7], not for 127.0.0.1 or node-b", "fix: set --kubelet-url"}},
		{name: "cluster CA, self-signed kubelet (kubeadm, kind)", served: selfSigned, cfg: Config{CAFile: caFile, Node: "node-a"},
			mode: TLSModeClusterCA, want: []string{"TLS verification failed: the kubelet's certificate (subject node-a@1700000000, issuer node-a-ca@1700000000) is not signed by the CA in kubelet-ca-file",
				"fix: a self-signed kubelet certificate (kubeadm, kind) is pinned with --kubelet-serving-cert-file=/var/lib/kubelet/pki/kubelet.crt"}},
		{name: "cluster CA then pin: self-signed", served: selfSigned, cfg: Config{CAFile: caFile, ServingCertFile: pin(selfSigned), Node: "node-a"},
			mode: TLSModeClusterCAOrPinned, verified: true, up: true, want: []string{"verified: subject node-a@1700000000", "pinned in kubelet-serving-cert-file", "valid for node-a"}},
		{name: "cluster CA then pin: CA-signed", served: caSigned, cfg: Config{CAFile: caFile, ServingCertFile: pin(selfSigned), Node: "node-a"},
			mode: TLSModeClusterCAOrPinned, verified: true, up: true, want: []string{"signed by the CA in kubelet-ca-file"}},
		{name: "pin, wrong node name", served: selfSigned, cfg: Config{ServingCertFile: pin(selfSigned), Node: "node-b"},
			mode: TLSModePinned, want: []string{`is the pinned one but valid for [node-a], not for the node name "node-b"`, "fix: set --kubelet-tls-server-name"}},
		{name: "pin, server name set", served: selfSigned, cfg: Config{ServingCertFile: pin(selfSigned), Node: "node-b", ServerName: "node-a"},
			mode: TLSModePinned, verified: true, up: true, want: []string{"valid for node-a"}},
		{name: "pin, another certificate", served: selfSigned, cfg: Config{CAFile: caFile, ServingCertFile: pin(other), Node: "node-a"},
			mode: TLSModeClusterCAOrPinned, want: []string{"is not signed by the CA in kubelet-ca-file", "; and is not the certificate pinned in kubelet-serving-cert-file",
				"fix: point --kubelet-serving-cert-file at this node's kubelet serving certificate"}},
		{name: "pin, expired", served: expired, cfg: Config{ServingCertFile: pin(expired), Node: "node-a"},
			mode: TLSModePinned, want: []string{"is the pinned one but not valid: x509: certificate has expired", "check the node's clock"}},
		{name: "insecure opt-in", served: selfSigned, cfg: Config{InsecureSkipVerify: true, Node: "node-a"},
			mode: TLSModeInsecure, up: true, want: []string{"not verified (kubelet-insecure-skip-verify, an explicit opt-in): the service-account token is sent to whatever answers at 127.0.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newTLSKubelet(t, tc.served)
			cfg := tc.cfg
			cfg.URL, cfg.TokenFile, cfg.Timeout, cfg.LinkInterval = k.URL, token, 10*time.Second, -1
			st := pollOnce(t, cfg)
			if st.Health.Up != tc.up {
				t.Fatalf("up %v, want %v: %s", st.Health.Up, tc.up, st.Health.LastError)
			}
			if st.TLS.Mode != tc.mode || st.TLS.Verified != tc.verified || st.Health.TLS != st.TLS.Detail {
				t.Fatalf("TLS %+v (health %q), want mode %s verified %v", st.TLS, st.Health.TLS, tc.mode, tc.verified)
			}
			for _, w := range tc.want {
				if !strings.Contains(st.TLS.Detail, w) {
					t.Errorf("TLS detail %q lacks %q", st.TLS.Detail, w)
				}
				if !tc.up && !strings.Contains(st.Health.LastError, w) {
					t.Errorf("error %q lacks %q", st.Health.LastError, w)
				}
			}
			if strings.Contains(st.Health.LastError, "\n") {
				t.Errorf("error is not one line: %q", st.Health.LastError)
			}
			// The token goes only to a verified kubelet, or by opt-in.
			sent := len(k.tokens()) > 0
			if sent != tc.up {
				t.Errorf("token sent %v (%q), want %v", sent, k.tokens(), tc.up)
			}
		})
	}
}

// The pinned file is re-read when it changes: the kubelet renews its
// certificate (and restarts), podlife fails with the old pin, and takes the
// new one as soon as the file holds it.
func TestKubeletPinnedCertRotation(t *testing.T) {
	first, second := kubeadmCert(t, "node-a"), kubeadmCert(t, "node-a")
	k := newTLSKubelet(t, first)
	dir := t.TempDir()
	pinFile := writeFile(t, dir, "kubelet.crt", first.pem)
	token := writeFile(t, dir, "token", []byte("sa-token"))
	var logs bytes.Buffer
	s, err := New(Config{URL: k.URL, TokenFile: token, ServingCertFile: pinFile, Node: "node-a", Timeout: 10 * time.Second, LinkInterval: -1},
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		name   string
		change func()
		up     bool
		want   string
	}{
		{"first certificate", func() {}, true, "verified: subject node-a@1700000000"},
		{"kubelet renewed, file not yet", func() { k.cert.Store(&second.tls); k.CloseClientConnections() }, false,
			"is not the certificate pinned in kubelet-serving-cert-file"},
		{"file rewritten in place", func() { os.WriteFile(pinFile, second.pem, 0o600) }, true, "verified: subject node-a@1700000000"},
	}
	for _, st := range steps {
		st.change()
		s.Poll(ctx)
		got := s.State()
		if got.Health.Up != st.up || !strings.Contains(got.TLS.Detail, st.want) || got.TLS.Verified != st.up {
			t.Fatalf("%s: up %v, TLS %+v; want up %v and %q", st.name, got.Health.Up, got.TLS, st.up, st.want)
		}
	}
	if !strings.Contains(logs.String(), "certificate file changed: re-read") || !strings.Contains(logs.String(), "tlsMode=pinned-cert") {
		t.Fatalf("logs lack the start line or the re-read:\n%s", logs.String())
	}
	if n := len(k.tokens()); n != 2 {
		t.Fatalf("%d requests reached the kubelet, want 2 (none while the pin did not match)", n)
	}
}

// Opting out of verification is said at start, in the state, and when the
// kubelet first answers.
func TestKubeletInsecureSaysSo(t *testing.T) {
	k := newTLSKubelet(t, kubeadmCert(t, "node-a"))
	token := writeFile(t, t.TempDir(), "token", []byte("sa-token"))
	var logs bytes.Buffer
	s, err := New(Config{URL: k.URL, TokenFile: token, InsecureSkipVerify: true, LinkInterval: -1}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if st := s.State(); st.TLS.Mode != TLSModeInsecure || st.TLS.Verified {
		t.Fatalf("before the first poll: %+v", st.TLS)
	}
	s.Poll(context.Background())
	for _, want := range []string{"level=WARN msg=\"kubelet TLS verification is OFF", "level=WARN msg=\"kubelet reachable, NOT verified: the service-account token was sent to it"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, logs.String())
		}
	}
	if got := k.tokens(); len(got) != 1 || got[0] != "Bearer sa-token" {
		t.Fatalf("tokens %q", got)
	}
}

// Contradictory TLS settings are refused; a missing default CA with a pin
// is dropped (off-cluster), an unreadable pin is not.
func TestKubeletTLSConfig(t *testing.T) {
	dir := t.TempDir()
	pinFile := writeFile(t, dir, "kubelet.crt", kubeadmCert(t, "node-a").pem)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"insecure and pin", Config{URL: "https://127.0.0.1:10250", InsecureSkipVerify: true, ServingCertFile: pinFile}, "set it, or kubelet-ca-file/kubelet-serving-cert-file, not both"},
		{"insecure and CA", Config{URL: "https://127.0.0.1:10250", InsecureSkipVerify: true, CAFile: pinFile}, "not both"},
		{"pin on plain HTTP", Config{URL: "http://127.0.0.1:10255", ServingCertFile: pinFile}, "is plain HTTP"},
		{"pin missing", Config{URL: "https://127.0.0.1:10250", ServingCertFile: filepath.Join(dir, "none"), Node: "n"}, "kubelet-serving-cert-file: open"},
		{"pin not PEM", Config{URL: "https://127.0.0.1:10250", ServingCertFile: writeFile(t, dir, "bad", []byte("x")), Node: "n"}, "no PEM certificate in it"},
		{"pin without a name", Config{URL: "https://127.0.0.1:10250", ServingCertFile: pinFile}, "set node-name or kubelet-tls-server-name"},
		{"pin, no default CA off-cluster", Config{URL: "https://127.0.0.1:10250", ServingCertFile: pinFile, Node: "n"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg, quiet())
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if err == nil && s.State().TLS.Mode != TLSModePinned {
				t.Fatalf("mode %q", s.State().TLS.Mode)
			}
		})
	}
}

// A kubelet URL that does not speak TLS, and a 403 that names the missing
// permission and the opt-in.
func TestKubeletNotTLSAnd403(t *testing.T) {
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	st := pollOnce(t, Config{URL: strings.Replace(plain.URL, "http://", "https://", 1), InsecureSkipVerify: true, TokenFile: writeFile(t, t.TempDir(), "t", []byte("x"))})
	if !strings.Contains(st.Health.LastError, "the kubelet did not answer with TLS: is kubelet-url right?") {
		t.Fatalf("plain HTTP at https: %q", st.Health.LastError)
	}
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("Forbidden (user=system:serviceaccount:podlife:podlife, verb=get, resource=nodes, subresource(s)=[proxy])\n"))
	}))
	defer forbidden.Close()
	st = pollOnce(t, Config{URL: forbidden.URL})
	for _, want := range []string{"403 Forbidden (kubelet: Forbidden (user=system:serviceaccount:podlife:podlife, verb=get, resource=nodes, subresource(s)=[proxy]))",
		"lacks RBAC `get` on `nodes/pods` (deploy/rbac.yaml grants it)", "`nodes/proxy`", "deploy/components/kubelet-proxy-rbac"} {
		if !strings.Contains(st.Health.LastError, want) {
			t.Errorf("403: %q lacks %q", st.Health.LastError, want)
		}
	}
	// /metrics and /metrics/probes: nodes/metrics.
	s, err := New(Config{URL: forbidden.URL, LinkInterval: -1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	_, errLink := s.fetchRequestCounts(context.Background())
	_, errProbes := s.fetchProbes(context.Background())
	for _, err := range []error{errLink, errProbes} {
		if err == nil || !strings.Contains(err.Error(), "403 Forbidden: the service account lacks RBAC `get` on `nodes/metrics` (deploy/rbac.yaml grants it)") {
			t.Errorf("metrics 403: %v", err)
		}
	}
}
