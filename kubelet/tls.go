package kubelet

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// How the kubelet source trusts the kubelet it reads (TLSState.Mode and the
// mode label of podlife_kubelet_tls_verified).
const (
	// TLSModeClusterCA verifies the kubelet's serving certificate with the
	// cluster CA (kubelet-ca-file): EKS, GKE, k3s, AKS with serving
	// certificate rotation, kubeadm with serverTLSBootstrap.
	TLSModeClusterCA = "cluster-ca"
	// TLSModePinned accepts only the kubelet's own serving certificate, read
	// from kubelet-serving-cert-file: kubeadm's and kind's self-signed one.
	TLSModePinned = "pinned-cert"
	// TLSModeClusterCAOrPinned tries the cluster CA first, then the pin.
	TLSModeClusterCAOrPinned = "cluster-ca+pinned-cert"
	// TLSModeInsecure is the explicit opt-in kubelet-insecure-skip-verify.
	TLSModeInsecure = "insecure-skip-verify"
	// TLSModePlainHTTP is the read-only port: no TLS, and no token is sent.
	TLSModePlainHTTP = "plain-http"
	// TLSModeAPIServerProxy reads the kubelet through the API server's node
	// proxy (kubelet-kubeconfig): the kubeconfig's CA verifies the API server.
	TLSModeAPIServerProxy = "api-server-proxy"
)

// DefaultServingCertFile is where kubeadm and kind keep the kubelet's
// self-signed serving certificate (the key beside it is never mounted).
const DefaultServingCertFile = "/var/lib/kubelet/pki/kubelet.crt"

// TLSState is how podlife trusts the kubelet it reads.
type TLSState struct {
	// Mode is how the kubelet's serving certificate is checked (a TLSMode* value).
	Mode string
	// Verified is true when the last connection to the kubelet was verified
	// (or, through the API server's proxy, the API server's certificate was).
	Verified bool
	// Detail says in one line what verified the kubelet, or why it is not
	// verified.
	Detail string
}

// TLSError is a kubelet whose serving certificate could not be verified:
// one line naming the cause and the flag that fixes it. The handshake is
// aborted before any request, so the token was not sent.
type TLSError struct{ msg string }

func (e *TLSError) Error() string { return e.msg }

// pemFile is a file of PEM certificates, re-read when its content changes
// (a kubelet renews its serving certificate in place).
type pemFile struct {
	path, flag string
	log        *slog.Logger

	mu    sync.Mutex
	raw   []byte
	pool  *x509.CertPool
	certs []*x509.Certificate
}

// load returns the file's certificates, parsing it again only when its
// bytes changed since the last successful read.
func (f *pemFile) load() (*x509.CertPool, error) {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.flag, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pool != nil && bytes.Equal(b, f.raw) {
		return f.pool, nil
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", f.flag, f.path, err)
		}
		pool.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s %s: no PEM certificate in it", f.flag, f.path)
	}
	if f.pool != nil && f.log != nil {
		f.log.Info("certificate file changed: re-read", "flag", f.flag, "path", f.path, "subject", certs[0].Subject.String(),
			"notAfter", certs[0].NotAfter.UTC().Format(time.RFC3339))
	}
	f.raw, f.pool, f.certs = b, pool, certs
	return pool, nil
}

// trust verifies the kubelet's serving certificate at every TLS handshake:
// with the cluster CA first (the URL's host, else the node name), then with
// the pinned certificate (the node name). It records the outcome for the
// source's status and podlife_kubelet_tls_verified.
type trust struct {
	mode     string
	insecure bool
	ca, pin  *pemFile
	// host is the URL's host; serverName is the name the kubelet's own
	// certificate covers (the node name unless kubelet-tls-server-name).
	host, serverName string

	mu   sync.Mutex
	last TLSState
}

