package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/podlife/podlife/internal/secure"
	"github.com/podlife/podlife/internal/upstream"
)

// endpoint is one listener of the agent's HTTP API.
type endpoint struct {
	l    net.Listener
	tls  *tls.Config                     // nil: plain HTTP
	wrap func(http.Handler) http.Handler // nil: no authentication
}

// URL is the endpoint's base URL, with the address it bound.
func (e endpoint) URL() string {
	if e.tls != nil {
		return "https://" + e.l.Addr().String()
	}
	return "http://" + e.l.Addr().String()
}

// handler is h as this endpoint serves it.
func (e endpoint) handler(h http.Handler) http.Handler {
	if e.wrap == nil {
		return h
	}
	return e.wrap(h)
}

// openEndpoints opens the agent's listeners, the plain HTTP one first: the
// insecure address without authentication, and the secure address over TLS
// for callers the API server authenticates (TokenReview) and authorizes
// (SubjectAccessReview). On error, none stays open.
func openEndpoints(cfg Config, log *slog.Logger) (eps []endpoint, err error) {
	defer func() {
		if err != nil {
			for _, e := range eps {
				e.l.Close()
			}
			eps = nil
		}
	}()
	if cfg.InsecureListenAddress != "" {
		l, err := net.Listen("tcp", cfg.InsecureListenAddress)
		if err != nil {
			return eps, &ConfigError{"insecure-listen-address", err.Error()}
		}
		eps = append(eps, endpoint{l: l})
		level := slog.LevelWarn // reachable from elsewhere, unauthenticated
		if ip := l.Addr().(*net.TCPAddr).IP; ip.IsLoopback() {
			level = slog.LevelInfo
		}
		log.Log(context.Background(), level, "plain HTTP API without authentication", "address", l.Addr().String())
	}
	if !cfg.SecureServing() {
		if cfg.SecureListenAddress != "" {
			log.Info("secure listener off: no API server to review callers (outside a cluster without --kubeconfig)",
				"secure-listen-address", cfg.SecureListenAddress)
		}
		return eps, nil
	}
	e, err := secureEndpoint(cfg, log)
	if err != nil {
		return eps, err
	}
	return append(eps, e), nil
}

// secureEndpoint opens the secure listener with its serving certificate,
// authenticator and authorizer.
func secureEndpoint(cfg Config, log *slog.Logger) (endpoint, error) {
	var ips []net.IP
	if ip := net.ParseIP(os.Getenv("NODE_IP")); ip != nil {
		ips = append(ips, ip)
	}
	cert, err := secure.NewServingCertificate(cfg.TLSCertFile, cfg.TLSPrivateKeyFile, cfg.NodeName, ips, log)
	if err != nil {
		return endpoint{}, &ConfigError{"tls-cert-file", err.Error()}
	}
	authnConfig, err := upstream.RESTConfig(orFirst(cfg.AuthenticationKubeconfig, cfg.Kubeconfig))
	if err != nil {
		return endpoint{}, &ConfigError{"authentication-kubeconfig", err.Error()}
	}
	authn, err := secure.NewAuthenticator(authnConfig)
	if err != nil {
		return endpoint{}, &ConfigError{"authentication-kubeconfig", err.Error()}
	}
	authzConfig, err := upstream.RESTConfig(orFirst(cfg.AuthorizationKubeconfig, cfg.Kubeconfig))
	if err != nil {
		return endpoint{}, &ConfigError{"authorization-kubeconfig", err.Error()}
	}
	authz, err := secure.NewAuthorizer(authzConfig)
	if err != nil {
		return endpoint{}, &ConfigError{"authorization-kubeconfig", err.Error()}
	}
	l, err := net.Listen("tcp", cfg.SecureListenAddress)
	if err != nil {
		return endpoint{}, &ConfigError{"secure-listen-address", err.Error()}
	}
	log.Info("secure API: TLS, callers reviewed by the API server", "address", l.Addr().String(),
		"selfSignedCertificate", cert.SelfSigned(), "authorization", "get nodes/"+secure.APISubresource+" (/api/v1/*), get nodes/"+
			secure.MetricsSubresource+" (/metrics), name "+cfg.NodeName)
	return endpoint{l: l, tls: cert.TLSConfig(), wrap: func(h http.Handler) http.Handler {
		return secure.Filter(h, authn, authz, cfg.NodeName, log)
	}}, nil
}

// orFirst is the first non-empty string.
func orFirst(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// serveHTTP serves h on l, over TLS with tlsConfig unless it is nil, until
// ctx is done, then shuts down gracefully; with the limits of Serve. The
// server's own errors (such as failed TLS handshakes) go to log at debug
// level.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: tlsConfig,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(l, "", "")
			return
		}
		errc <- srv.Serve(l)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
