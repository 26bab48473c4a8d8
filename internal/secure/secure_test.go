package secure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	certutil "k8s.io/client-go/util/cert"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// leaf is the serving certificate's first (leaf) certificate.
func leaf(t *testing.T, c *tls.Certificate) *x509.Certificate {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// writePair writes a new self-signed certificate for host and its key.
func writePair(t *testing.T, certFile, keyFile, host string) {
	t.Helper()
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey(host, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// The self-signed certificate covers the node name, localhost, the loopback
// addresses and the given IPs.
func TestSelfSignedCertificate(t *testing.T) {
	s, err := NewServingCertificate("", "", "node-1", nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.GetCertificate(nil)
	x := leaf(t, c)
	for _, name := range []string{"node-1", "localhost", "127.0.0.1", "::1"} {
		if err := x.VerifyHostname(name); err != nil {
			t.Errorf("self-signed certificate: %v", err)
		}
	}
	if !s.SelfSigned() || x.NotAfter.Before(time.Now().Add(300*24*time.Hour)) {
		t.Errorf("self-signed %v, valid until %s", s.SelfSigned(), x.NotAfter)
	}
}

// A certificate from files is re-read when the files change; a bad pair
// keeps the last good certificate, and is taken once it is good again.
func TestCertificateFilesReloaded(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, certFile, keyFile, "first")
	s, err := NewServingCertificate(certFile, keyFile, "ignored", nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	serving := func() string {
		s.mu.Lock()
		s.checked = time.Time{} // look at the files now, not a second later
		s.mu.Unlock()
		c, err := s.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return leaf(t, c).DNSNames[0]
	}
	steps := []struct {
		name  string
		write func()
		want  string
	}{
		{"unchanged", func() {}, "first"},
		{"rotated", func() { writePair(t, certFile, keyFile, "second") }, "second"},
		{"key of another certificate", func() {
			other := filepath.Join(dir, "other.crt")
			writePair(t, other, keyFile, "third") // the key changes, the certificate does not
		}, "second"},
		{"pair again", func() { writePair(t, certFile, keyFile, "fourth") }, "fourth"},
		{"certificate removed", func() { os.Remove(certFile) }, "fourth"},
		{"back", func() { writePair(t, certFile, keyFile, "fifth") }, "fifth"},
	}
	for _, st := range steps {
		st.write()
		if got := serving(); got != st.want {
			t.Fatalf("%s: serving %q, want %q", st.name, got, st.want)
		}
	}
}

func TestCertificateErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, certFile, keyFile, "a")
	other := filepath.Join(dir, "other.key")
	writePair(t, filepath.Join(dir, "other.crt"), other, "b")
	tests := []struct {
		name, cert, key, want string
	}{
		{"no key", certFile, "", "serving certificate: need both a certificate file and a key file"},
		{"missing", filepath.Join(dir, "none.crt"), keyFile, "tls-cert-file: stat " + dir + "/none.crt: no such file or directory"},
		{"mismatch", certFile, other, "private key does not match public key"},
		{"not PEM", keyFile, keyFile, "failed to find certificate PEM data"},
	}
	for _, tc := range tests {
		_, err := NewServingCertificate(tc.cert, tc.key, "n", nil, quiet)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// Each path is authorized as a subresource of the node, with the verb of
// its method.
func TestAttributes(t *testing.T) {
	tests := []struct{ method, path, verb, sub string }{
		{"GET", "/api/v1/pods", "get", "podlife"},
		{"GET", "/api/v1/pods/default/web", "get", "podlife"},
		{"GET", "/api/v1/transitions", "get", "podlife"},
		{"GET", "/api/v1", "get", "podlife"},
		{"HEAD", "/api/v1/journal", "get", "podlife"},
		{"POST", "/api/v1/pods", "create", "podlife"},
		{"DELETE", "/api/v1/pods", "delete", "podlife"},
		{"GET", "/metrics", "get", "metrics"},
		{"GET", "/metrics/", "get", "metrics"},
		{"GET", "/metrics/../api/v1/pods", "get", "podlife"},
		{"GET", "/api/v1/../../metrics", "get", "metrics"},
		{"GET", "/api/v1/../metrics", "get", "proxy"}, // /api/metrics
		{"GET", "/api/v10", "get", "proxy"},
		{"GET", "/debug/pprof/", "get", "proxy"},
		{"GET", "/", "get", "proxy"},
		{"GET", "/ui/", "get", "podlife"}, // the page shows what the API serves
		{"GET", "/ui", "get", "podlife"},
		{"GET", "/ui/app.js", "get", "podlife"},
		{"GET", "/uix", "get", "proxy"},
	}
	u := &user.DefaultInfo{Name: "u"}
	for _, tc := range tests {
		a := Attributes(u, httptest.NewRequest(tc.method, tc.path, nil), "node-1")
		if a.Verb != tc.verb || a.Subresource != tc.sub || a.Resource != "nodes" || a.Name != "node-1" ||
			!a.ResourceRequest || a.APIGroup != "" || a.APIVersion != "v1" || a.User != u {
			t.Errorf("%s %s: %+v, want %s nodes/%s", tc.method, tc.path, a, tc.verb, tc.sub)
		}
	}
}

// A pod's crash black box needs what kubectl logs needs (get pods/log on
// the pod, in its namespace: kubernetes/kubernetes
// staging/src/k8s.io/kubectl/pkg/cmd/logs/logs.go reads the pods/log
// subresource), not nodes/podlife; any other path under a pod does not.
func TestAttributesOfPodLogs(t *testing.T) {
	u := &user.DefaultInfo{Name: "u"}
	a := Attributes(u, httptest.NewRequest("GET", "/api/v1/pods/team-a/web-0/logs?container=app", nil), "node-1")
	want := authorizer.AttributesRecord{User: u, Verb: "get", APIVersion: "v1", Resource: "pods", Subresource: "log",
		Namespace: "team-a", Name: "web-0", ResourceRequest: true, Path: "/api/v1/pods/team-a/web-0/logs"}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("pod logs: %+v, want %+v", a, want)
	}
	if got := describe(a); got != `get pods/log "web-0" in namespace "team-a"` {
		t.Errorf("describe = %s", got)
	}
	for _, p := range []string{"/api/v1/pods/team-a/web-0", "/api/v1/pods/team-a/web-0/logs/x", "/api/v1/pods/team-a/logs",
		"/api/v1/pods/x/../team-a/web-0/other"} {
		if a := Attributes(u, httptest.NewRequest("GET", p, nil), "node-1"); a.Resource != "nodes" || a.Subresource != "podlife" {
			t.Errorf("%s: %s/%s, want nodes/podlife", p, a.Resource, a.Subresource)
		}
	}
	// A path that cleans to a pod's logs is authorized as one.
	if a := Attributes(u, httptest.NewRequest("GET", "/api/v1/pods/x/../team-b/web/logs", nil), "node-1"); a.Namespace != "team-b" || a.Subresource != "log" {
		t.Errorf("cleaned path: %+v", a)
	}
}

// fakeAuthn accepts the tokens it knows: "podlife:NAME" only where the
// request asks for audience podlife (authenticator.WithAudiences), the others
// only where it asks for none (the API server's own), as a TokenReview does.
type fakeAuthn map[string]string

func (f fakeAuthn) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	if token == "broken" {
		return nil, false, &reviewError{errors.New("TokenReview: connection refused")}
	}
	auds, _ := authenticator.AudiencesFrom(ctx)
	if strings.HasPrefix(token, ProxyAudience+":") != auds.Has(ProxyAudience) {
		return nil, false, nil
	}
	name, ok := f[token]
	if !ok {
		return nil, false, nil
	}
	return &authenticator.Response{User: &user.DefaultInfo{Name: name}}, true, nil
}

// fakeAuthz allows user "reader" nodes/podlife and nodes/metrics on node-1
// and fails for user "flaky".
type fakeAuthz struct{ seen *authorizer.Attributes }

func (f fakeAuthz) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	*f.seen = a
	switch {
	case a.GetUser().GetName() == "flaky":
		return authorizer.DecisionNoOpinion, "", errors.New("SubjectAccessReview: timeout")
	case a.GetUser().GetName() == "reader" && a.GetName() == "node-1" && a.GetSubresource() != "proxy":
		return authorizer.DecisionAllow, "", nil
	}
	return authorizer.DecisionNoOpinion, "no RBAC policy matched", nil
}

func TestFilter(t *testing.T) {
	var seen authorizer.Attributes
	var gotAuthz, gotProxied string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuthz, gotProxied = r.Header.Get("Authorization"), r.Header.Get(ProxyAuthorizationHeader)
		w.Write([]byte("data"))
	})
	h := Filter(next, newBearer(fakeAuthn{"good": "reader", "nobody": "stranger", "flaky": "flaky",
		"podlife:viewer": "reader", "podlife:nobody": "stranger"}),
		authorizer.AuthorizerFunc(fakeAuthz{&seen}.Authorize), "node-1", quiet)
	tests := []struct {
		name, path, token string
		proxied           string // X-Podlife-Authorization: Bearer proxied
		code              int
		body              string
	}{
		{"anonymous", "/api/v1/pods", "", "", 401, `{"error":"Unauthorized: send a bearer token the API server accepts (Authorization: Bearer ..., or X-Podlife-Authorization through the API server's pod proxy)"}`},
		{"unknown token", "/metrics", "forged", "", 401, `{"error":"Unauthorized: send a bearer token the API server accepts (Authorization: Bearer ..., or X-Podlife-Authorization through the API server's pod proxy)"}`},
		{"review failed", "/metrics", "broken", "", 401, `{"error":"Unauthorized: the bearer token could not be reviewed by the API server"}`},
		{"no role", "/api/v1/pods", "nobody", "", 403,
			`{"error":"Forbidden: user \"stranger\" cannot get nodes/podlife \"node-1\" (ClusterRole podlife-reader grants it): no RBAC policy matched"}`},
		{"authorization failed", "/api/v1/pods", "flaky", "", 500,
			`{"error":"Authorization error (user=flaky, get nodes/podlife \"node-1\"): the API server could not be asked"}`},
		{"reader: pods", "/api/v1/pods", "good", "", 200, "data"},
		{"reader: metrics", "/metrics", "good", "", 200, "data"},
		{"reader: pprof", "/debug/pprof/", "good", "", 403,
			`{"error":"Forbidden: user \"reader\" cannot get nodes/proxy \"node-1\" (ClusterRole podlife-reader grants it): no RBAC policy matched"}`},
		{"through the pod proxy: a podlife token", "/api/v1/pods", "", "podlife:viewer", 200, "data"},
		{"through the pod proxy: a podlife token, no role", "/api/v1/pods", "", "podlife:nobody", 403,
			`{"error":"Forbidden: user \"stranger\" cannot get nodes/podlife \"node-1\" (ClusterRole podlife-reader grants it): no RBAC policy matched"}`},
		// An API server credential is refused there, even a good one.
		{"through the pod proxy: an API server token", "/api/v1/pods", "", "good", 401, `{"error":"Unauthorized: the X-Podlife-Authorization token is not one the API server accepts for audience \"podlife\" (kubectl podlife requests one; by hand: kubectl create token SERVICEACCOUNT --audience podlife)"}`},
		{"through the pod proxy: forged", "/api/v1/pods", "", "forged", 401, `{"error":"Unauthorized: the X-Podlife-Authorization token is not one the API server accepts for audience \"podlife\" (kubectl podlife requests one; by hand: kubectl create token SERVICEACCOUNT --audience podlife)"}`},
		{"through the pod proxy: not Bearer", "/api/v1/pods", "", "", 401, `{"error":"Unauthorized: the X-Podlife-Authorization token is not one the API server accepts for audience \"podlife\" (kubectl podlife requests one; by hand: kubectl create token SERVICEACCOUNT --audience podlife)"}`},
		{"Authorization wins over the proxy header", "/api/v1/pods", "nobody", "podlife:viewer", 403,
			`{"error":"Forbidden: user \"stranger\" cannot get nodes/podlife \"node-1\" (ClusterRole podlife-reader grants it): no RBAC policy matched"}`},
		{"healthz open, the proxy header dropped", "/healthz", "", "podlife:viewer", 200, "data"},
		{"healthz open", "/healthz", "", "", 200, "data"},
		{"readyz open", "/readyz", "forged", "", 200, "data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotAuthz, gotProxied = "", ""
			r := httptest.NewRequest("GET", tc.path, nil)
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			switch {
			case tc.name == "through the pod proxy: not Bearer":
				r.Header.Set(ProxyAuthorizationHeader, "podlife:viewer")
			case tc.proxied != "":
				r.Header.Set(ProxyAuthorizationHeader, "Bearer "+tc.proxied)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if body := strings.TrimSpace(w.Body.String()); w.Code != tc.code || body != tc.body {
				t.Fatalf("%d %s, want %d %s", w.Code, body, tc.code, tc.body)
			}
			if gotAuthz != "" || gotProxied != "" {
				t.Fatalf("a token reached the handler: Authorization %q, %s %q", gotAuthz, ProxyAuthorizationHeader, gotProxied)
			}
		})
	}
}