// newTrust loads the configured files once (a file unreadable at start is a
// configuration error) and returns the TLS client configuration that uses
// them. A default CA file that does not exist is dropped when a pin is set.
func newTrust(cfg Config, log *slog.Logger) (*trust, *tls.Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("kubelet-url %q: %w", cfg.URL, err)
	}
	t := &trust{insecure: cfg.InsecureSkipVerify, host: u.Hostname(), serverName: cfg.ServerName}
	if t.serverName == "" {
		t.serverName = cfg.Node
	}
	if !t.insecure {
		if cfg.ServingCertFile != "" {
			t.pin = &pemFile{path: cfg.ServingCertFile, flag: "kubelet-serving-cert-file", log: log}
			if _, err := t.pin.load(); err != nil {
				return nil, nil, err
			}
		}
		if cfg.CAFile != "" {
			t.ca = &pemFile{path: cfg.CAFile, flag: "kubelet-ca-file", log: log}
			if _, err := t.ca.load(); err != nil {
				if t.pin == nil || cfg.CAFile != DefaultCAFile || !errors.Is(err, os.ErrNotExist) {
					return nil, nil, err
				}
				t.ca = nil // off-cluster with a pin: no service-account CA to try
			}
		}
		if t.pin != nil && t.serverName == "" {
			return nil, nil, errors.New("kubelet-serving-cert-file: the pinned certificate is checked for the node name: set node-name or kubelet-tls-server-name")
		}
	}
	switch {
	case t.insecure:
		t.mode = TLSModeInsecure
	case t.ca != nil && t.pin != nil:
		t.mode = TLSModeClusterCAOrPinned
	case t.pin != nil:
		t.mode = TLSModePinned
	default:
		t.mode = TLSModeClusterCA
	}
	t.last = TLSState{Mode: t.mode, Detail: "not connected yet"}
	// Go's own check is replaced by verify (it cannot try two anchors, nor
	// check a name other than the dialled one); verify runs at every
	// handshake, also with InsecureSkipVerify, and records the outcome.
	tc := &tls.Config{InsecureSkipVerify: true, VerifyConnection: t.verify, MinVersion: tls.VersionTLS12} //nolint:gosec // verified in VerifyConnection
	return t, tc, nil
}

// state is the outcome of the last handshake.
func (t *trust) state() TLSState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

func (t *trust) record(verified bool, detail string) {
	t.mu.Lock()
	t.last = TLSState{Mode: t.mode, Verified: verified, Detail: detail}
	t.mu.Unlock()
}

// verify is the TLS client's VerifyConnection.
func (t *trust) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return t.fail("the kubelet presented no certificate", "")
	}
	leaf := cs.PeerCertificates[0]
	if t.insecure {
		t.record(false, fmt.Sprintf("not verified (kubelet-insecure-skip-verify, an explicit opt-in): the service-account token is sent to whatever answers at %s, here %s",
			t.host, certSummary(leaf)))
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	var causes []string
	fix := ""
	if t.ca != nil {
		pool, err := t.ca.load()
		if err == nil {
			var name string
			if name, err = verifyFor(leaf, pool, inter, t.host, t.serverName); err == nil {
				t.record(true, fmt.Sprintf("verified: %s, signed by the CA in kubelet-ca-file %s, valid for %s", certSummary(leaf), t.ca.path, name))
				return nil
			}
		}
		var cause string
		cause, fix = t.caProblem(err)
		causes = append(causes, cause)
	}
	if t.pin != nil {
		pool, err := t.pin.load()
		if err == nil {
			if _, err = verifyFor(leaf, pool, inter, t.serverName); err == nil {
				t.record(true, fmt.Sprintf("verified: %s, the kubelet certificate pinned in kubelet-serving-cert-file %s, valid for %s",
					certSummary(leaf), t.pin.path, t.serverName))
				return nil
			}
		}
		var cause string
		cause, fix = t.pinProblem(err) // the pin was asked for: its fix is the one that matters
		causes = append(causes, cause)
	}
	return t.fail("the kubelet's certificate ("+certSummary(leaf)+") "+strings.Join(causes, "; and "), fix)
}

// fail records and returns the one-line TLSError.
func (t *trust) fail(cause, fix string) error {
	msg := "TLS verification failed: " + cause
	if fix != "" {
		msg += "; fix: " + fix
	}
	msg = strings.Join(strings.Fields(msg), " ")
	t.record(false, msg)
	return &TLSError{msg}
}

