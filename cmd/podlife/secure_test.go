package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/internal/testenv"
)

// The real binary's secure API against a real API server: the agent serves
// /api/v1/* and /metrics over TLS to callers the API server vouches for, the
// CLI reaches it with a token and either the agent's CA or no verification,
// and the probes stay open. Once with the self-signed certificate the agent
// generates, once with one from --tls-cert-file.
func TestSecureAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("real kube-apiserver and etcd: not in -short")
	}
	bin := buildPodlife(t)
	reader := testenv.StaticToken{Token: "reader-token", User: "jane"}
	stranger := testenv.StaticToken{Token: "stranger-token", User: "mallory"}
	api := testenv.StartAPIServerWith(t, testenv.APIServerOptions{Tokens: []testenv.StaticToken{reader, stranger}})
	rc, err := clientcmd.BuildConfigFromFlags("", api.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	// The agent's own RBAC from deploy/ (TokenReview, SubjectAccessReview)
	// creates podlife-reader too; jane gets it, mallory nothing.
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "podlife-reader-jane"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "podlife-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: reader.User}}}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	node, err := simnode.Start(ctx, simnode.Options{Dir: t.TempDir(), Pods: 2}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "reader.token")
	if err := os.WriteFile(tokenFile, []byte(reader.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A serving certificate for 127.0.0.1 and the CA that signed it.
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, rest := pem.Decode(certPEM)
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{caFile: rest, certFile: pem.EncodeToMemory(leaf), keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, variant := range []struct {
		name      string
		agentArgs []string
		verify    []string // how the CLI verifies the agent's certificate
	}{
		{"self-signed", nil, []string{"--insecure-skip-tls-verify"}},
		{"tls-cert-file", []string{"--tls-cert-file", certFile, "--tls-private-key-file", keyFile}, []string{"--certificate-authority", caFile}},
	} {
		t.Run(variant.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "agent.log")
			t.Cleanup(func() {
				if t.Failed() {
					b, _ := os.ReadFile(logPath)
					t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 3000))
				}
			})
			ag := startAgent(t, bin, logPath, append([]string{"--node-name", "n1", "--cri-endpoint", node.CRIEndpoint,
				"--kubelet-url", node.KubeletURL, "--upstream", "off", "--kubeconfig", api.AgentKubeconfig,
				"--secure-listen-address", "127.0.0.1:0"}, variant.agentArgs...)...)
			secure := ag.secureURL(t)
			if !strings.HasPrefix(secure, "https://127.0.0.1:") {
				t.Fatalf("secure address %q", secure)
			}
			// The probes need no token; /readyz once both sources answered.
			probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				resp, err := probe.Get(secure + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz over TLS without a token: %v %v", resp, err)
				}
			}
			if resp, err := probe.Get(secure + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("/healthz without a token: %v %v", resp, err)
			}
			if resp, err := probe.Get(secure + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("/metrics without a token: %v %v", resp, err)
			}

			tests := []struct {
				name     string
				args     []string
				unverify bool // leave out the variant's verification flags
				code     int
				stdout   string // a line it holds
				stderr   string // its start
			}{
				{"anonymous", []string{"pods"}, false, 1, "",
					"podlife: Unauthorized: send a bearer token the API server accepts (Authorization: Bearer ..., or X-Podlife-Authorization through the API server's pod proxy) (give --token or --token-file)"},
				{"no role", []string{"pods", "--token", stranger.Token}, false, 1, "",
					`podlife: Forbidden: user "mallory" cannot get nodes/podlife "n1" (ClusterRole podlife-reader grants it)`},
				{"reader", []string{"pods", "--token-file", tokenFile}, false, 0, "load       load-0000", ""},
				{"reader, describe", []string{"describe", "load/load-0001", "--token", reader.Token}, false, 0, "Name:", ""},
				{"certificate not verified", []string{"pods", "--token", reader.Token}, true, 1, "",
					"podlife: cannot reach the podlife agent at " + secure},
			}
			for _, tc := range tests {
				args := append(tc.args, "--server", secure)
				if !tc.unverify {
					args = append(args, variant.verify...)
				}
				cmd := exec.Command(bin, args...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				if code != tc.code || !strings.HasPrefix(stderr.String(), tc.stderr) || !hasLine(stdout.String(), tc.stdout) {
					t.Errorf("%s: podlife %s: exit %d\nstdout %s\nstderr %s", tc.name, strings.Join(args, " "), code, stdout.String(), stderr.String())
				}
			}
			// The plain listener the test asked for serves without a token.
			resp, err := http.Get(ag.URL + "/api/v1/pods")
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("plain HTTP: %v %v", resp, err)
			}
			resp.Body.Close()
		})
	}
}
