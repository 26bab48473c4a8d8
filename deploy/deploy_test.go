// Package deploy holds podlife's Kubernetes manifests; its test renders them
// with kubectl and validates them against a real API server.
package deploy

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/podlife/podlife/internal/testenv"
)

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		bin = testenv.Bin(t, "kubectl") // built by make tools where the machine has none
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (kubectl, kube-apiserver, etcd): not in -short")
	}
	rendered := kubectl(t, "kustomize", ".")
	for _, want := range []string{
		"readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false", "- ALL", "type: RuntimeDefault",
		"fieldPath: spec.nodeName", "readOnly: true", "operator: Exists", "memory: 128Mi", "path: /var/lib/podlife",
		"kind: ClusterRole", "nodes/proxy", "events.k8s.io",
	} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered manifests lack %q", want)
		}
	}
	for _, never := range []string{"privileged: true", "secrets", `"*"`} {
		if strings.Contains(rendered, never) {
			t.Errorf("rendered manifests contain %q", never)
		}
	}
	// Client- and server-side dry runs against a real API server on loopback.
	api := testenv.StartAPIServer(t)
	out := kubectl(t, "--kubeconfig", api.AdminKubeconfig, "apply", "--dry-run=client", "-k", ".")
	if !strings.Contains(out, "daemonset.apps/podlife created (dry run)") {
		t.Fatalf("client dry run: %s", out)
	}
	kubectl(t, "--kubeconfig", api.AdminKubeconfig, "apply", "-f", "namespace.yaml")
	out = kubectl(t, "--kubeconfig", api.AdminKubeconfig, "apply", "--dry-run=server", "-k", ".")
	if !strings.Contains(out, "daemonset.apps/podlife created (server dry run)") {
		t.Fatalf("server dry run: %s", out)
	}
}