// verifyFor verifies leaf's chain to roots, then that it covers one of
// names, and returns that name. The chain comes first: Go's Verify checks the
// name before the chain, which would word an unknown signer as a wrong name.
func verifyFor(leaf *x509.Certificate, roots, inter *x509.CertPool, names ...string) (string, error) {
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return "", err
	}
	var first error
	for _, name := range names {
		if name == "" {
			continue
		}
		err := leaf.VerifyHostname(name)
		if err == nil {
			return name, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = x509.HostnameError{Certificate: leaf}
	}
	return "", first
}

// caProblem words a failed check against the cluster CA, and its fix.
func (t *trust) caProblem(err error) (cause, fix string) {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return "is not signed by the CA in kubelet-ca-file " + t.ca.path,
			"a self-signed kubelet certificate (kubeadm, kind) is pinned with --kubelet-serving-cert-file=" + DefaultServingCertFile +
				" (kustomize component deploy/components/pin-kubelet-cert), or set --kubelet-ca-file to the CA that signed it"
	case errors.As(err, &host):
		return fmt.Sprintf("is signed by the cluster CA but valid for %s, not for %s", validFor(host.Certificate), names(t.host, t.serverName)),
			"set --kubelet-url to an address the certificate covers, or --kubelet-tls-server-name to a name it covers"
	case errors.As(err, &invalid):
		return "is not valid with the cluster CA: " + invalid.Error(), invalidFix(invalid)
	}
	return "cannot be checked with the cluster CA: " + oneLine(err), "set --kubelet-ca-file to a readable PEM file of the CA that signs kubelet certificates"
}

// pinProblem words a failed check against the pinned certificate, and its fix.
func (t *trust) pinProblem(err error) (cause, fix string) {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return "is not the certificate pinned in kubelet-serving-cert-file " + t.pin.path + " (re-read at every connection)",
			"point --kubelet-serving-cert-file at this node's kubelet serving certificate (kubeadm, kind: " + DefaultServingCertFile + ")"
	case errors.As(err, &host):
		return fmt.Sprintf("is the pinned one but valid for %s, not for the node name %q", validFor(host.Certificate), t.serverName),
			"set --kubelet-tls-server-name to a name the certificate covers"
	case errors.As(err, &invalid):
		return "is the pinned one but not valid: " + invalid.Error(), invalidFix(invalid)
	}
	return "cannot be checked against the pin: " + oneLine(err),
		"mount the kubelet's serving certificate file read-only at --kubelet-serving-cert-file"
}

func invalidFix(e x509.CertificateInvalidError) string {
	if e.Reason == x509.Expired {
		return "the kubelet renews its serving certificate on restart or rotation; check the node's clock and the kubelet"
	}
	return "a kubelet serving certificate must allow server authentication; check how the kubelet's certificate is issued"
}

// certSummary names a certificate in a few words.
func certSummary(c *x509.Certificate) string {
	s := "subject " + c.Subject.CommonName
	if c.Issuer.CommonName != c.Subject.CommonName {
		s += ", issuer " + c.Issuer.CommonName
	} else {
		s += ", self-signed"
	}
	return s
}

// validFor lists the names and addresses a certificate covers.
func validFor(c *x509.Certificate) string {
	var out []string
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		return "no name (CN " + c.Subject.CommonName + " only)"
	}
	return "[" + strings.Join(out, " ") + "]"
}

func names(host, serverName string) string {
	if serverName == "" || serverName == host {
		return host
	}
	return host + " or " + serverName
}

// describeTLSFailure words a handshake that failed before any certificate
// check: a peer that does not speak TLS.
func describeTLSFailure(err error) (string, bool) {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return "the kubelet did not answer with TLS: is kubelet-url right? (HTTPS is port 10250; the read-only port 10255 is http://)", true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return "the kubelet refused the TLS handshake: " + op.Err.Error(), true
	}
	return "", false
}
