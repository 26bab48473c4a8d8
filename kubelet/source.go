// Package kubelet is podlife's kubelet source: it follows the kubelet's Pods
// API (Kubernetes 1.37+, podsapi.go) where it answers, else polls its /pods
// endpoint — the node's own record of pod phase, conditions and container
// statuses — and decodes only what the lifecycle model needs.
//
// Access modes and the least RBAC each needs:
//
//   - HTTPS on 10250 (default https://$NODE_IP:10250, else 127.0.0.1) with the
//     pod's service-account token (re-read when it rotates). The kubelet's
//     serving certificate is verified with the cluster CA first, then with
//     the kubelet's own certificate pinned from a file (self-signed kubelet
//     certificates: kubeadm, kind); skipping verification is an explicit
//     opt-in that shows in the source's status. `get` on `nodes/pods` and
//     `nodes/metrics` (KubeletFineGrainedAuthz, GA in 1.36); older kubelets
//     need `get` on `nodes/proxy`, which also allows exec into every pod.
//   - HTTP on the read-only port 10255 (http://127.0.0.1:10255): no RBAC, no token.
//   - A kubeconfig (off-cluster debugging): /pods through the API server's
//     node proxy, /api/v1/nodes/NODE/proxy/pods: `get` on `nodes/proxy`.
package kubelet

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podlife/podlife/lifecycle"
)

