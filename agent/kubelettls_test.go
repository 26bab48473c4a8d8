package agent

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// The kubelet's TLS trust reaches /metrics and the kubelet source's status;
// with the kubelet untrusted, the agent keeps serving the runtime's view and
// every pod's reason says why (the TLS cause and the flag that fixes it).
func TestKubeletTrustInStatusAndMetrics(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"kind":"PodList","apiVersion":"v1","items":[]}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	pin := filepath.Join(dir, "kubelet.crt")
	token := filepath.Join(dir, "token")
	os.WriteFile(pin, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	os.WriteFile(token, []byte("sa-token"), 0o600)
	// httptest's certificate covers example.com: the node name "node-a" is wrong for it.
	tests := []struct {
		name       string
		cfg        kubelet.Config
		metric     string
		up         bool
		tls, cause string
	}{
		{"pinned", kubelet.Config{ServingCertFile: pin, ServerName: "example.com"},
			`podlife_kubelet_tls_verified{mode="pinned-cert"} 1`, true, "verified: ", ""},
		{"pinned, wrong name", kubelet.Config{ServingCertFile: pin, Node: "node-a"},
			`podlife_kubelet_tls_verified{mode="pinned-cert"} 0`, false, "TLS verification failed", "fix: set --kubelet-tls-server-name"},
		{"insecure opt-in", kubelet.Config{InsecureSkipVerify: true},
			`podlife_kubelet_tls_verified{mode="insecure-skip-verify"} 0`, true, "not verified (kubelet-insecure-skip-verify, an explicit opt-in)", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL, cfg.TokenFile, cfg.Timeout, cfg.LinkInterval = srv.URL, token, 10*time.Second, -1
			kl, err := kubelet.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			kl.Poll(context.Background())
			a, _ := generatedAgent(t, func(o *Options) { o.Kubelet = kl })
			snap := a.Snapshot()
			h := snap.Sources[lifecycle.SourceKubelet]
			if h.Up != tc.up || !strings.Contains(h.TLS, tc.tls) {
				t.Fatalf("kubelet source up %v tls %q, want up %v and %q", h.Up, h.TLS, tc.up, tc.tls)
			}
			var buf bytes.Buffer
			if err := a.exposition(&buf); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.metric+"\n") {
				t.Fatalf("/metrics lacks %q", tc.metric)
			}
			if tc.cause == "" {
				return
			}
			// Untrusted: the runtime's containers are still served, each pod
			// Unknown with the TLS failure as its reason.
			running := 0
			for _, p := range snap.Pods {
				if p.UnknownCause != lifecycle.CauseKubeletUnreachable || !strings.Contains(p.StageReason, tc.cause) {
					t.Fatalf("pod %s/%s: cause %q reason %q", p.Namespace, p.Name, p.UnknownCause, p.StageReason)
				}
				for _, c := range p.Containers {
					if c.Runtime != nil && c.Runtime.State == "RUNNING" {
						running++
					}
				}
			}
			if len(snap.Pods) == 0 || running == 0 {
				t.Fatalf("%d pods, %d running containers: the runtime's view is not served", len(snap.Pods), running)
			}
		})
	}
}
