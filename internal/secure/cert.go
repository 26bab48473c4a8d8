package secure

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	certutil "k8s.io/client-go/util/cert"
)

// ServingCertificate is the agent's TLS serving certificate: a self-signed
// one generated at start (as the kubelet does without --tls-cert-file), or a
// certificate and key from files, re-read when either file changes.
type ServingCertificate struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   fileStamp // of the files cert was read from
	checked time.Time // when the files were last looked at
}

// fileStamp is what tells that a certificate or key file changed.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// recheckEvery bounds how often a handshake looks at the files (one stat of
// each); a rotated certificate is served at most this long after it lands.
const recheckEvery = time.Second

// NewServingCertificate loads certFile and keyFile, or, when both are empty,
// generates a self-signed certificate for host (the node name) that also
// covers localhost, the loopback addresses and ips.
func NewServingCertificate(certFile, keyFile, host string, ips []net.IP, log *slog.Logger) (*ServingCertificate, error) {
	s := &ServingCertificate{certFile: certFile, keyFile: keyFile, log: log}
	if certFile == "" && keyFile == "" {
		ips = append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...)
		certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(host, ips, []string{"localhost"})
		if err != nil {
			return nil, fmt.Errorf("self-signed serving certificate for %s: %w", host, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("self-signed serving certificate for %s: %w", host, err)
		}
		s.cert = &cert
		return s, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("serving certificate: need both a certificate file and a key file (got %q and %q)", certFile, keyFile)
	}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// SelfSigned reports whether the certificate was generated at start.
func (s *ServingCertificate) SelfSigned() bool { return s.certFile == "" }

// TLSConfig is a server configuration that serves the current certificate.
func (s *ServingCertificate) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.GetCertificate}
}

// GetCertificate returns the certificate to serve, first re-reading the files
// if they changed since the last look (at most once per second). A file that
// cannot be read or does not hold a valid pair keeps the last good
// certificate and is logged; it is tried again at the next look.
func (s *ServingCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certFile == "" || time.Since(s.checked) < recheckEvery {
		return s.cert, nil
	}
	s.checked = time.Now()
	stamp, err := stampOf(s.certFile, s.keyFile)
	if err == nil && stamp == s.stamp {
		return s.cert, nil
	}
	if err == nil {
		err = s.reloadLocked()
	}
	if err != nil {
		s.log.Warn("serving certificate not reloaded: serving the previous one", "err", err)
	}
	return s.cert, nil
}

// reload reads the certificate and key files.
func (s *ServingCertificate) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked()
}

func (s *ServingCertificate) reloadLocked() error {
	stamp, err := stampOf(s.certFile, s.keyFile)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(s.certFile)
	if err != nil {
		return fmt.Errorf("tls-cert-file: %w", err)
	}
	keyPEM, err := os.ReadFile(s.keyFile)
	if err != nil {
		return fmt.Errorf("tls-private-key-file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("tls-cert-file %s and tls-private-key-file %s: %w", s.certFile, s.keyFile, err)
	}
	if s.cert != nil && len(s.cert.Certificate) > 0 && bytes.Equal(s.cert.Certificate[0], cert.Certificate[0]) {
		s.stamp = stamp
		return nil
	}
	if s.cert != nil {
		s.log.Info("serving certificate reloaded", "file", s.certFile)
	}
	s.cert, s.stamp = &cert, stamp
	return nil
}

// stampOf stats both files.
func stampOf(certFile, keyFile string) (fileStamp, error) {
	ci, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls-cert-file: %w", err)
	}
	ki, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls-private-key-file: %w", err)
	}
	return fileStamp{certMod: ci.ModTime(), keyMod: ki.ModTime(), certSize: ci.Size(), keySize: ki.Size()}, nil
}