// Defaults for in-cluster use.
const (
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// DefaultURL is https://$NODE_IP:10250, or 127.0.0.1 without NODE_IP.
func DefaultURL() string {
	host := os.Getenv("NODE_IP")
	if host == "" {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, "10250")
}

// Config configures the kubelet source.
type Config struct {
	// URL is the kubelet's base URL: https://HOST:10250 or the read-only http://HOST:10255.
	URL string
	// TokenFile holds the bearer token (HTTPS only); re-read when it changes.
	TokenFile string
	// CAFile is the cluster CA that verifies the kubelet's serving
	// certificate (HTTPS only; default the service-account CA).
	CAFile string
	// ServingCertFile pins the kubelet's own serving certificate (a
	// self-signed one: kubeadm, kind), tried after CAFile and checked for
	// ServerName; re-read when it changes.
	ServingCertFile string
	// ServerName is the name the pinned certificate must cover (default Node).
	ServerName string
	// InsecureSkipVerify skips verification: an explicit opt-in, logged at
	// start, shown in State.TLS; the token is still sent.
	InsecureSkipVerify bool
	// Kubeconfig switches to off-cluster mode: /pods via the API server's
	// node proxy for Node, with the kubeconfig's credentials.
	Kubeconfig string
	Node       string
	// PodsAPISocket is the kubelet's Pods API socket (Kubernetes 1.37+;
	// DefaultPodsAPISocket for the default root directory); "" never tries
	// it. Where it answers, it is followed instead of polling /pods.
	PodsAPISocket string
	// PollInterval is the period of /pods polls (default 1s).
	PollInterval time.Duration
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
	// MaxBodyBytes is the largest /pods answer accepted (default 64 MiB).
	MaxBodyBytes int64
	// LinkInterval is how often the kubelet's /metrics is read to tell
	// whether the kubelet reaches the API server (default
	// DefaultLinkInterval; negative: never).
	LinkInterval time.Duration
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.Kubeconfig != "" && c.URL != "" {
		return errors.New("kubelet-url and kubelet-kubeconfig: set one, not both")
	}
	if c.URL == "" && c.Kubeconfig == "" {
		c.URL = DefaultURL()
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.LinkInterval == 0 {
		c.LinkInterval = DefaultLinkInterval
	}
	if c.Kubeconfig != "" {
		if c.Node == "" {
			return errors.New("kubelet via kubeconfig: node-name is required")
		}
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("kubelet-url %q: want https://HOST:10250 or http://HOST:10255", c.URL)
	}
	if u.Scheme == "http" && (c.ServingCertFile != "" || c.InsecureSkipVerify || c.ServerName != "") {
		return fmt.Errorf("kubelet-url %q is plain HTTP: kubelet-serving-cert-file, kubelet-tls-server-name and kubelet-insecure-skip-verify apply to https:// only", c.URL)
	}
	if c.InsecureSkipVerify && (c.ServingCertFile != "" || c.CAFile != "") {
		return errors.New("kubelet-insecure-skip-verify turns verification off: set it, or kubelet-ca-file/kubelet-serving-cert-file, not both")
	}
	if u.Scheme == "https" && c.TokenFile == "" {
		c.TokenFile = DefaultTokenFile
	}
	if u.Scheme == "https" && c.CAFile == "" && !c.InsecureSkipVerify {
		c.CAFile = DefaultCAFile
	}
	switch {
	case c.PollInterval < 10*time.Millisecond:
		return fmt.Errorf("poll-interval %s: must be at least 10ms", c.PollInterval)
	case c.Timeout < 0:
		return fmt.Errorf("kubelet timeout %s: must be positive", c.Timeout)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("kubelet max body %d: must be positive", c.MaxBodyBytes)
	}
	return nil
}

// State is the kubelet's last good /pods answer and the source's health.
type State struct {
	Pods   []*lifecycle.Pod
	Health lifecycle.SourceHealth
	// Link is the kubelet's own connection to the API server, as its
	// /metrics shows it.
	Link lifecycle.KubeletLink
	// Readiness is the prober's readiness by "<pod UID>/<container>", read
	// from /metrics/probes only while the kubelet is cut off (nil otherwise,
	// or when it cannot be read).
	Readiness map[string]lifecycle.ProbeReadiness
	// TLS is how the kubelet is trusted, and whether the last connection
	// was verified (Health.TLS says the same in one line).
	TLS TLSState
	// Generation grows when the pods, the health or the link change: an
	// equal Generation is the same Pods (lifecycle.Input.PodsGeneration).
	Generation uint64
	// Changes names the pods whose records changed, generation by
	// generation (lifecycle.Input.PodsChanges).
	Changes lifecycle.ChangeLog
}

// Source polls the kubelet. Run it with Run; read it with State.
type Source struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client
	podsURL string
	// metricsURL is the kubelet's /metrics, read for its API client's health.
	metricsURL string
	token      tokenFile
	updates    chan struct{}
	// trust verifies the kubelet's serving certificate (nil: not HTTPS).
	trust *trust

	pollMu sync.Mutex   // one Poll at a time: they share buf and dec
	buf    bytes.Buffer // the answer being read, reused across polls
	dec    Decoder      // decodes only the pods that changed
	// podRev numbers the Pods API's pod records (lifecycle.Pod.Revision)
	// across its watches: a revision is never given twice, so a new watch's
	// pod is never taken for an old one's. Only the Run goroutine uses it.
	podRev uint64

	mu      sync.Mutex
	state   State
	links   linkTracker
	linkErr string // the last /metrics failure, logged once
	// readiness follows /metrics/probes while the kubelet is cut off.
	readiness readinessTracker
	probesErr string
	last      []byte // last payload, to skip identical ones
}

// New builds a source: the HTTP client and its TLS settings.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, log: log.With("source", lifecycle.SourceKubelet), updates: make(chan struct{}, 1)}
	s.state.Health.Configured = true
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubelet via kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		rt, err := rest.TransportFor(rc)
		if err != nil {
			return nil, fmt.Errorf("kubelet via kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
		s.client = &http.Client{Transport: rt, Timeout: cfg.Timeout}
		s.state.TLS = TLSState{Mode: TLSModeAPIServerProxy, Verified: !rc.Insecure,
			Detail: "through the API server's node proxy: the kubeconfig's CA verifies the API server"}
		if rc.Insecure {
			s.state.TLS.Detail = "through the API server's node proxy: not verified (the kubeconfig sets insecure-skip-tls-verify)"
		}
		s.state.Health.TLS = s.state.TLS.Detail
		s.podsURL = strings.TrimSuffix(rc.Host, "/") + "/api/v1/nodes/" + url.PathEscape(cfg.Node) + "/proxy/pods"
		s.metricsURL = strings.TrimSuffix(s.podsURL, "/pods") + "/metrics"
		return s, nil
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: time.Minute, TLSHandshakeTimeout: cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout, DisableCompression: false}
	if strings.HasPrefix(cfg.URL, "https://") {
		t, tc, err := newTrust(cfg, log)
		if err != nil {
			return nil, err
		}
		s.trust, tr.TLSClientConfig = t, tc
		s.token.path = cfg.TokenFile
		if t.insecure {
			s.log.Warn("kubelet TLS verification is OFF (kubelet-insecure-skip-verify, an explicit opt-in): the service-account token is sent to whatever answers at the kubelet URL; pin the kubelet's certificate with kubelet-serving-cert-file instead",
				"url", cfg.URL, "tlsMode", t.mode)
		} else {
			s.log.Info("kubelet TLS", "url", cfg.URL, "tlsMode", t.mode, "caFile", fileOf(t.ca), "servingCertFile", fileOf(t.pin), "serverName", t.serverName)
		}
	}
	s.state.TLS = s.tlsState()
	s.state.Health.TLS = s.state.TLS.Detail
	s.client = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	s.podsURL = strings.TrimSuffix(cfg.URL, "/") + "/pods"
	s.metricsURL = strings.TrimSuffix(cfg.URL, "/") + "/metrics"
	return s, nil
}

// Updates is signalled (coalesced) whenever State changes.
func (s *Source) Updates() <-chan struct{} { return s.updates }

// State returns the current view (the pods slice is shared: do not modify).
func (s *Source) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Run follows the kubelet until ctx is done; failures are recorded, never
// fatal. Where the Pods API socket is configured and answers, it follows
// WatchPods (the kubelet's live status); where it is missing, refused or
// Unimplemented, it polls /pods and tries the socket again every
// podsAPIRetry. A watch that breaks is resumed with a capped backoff and a
// full resync.
func (s *Source) Run(ctx context.Context) error {
	if s.cfg.LinkInterval > 0 {
		go s.followLink(ctx)
	}
	if s.cfg.PodsAPISocket == "" {
		s.setMode(ModePodsHTTP, "no Pods API socket configured (kubelet-pods-api-socket)")
		s.pollFor(ctx, 0)
		return nil
	}
	backoff := podsAPIMinBackoff
	for ctx.Err() == nil {
		synced, err := s.podsAPIWatch(ctx)
		switch {
		case ctx.Err() != nil:
		case isAbsent(err) && !synced:
			s.setMode(ModePodsHTTP, oneLine(err))
			s.pollFor(ctx, podsAPIRetry)
		default:
			if synced {
				backoff = podsAPIMinBackoff
			}
			s.podsAPIFailed(err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, podsAPIMaxBackoff)
		}
	}
	return nil
}

// followLink reads the kubelet's /metrics every LinkInterval for its link to
// the API server and, while it is cut off and /pods is the feed, the
// prober's readiness from /metrics/probes (the Pods API serves the prober's
// readiness in the pods' own status).
func (s *Source) followLink(ctx context.Context) {
	t := time.NewTicker(s.cfg.LinkInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		s.readLink(rctx)
		if st := s.State(); st.Link.CutOff && st.Health.Mode != ModePodsAPI {
			s.readProbes(rctx)
		} else {
			s.forgetProbes()
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pollFor polls /pods every PollInterval for d (0: until ctx is done).
func (s *Source) pollFor(ctx context.Context, d time.Duration) {
	var end <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		end = timer.C
	}
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		s.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-end:
			return
		case <-t.C:
		}
	}
}

// setMode records how the kubelet is read, and why, logging a change.
func (s *Source) setMode(mode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.state.Health
	if h.Mode == mode && h.ModeReason == reason {
		return
	}
	if h.Mode != mode {
		s.log.Info("kubelet source mode", "mode", mode, "reason", reason)
	}
	h.Mode, h.ModeReason = mode, reason
	if mode == ModePodsHTTP {
		s.last = nil // the next /pods answer replaces what the Pods API said
	}
	s.bump()
}

// Poll fetches /pods once and updates the state.
func (s *Source) Poll(ctx context.Context) {
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	start := time.Now()
	body, err := s.fetch(ctx)
	var pods []*lifecycle.Pod
	same := false
	if err == nil {
		s.mu.Lock()
		same = bytes.Equal(body, s.last)
		s.mu.Unlock()
		if !same {
			// body is the read buffer, which the next poll overwrites: what
			// this answer is compared with next time (s.last, and the
			// decoder's items) must be a copy of it.
			body = bytes.Clone(body)
			pods, err = s.dec.Decode(body)
			if err != nil {
				err = fmt.Errorf("kubelet %s: %w", s.podsURL, err)
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := s.record(err, time.Since(start), s.podsURL)
	if err == nil && !same {
		s.last = body
		s.setPods(pods, changedPods(s.state.Pods, pods))
	} else if changed {
		s.bump()
	}
}

// setPods makes pods the state's, noting which pods changed (by UID).
// Called with s.mu held.
func (s *Source) setPods(pods []*lifecycle.Pod, changed []string) {
	s.state.Pods = pods
	s.bump()
	s.state.Changes.Note(s.state.Generation, changed...)
}

// changedPods are the UIDs of the pods whose records differ between two
// lists (a record is shared while its pod does not change).
func changedPods(old, pods []*lifecycle.Pod) []string {
	was := make(map[string]*lifecycle.Pod, len(old))
	for _, p := range old {
		was[p.UID] = p
	}
	var out []string
	for _, p := range pods {
		if was[p.UID] != p {
			out = append(out, p.UID)
		}
		delete(was, p.UID)
	}
	for uid := range was {
		out = append(out, uid)
	}
	return out
}

// record makes one answer (err == nil) or failure of the kubelet at url the
// source's health, logging a change; it reports whether the state changed.
// s.mu is held.
func (s *Source) record(err error, latency time.Duration, url string) bool {
	h := &s.state.Health
	wasUp, wasErr := h.Up, h.LastError
	h.Latency = latency
	changed := false
	if tls := s.tlsState(); tls != s.state.TLS {
		s.state.TLS, h.TLS, changed = tls, tls.Detail, true
	}
	if err != nil {
		h.Up, h.LastError = false, oneLine(err)
		changed = changed || wasUp || wasErr != h.LastError
		changed = s.linkFromFailure(err, h.LastSuccess) || changed
		if wasUp || wasErr != h.LastError {
			s.log.Warn("kubelet unreachable", "err", h.LastError)
		}
		return changed
	}
	h.Up, h.LastError, h.LastSuccess = true, "", time.Now()
	if !wasUp {
		if s.trust != nil && !s.state.TLS.Verified && h.Mode != ModePodsAPI {
			s.log.Warn("kubelet reachable, NOT verified: the service-account token was sent to it (kubelet-insecure-skip-verify)", "url", url, "tls", s.state.TLS.Detail)
		} else {
			s.log.Info("kubelet reachable", "url", url, "mode", h.Mode)
		}
		changed = true
	}
	return changed
}

// get GETs one of the kubelet's endpoints with podlife's credentials; a
// transport failure is one clear line that unwraps to its cause.
func (s *Source) get(ctx context.Context, url, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("kubelet %s: %w", url, err)
	}
	req.Header.Set("Accept", accept)
	if s.token.path != "" {
		tok, err := s.token.read()
		if err != nil {
			return nil, fmt.Errorf("kubelet-token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, transportError{fmt.Sprintf("kubelet %s: %s", url, describeTransportError(err, s.cfg.Timeout)), err}
	}
	resp.Body = drainer{resp.Body}
	return resp, nil
}

// drainLimit is how much of an answer left unread is read on Close.
const drainLimit = 64 << 10

// drainer's Close reads what is left of a short answer (an error page the
// caller did not read) before it closes, so that the connection is used
// again: closing unread, the transport dropped it, and a kubelet that
// refuses /metrics cost a new connection (a TLS handshake, on a real
// kubelet) every LinkInterval.
type drainer struct{ io.ReadCloser }

// Close drains up to drainLimit bytes, then closes.
func (d drainer) Close() error {
	_, _ = io.Copy(io.Discard, io.LimitReader(d.ReadCloser, drainLimit))
	return d.ReadCloser.Close()
}

// fetch GETs /pods and turns every failure into one clear line.
func (s *Source) fetch(ctx context.Context) ([]byte, error) {
	resp, err := s.get(ctx, s.podsURL, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// The answer is read into a buffer kept across polls: an idle node's
	// /pods is the same every time, and is then neither copied nor decoded.
	s.buf.Reset()
	_, err = s.buf.ReadFrom(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes+1))
	body := s.buf.Bytes()
	if err != nil && (os.IsTimeout(err) || errors.Is(err, context.DeadlineExceeded)) {
		return nil, fmt.Errorf("kubelet %s: timed out after %d bytes of the answer: it came slower than the %s timeout (is the kubelet hung or overloaded?)",
			s.podsURL, len(body), s.cfg.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("kubelet %s: reading body after %d bytes (truncated answer): %w", s.podsURL, len(body), err)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		s.buf = bytes.Buffer{} // the next polls need not keep a buffer past the limit
		return nil, fmt.Errorf("kubelet %s: answer larger than the %d-byte limit", s.podsURL, s.cfg.MaxBodyBytes)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if msg, ok := statusObject(body); ok {
			return nil, fmt.Errorf("kubelet %s: answered a Status instead of pods: %s", s.podsURL, msg)
		}
		return body, nil
	case http.StatusUnauthorized:
		return nil, fmt.Errorf("kubelet %s: %w: the token was rejected (check kubelet-token-file %s)", s.podsURL, errUnauthorized, s.token.path)
	case http.StatusForbidden:
		return nil, fmt.Errorf("kubelet %s: 403 Forbidden%s: %s", s.podsURL, kubeletSaid(body), missingPodsPermission)
	case http.StatusNotFound:
		hint := "is kubelet-url the kubelet's base URL, such as https://NODE_IP:10250?"
		if s.cfg.Kubeconfig != "" {
			hint = fmt.Sprintf("is node-name %q a node of the API server in kubelet-kubeconfig?", s.cfg.Node)
		}
		return nil, fmt.Errorf("kubelet %s: HTTP 404%s: nothing serves /pods there; %s", s.podsURL, kubeletSaid(body), hint)
	}
	msg, ok := statusObject(body)
	if !ok {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
	}
	return nil, fmt.Errorf("kubelet %s: HTTP %d: %s", s.podsURL, resp.StatusCode, msg)
}

// statusObject recognises a metav1.Status body and returns its message.
func statusObject(body []byte) (string, bool) {
	if !bytes.Contains(body[:min(len(body), 200)], []byte(`"Status"`)) {
		return "", false
	}
	var st struct{ Kind, Message, Reason string }
	if json.Unmarshal(body, &st) != nil || st.Kind != "Status" {
		return "", false
	}
	return strings.TrimSpace(st.Reason + " " + st.Message), true
}

// transportError is a failed request's one-line message; it unwraps to the
// transport's error, so callers can tell a refused connection.
type transportError struct {
	msg string
	err error
}

func (e transportError) Error() string { return e.msg }
func (e transportError) Unwrap() error { return e.err }

// describeTransportError names the common transport failures plainly. A
// timeout is told the same way every time (net/http words it differently from
// one request to the next), so a hung kubelet is one unchanging error.
func describeTransportError(err error, timeout time.Duration) string {
	var cert x509.UnknownAuthorityError
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	var tlsErr *TLSError
	if msg, ok := describeTLSFailure(err); ok {
		return msg
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the kubelet running, and is this the right port?)"
	case errors.As(err, &tlsErr):
		return tlsErr.Error()
	case errors.As(err, &cert), errors.As(err, &host), errors.As(err, &inv):
		// Only through the API server's proxy: the kubeconfig's CA.
		return "TLS verification failed: " + err.Error() + " (check the certificate-authority of kubelet-kubeconfig)"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return fmt.Sprintf("timed out: no answer within %s (is the kubelet hung or overloaded?)", timeout)
	}
	return err.Error()
}

// tokenFile re-reads the token file when its modification time changes, so
// rotated service-account tokens are picked up. The /pods poll and the
// /metrics reader share it.
type tokenFile struct {
	path string

	mu    sync.Mutex
	mod   time.Time
	token string
	// rotated is when a token different from the one before was first read
	// (zero until the token changes).
	rotated time.Time
}

func (t *tokenFile) read() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		return "", err
	}
	if fi.ModTime().Equal(t.mod) && t.token != "" {
		return t.token, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", t.path)
	}
	if t.token != "" && tok != t.token {
		t.rotated = time.Now()
	}
	t.token, t.mod = tok, fi.ModTime()
	return tok, nil
}

// rotatedSince reports whether the token read now differs from the one in
// use at since.
func (t *tokenFile) rotatedSince(since time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rotated.After(since)
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// missingPodsPermission is what a 403 from /pods means, and where the opt-in lives.
const missingPodsPermission = "the service account lacks RBAC `get` on `nodes/pods` (deploy/rbac.yaml grants it); " +
	"a kubelet without fine-grained authorization (KubeletFineGrainedAuthz: off, or before 1.33) checks `get` on `nodes/proxy` instead, " +
	"which also allows exec into every pod on the node: grant it only there, with the opt-in kustomize component deploy/components/kubelet-proxy-rbac"

// missingMetricsPermission is what a 403 from /metrics or /metrics/probes means.
const missingMetricsPermission = "the service account lacks RBAC `get` on `nodes/metrics` (deploy/rbac.yaml grants it)"

// kubeletSaid is the kubelet's own one-line reason from a 4xx body, as
// " (kubelet: ...)", or "".
func kubeletSaid(body []byte) string {
	msg, ok := statusObject(body)
	if !ok {
		msg = strings.Join(strings.Fields(string(body)), " ")
	}
	if msg == "" {
		return ""
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return " (kubelet: " + msg + ")"
}

// tlsState is the trust's last outcome, or the mode without TLS.
func (s *Source) tlsState() TLSState {
	switch {
	case s.trust != nil:
		return s.trust.state()
	case s.cfg.Kubeconfig != "":
		return s.state.TLS
	}
	return TLSState{Mode: TLSModePlainHTTP, Detail: "plain HTTP (read-only port): not verified, no token sent"}
}

func fileOf(f *pemFile) string {
	if f == nil {
		return ""
	}
	return f.path
}

// URL is the /pods URL the source polls.
func (s *Source) URL() string { return s.podsURL }
