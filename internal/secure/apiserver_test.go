package secure

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/podlife/podlife/internal/testenv"
)

// Identities of the test API server's static token file.
var (
	reader   = testenv.StaticToken{Token: "reader-token", User: "jane"}
	sre      = testenv.StaticToken{Token: "sre-token", User: "carol", Groups: []string{"sre"}}
	stranger = testenv.StaticToken{Token: "stranger-token", User: "mallory"}
	scraper  = testenv.StaticToken{Token: "scraper-token", User: "system:serviceaccount:monitoring:prometheus-k8s",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:monitoring"}}
	elsewhere = testenv.StaticToken{Token: "elsewhere-token", User: "bob"}
)

// restConfig is the API server access of kubeconfig.
func restConfig(t *testing.T, kubeconfig string) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// readerRole is the podlife-reader ClusterRole of deploy/reader-rbac.yaml.
func readerRole(t *testing.T) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "reader-rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil || role.Name != "podlife-reader" {
		t.Fatalf("deploy/reader-rbac.yaml: %v, %q", err, role.Name)
	}
	return &role
}

// grant creates role (unless it exists) and binds it to subject.
func grant(t *testing.T, cs kubernetes.Interface, role *rbacv1.ClusterRole, subject rbacv1.Subject) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx, role.Name, metav1.GetOptions{}); err != nil {
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: role.Name + "-"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}, Subjects: []rbacv1.Subject{subject}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// serveSecure serves a stand-in for the agent's API, behind Filter for
// node-a, over TLS with a self-signed certificate, with the API server access
// of reviewer; it returns the base URL and a client that trusts the
// certificate.
func serveSecure(t *testing.T, reviewer *rest.Config) (string, *http.Client) {
	t.Helper()
	cert, err := NewServingCertificate("", "", "node-a", nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := NewAuthenticator(reviewer)
	if err != nil {
		t.Fatal(err)
	}
	authz, err := NewAuthorizer(reviewer)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/api/v1/pods", "/metrics", "/healthz", "/readyz"} {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("data of " + p)) })
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Filter(mux, authn, authz, "node-a", quiet), TLSConfig: cert.TLSConfig(), ReadHeaderTimeout: 5 * time.Second}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	c, _ := cert.GetCertificate(nil)
	pool := x509.NewCertPool()
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(x) // the leaf and the CA that signed it
	}
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return "https://" + l.Addr().String(), client
}

// get GETs url with token (none if empty) and returns the status and body.
func get(t *testing.T, c *http.Client, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil {
			return resp.StatusCode, e.Error
		}
	}
	return resp.StatusCode, string(b)
}

// The secure API against a real API server: tokens reviewed with
// TokenReview, requests with SubjectAccessReview against RBAC the test
// creates, with the podlife-reader ClusterRole of deploy/ and the agent's
// own permissions from deploy/.
func TestDelegatedToRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("real kube-apiserver and etcd: not in -short")
	}
	api := testenv.StartAPIServerWith(t, testenv.APIServerOptions{Tokens: []testenv.StaticToken{reader, sre, stranger, scraper, elsewhere}})
	admin, err := kubernetes.NewForConfig(restConfig(t, api.AdminKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.ApplyRBAC(context.Background(), admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	role := readerRole(t)
	grant(t, admin, role, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: reader.User})
	grant(t, admin, role, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "sre"})
	// What kube-prometheus gives its Prometheus: nodes/metrics, for kubelets.
	grant(t, admin, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-k8s"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/metrics"}, Verbs: []string{"get"}},
			{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}},
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "prometheus-k8s", Namespace: "monitoring"})
	// A reader of another node only.
	grant(t, admin, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "podlife-reader-node-b"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/podlife", "nodes/metrics"},
			ResourceNames: []string{"node-b"}, Verbs: []string{"get"}}}},
		rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: elsewhere.User})

	base, client := serveSecure(t, restConfig(t, api.AgentKubeconfig))
	unauthorized := "Unauthorized: send a bearer token the API server accepts (Authorization: Bearer ..., or X-Podlife-Authorization through the API server's pod proxy)"
	tests := []struct {
		name, path, token string
		code              int
		body              string
	}{
		{"anonymous", "/api/v1/pods", "", 401, unauthorized},
		{"anonymous metrics", "/metrics", "", 401, unauthorized},
		{"forged token", "/api/v1/pods", "not-a-token", 401, unauthorized},
		{"no role", "/api/v1/pods", stranger.Token, 403,
			`Forbidden: user "mallory" cannot get nodes/podlife "node-a" (ClusterRole podlife-reader grants it)`},
		{"no role, metrics", "/metrics", stranger.Token, 403,
			`Forbidden: user "mallory" cannot get nodes/metrics "node-a" (ClusterRole podlife-reader grants it)`},
		{"reader", "/api/v1/pods", reader.Token, 200, "data of /api/v1/pods"},
		{"reader, metrics", "/metrics", reader.Token, 200, "data of /metrics"},
		{"reader by group", "/api/v1/pods", sre.Token, 200, "data of /api/v1/pods"},
		{"prometheus, metrics", "/metrics", scraper.Token, 200, "data of /metrics"},
		{"prometheus, pods", "/api/v1/pods", scraper.Token, 403,
			`Forbidden: user "system:serviceaccount:monitoring:prometheus-k8s" cannot get nodes/podlife "node-a" (ClusterRole podlife-reader grants it)`},
		{"reader of another node", "/api/v1/pods", elsewhere.Token, 403,
			`Forbidden: user "bob" cannot get nodes/podlife "node-a" (ClusterRole podlife-reader grants it)`},
		{"healthz open", "/healthz", "", 200, "data of /healthz"},
		{"readyz open", "/readyz", "", 200, "data of /readyz"},
		{"readyz open to a forged token", "/readyz", "not-a-token", 200, "data of /readyz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, client, base+tc.path, tc.token)
			// RBAC's own reason follows ours; it is the API server's to word.
			if code != tc.code || !strings.HasPrefix(body, tc.body) {
				t.Fatalf("%d %q, want %d %q", code, body, tc.code, tc.body)
			}
		})
	}

	t.Run("reviewer without the right to review", func(t *testing.T) {
		// The stranger may not create TokenReviews: no caller can be
		// authenticated, and the agent says so in its log.
		rc := restConfig(t, api.AgentKubeconfig)
		rc.BearerToken = stranger.Token
		base, client := serveSecure(t, rc)
		code, body := get(t, client, base+"/api/v1/pods", reader.Token)
		if code != 401 || body != "Unauthorized: the bearer token could not be reviewed by the API server" {
			t.Fatalf("%d %q", code, body)
		}
	})

	t.Run("API server frozen", func(t *testing.T) {
		// Decisions already made are cached; a new caller's review is bounded
		// by ReviewTimeout, then refused: the refusal's text says the review
		// gave up (the frozen API server never answers, and the client's own
		// timeout would be an error, not this answer). No upper bound on the
		// time: on a loaded machine it is not the code's speed that varies.
		api.Freeze()
		defer api.Thaw()
		if code, body := get(t, client, base+"/api/v1/pods", reader.Token); code != 200 {
			t.Fatalf("cached reader: %d %q", code, body)
		}
		start := time.Now()
		code, body := get(t, client, base+"/api/v1/pods", "never-seen-token")
		if took := time.Since(start); code != 401 || body != "Unauthorized: the bearer token could not be reviewed by the API server" ||
			took < ReviewTimeout {
			t.Fatalf("uncached token while the API server hangs: %d %q after %s", code, body, took)
		}
	})
}
