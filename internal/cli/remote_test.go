package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeAPIServer answers the CLI's three requests like an API server: the pod
// list, the TokenRequest, and the pod proxy (which, like the real one,
// drops Authorization). It records what reached the "agent".
type fakeAPIServer struct {
	pods       []corev1.Pod
	tokenCode  int
	gotQuery   string
	tokenReqs  int // TokenRequests made
	agentPath  string
	agentToken string // X-Podlife-Authorization
}

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer user-token" {
		w.WriteHeader(401)
		return
	}
	switch {
	case r.URL.Path == "/api/v1/namespaces/podlife/pods" && r.Method == "GET":
		f.gotQuery = r.URL.RawQuery
		json.NewEncoder(w).Encode(corev1.PodList{Items: f.pods})
	case r.URL.Path == "/api/v1/namespaces/podlife/serviceaccounts/podlife-viewer/token" && r.Method == "POST":
		f.tokenReqs++
		if f.tokenCode != 0 {
			w.WriteHeader(f.tokenCode)
			json.NewEncoder(w).Encode(metav1.Status{Status: "Failure", Message: `serviceaccounts "podlife-viewer" is forbidden: User "jane" cannot create resource "serviceaccounts/token"`})
			return
		}
		b, _ := io.ReadAll(r.Body)
		var req struct {
			Spec struct {
				ExpirationSeconds int64
				Audiences         []string
			}
		}
		json.Unmarshal(b, &req)
		fmt.Fprintf(w, `{"kind":"TokenRequest","status":{"token":"viewer-token-%d-%s"}}`, req.Spec.ExpirationSeconds, strings.Join(req.Spec.Audiences, ","))
	case strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/podlife/pods/https:podlife-unreachable:"):
		w.WriteHeader(503)
		json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure",
			Message: "error trying to reach service: dial tcp 198.51.100.1:9808: connect: connection refused"})
	case strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/podlife/pods/https:"):
		r.Header.Del("Authorization") // as WithAuthentication does
		f.agentPath, f.agentToken = r.URL.Path, r.Header.Get("X-Podlife-Authorization")
		w.Write([]byte(`{"node":"n1","pods":[]}`))
	default:
		w.WriteHeader(404)
	}
}

// jwt is an unsigned JWT with claims (the CLI reads, never checks, them).
func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(claims)) + ".sig"
}

func agentPod(name string, phase corev1.PodPhase, created time.Time, port string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(created)}, Status: corev1.PodStatus{Phase: phase}}
	p.Spec.Containers = []corev1.Container{{Name: "podlife", Ports: []corev1.ContainerPort{{Name: port, ContainerPort: 9808}}}}
	return p
}

// kubeconfig is a kubeconfig for server with token user-token (clientcmd
// applies user credentials to https servers only).
func kubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "%s", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: user-token}
- name: other
  user: {token: other-token}
contexts:
- name: x
  context: {cluster: c, user: u}
- name: other
  context: {cluster: c, user: other}
current-context: x
`, server)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRemoteClient(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		pods      []corev1.Pod
		auth      Auth
		tokenCode int
		wantErr   string
		wantPath  string // what reached the agent
		wantToken string
		tokenReqs int
	}{
		{"the viewer's token, not the caller's", []corev1.Pod{agentPod("podlife-a", corev1.PodRunning, t0, "https")}, Auth{}, 0, "",
			"/api/v1/namespaces/podlife/pods/https:podlife-a:9808/proxy/api/v1/pods", "Bearer viewer-token-600-podlife", 1},
		{"a token for the agent given", []corev1.Pod{agentPod("podlife-a", corev1.PodRunning, t0, "https")}, Auth{Token: jwt(`{"aud":["podlife"]}`)}, 0, "",
			"/api/v1/namespaces/podlife/pods/https:podlife-a:9808/proxy/api/v1/pods", "Bearer " + jwt(`{"aud":["podlife"]}`), 0},
		{"an API server token given: not sent", []corev1.Pod{agentPod("podlife-a", corev1.PodRunning, t0, "https")},
			Auth{Token: jwt(`{"aud":["https://kubernetes.default.svc"]}`)}, 0,
			`--token is for audience ["https://kubernetes.default.svc"]; with --node the token goes to the node's agent and must be made for it: kubectl -n podlife create token podlife-viewer --audience podlife`, "", "", 0},
		{"a static token given: not sent", []corev1.Pod{agentPod("podlife-a", corev1.PodRunning, t0, "https")}, Auth{Token: "admin-token"}, 0,
			"--token is not a JWT; with --node the token goes to the node's agent", "", "", 0},
		{"the newest running pod of a rolling update", []corev1.Pod{agentPod("podlife-old", corev1.PodRunning, t0, "https"),
			agentPod("podlife-new", corev1.PodRunning, t0.Add(time.Minute), "https"), agentPod("podlife-newest", corev1.PodPending, t0.Add(2*time.Minute), "https")},
			Auth{}, 0, "", "/api/v1/namespaces/podlife/pods/https:podlife-new:9808/proxy/api/v1/pods", "Bearer viewer-token-600-podlife", 1},
		{"none on the node", nil, Auth{}, 0,
			`no podlife agent on node "n1": no pod in namespace podlife with labels app.kubernetes.io/name=podlife there`, "", "", 0},
		{"none running", []corev1.Pod{agentPod("podlife-a", corev1.PodPending, t0, "https")}, Auth{}, 0,
			"no running podlife agent on node n1: podlife-a is Pending", "", "", 0},
		{"no API port", []corev1.Pod{agentPod("podlife-a", corev1.PodRunning, t0, "metrics")}, Auth{}, 0,
			`no running podlife agent on node n1: podlife-a has no container port named "https"`, "", "", 0},
		{"no right to the viewer's token", []corev1.Pod{agentPod("podlife-a", corev1.PodRunning, t0, "https")}, Auth{}, 403,
			`a token for the agent (TokenRequest for ServiceAccount podlife/podlife-viewer; or give --token / --token-file): API server: serviceaccounts "podlife-viewer" is forbidden`, "", "", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAPIServer{pods: tc.pods, tokenCode: tc.tokenCode}
			srv := httptest.NewTLSServer(f)
			defer srv.Close()
			r := RemoteDefaults
			r.Kubeconfig, r.Node = kubeconfig(t, srv.URL), "n1"
			c, err := NewRemoteClient(context.Background(), r, tc.auth)
			if f.tokenReqs != tc.tokenReqs {
				t.Errorf("%d TokenRequests, want %d", f.tokenReqs, tc.tokenReqs)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.gotQuery != "fieldSelector=spec.nodeName%3Dn1&labelSelector=app.kubernetes.io%2Fname%3Dpodlife" {
				t.Errorf("pod list query %q", f.gotQuery)
			}
			if _, err := c.Pods(context.Background()); err != nil {
				t.Fatal(err)
			}
			if f.agentPath != tc.wantPath || f.agentToken != tc.wantToken {
				t.Errorf("the agent got %s with X-Podlife-Authorization %q; want %s with %q", f.agentPath, f.agentToken, tc.wantPath, tc.wantToken)
			}
		})
	}
}

// TestRemoteClientContextAndProxyErrors: --context picks the kubeconfig's
// user, and an error of the API server's proxy (the agent unreachable) comes
// out as its message.
func TestRemoteClientContextAndProxyErrors(t *testing.T) {
	f := &fakeAPIServer{pods: []corev1.Pod{agentPod("podlife-unreachable", corev1.PodRunning, time.Now(), "https")}}
	srv := httptest.NewTLSServer(f)
	defer srv.Close()
	r := RemoteDefaults
	r.Kubeconfig, r.Node = kubeconfig(t, srv.URL), "n1"

	r.Context = "other" // other-token: the fake API server's 401
	if _, err := NewRemoteClient(context.Background(), r, Auth{}); err == nil || !strings.Contains(err.Error(), "API server: HTTP 401") {
		t.Errorf("--context other: %v, want the API server's 401", err)
	}
	r.Context = "x"
	c, err := NewRemoteClient(context.Background(), r, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Pods(context.Background())
	if want := "API server: error trying to reach service: dial tcp 198.51.100.1:9808: connect: connection refused"; err == nil || err.Error() != want {
		t.Errorf("%v, want %q", err, want)
	}
}
