// Package deploy holds podlife's Kubernetes manifests; its test renders them
// with kubectl and validates them against a real API server.
package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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
		"kind: ClusterRole", "- nodes/pods", "- nodes/metrics", "events.k8s.io",
		"name: podlife-node-lease\n  namespace: kube-node-lease", "fieldPath: status.hostIP",
		// The secure API by default: probes over HTTPS, the agent may review
		// callers, and readers have a ClusterRole to bind.
		"port: https\n            scheme: HTTPS", "- tokenreviews", "- subjectaccessreviews",
		"kind: FlowSchema", "matchingPrecedence: 90", "borrowingLimitPercent: 0",
		"name: podlife-reader\nrules:\n- apiGroups:\n  - \"\"\n  resources:\n  - nodes/podlife\n  - nodes/metrics",
	} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered manifests lack %q", want)
		}
	}
	// Least RBAC by default: no nodes/proxy (exec into every pod through the
	// kubelet), and no pin of a file that only kubeadm and kind nodes have.
	for _, never := range []string{"privileged: true", "secrets", `"*"`, "nodes/proxy", "kubelet.crt", "/var/lib/kubelet/pki\n"} {
		if strings.Contains(rendered, never) {
			t.Errorf("rendered manifests contain %q", never)
		}
	}
	// The opt-in components, through an overlay as a user would write one.
	components := overlay(t, "components/kubelet-proxy-rbac", "components/pin-kubelet-cert")
	withComponents := kubectl(t, "kustomize", components)
	for _, want := range []string{
		"name: podlife-kubelet-proxy", "- nodes/proxy",
		"name: PODLIFE_KUBELET_SERVING_CERT_FILE\n          value: /var/lib/kubelet/pki/kubelet.crt",
		"- mountPath: /var/lib/kubelet/pki/kubelet.crt\n          name: kubelet-serving-cert\n          readOnly: true",
		"path: /var/lib/kubelet/pki/kubelet.crt\n          type: File",
	} {
		if !strings.Contains(withComponents, want) {
			t.Errorf("manifests with the components lack %q", want)
		}
	}
	for _, never := range []string{"path: /var/lib/kubelet/pki\n", "kubelet.key"} {
		if strings.Contains(withComponents, never) {
			t.Errorf("manifests with the components contain %q", never)
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
	out = kubectl(t, "--kubeconfig", api.AdminKubeconfig, "apply", "--dry-run=server", "-k", components)
	if !strings.Contains(out, "clusterrole.rbac.authorization.k8s.io/podlife-kubelet-proxy created (server dry run)") {
		t.Fatalf("server dry run with the components: %s", out)
	}
	t.Run("flowcontrol: a level of its own, matched before every schema a service account falls in", func(t *testing.T) {
		checkFlowControl(t, api)
	})
}

// checkFlowControl applies flowcontrol.yaml to a real API server and checks
// where podlife's FlowSchema sits among the bootstrap ones the API server
// made (k8s.io/apiserver pkg/apis/flowcontrol/bootstrap/default.go) and that
// the API server classifies the agent's requests into its level: every
// response names the priority level it ran in
// (X-Kubernetes-PF-PriorityLevel-UID).
func checkFlowControl(t *testing.T, api *testenv.APIServer) {
	kc := []string{"--kubeconfig", api.AdminKubeconfig}
	kubectl(t, append(kc, "apply", "-f", "flowcontrol.yaml")...)
	var fss struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				MatchingPrecedence         int
				PriorityLevelConfiguration struct{ Name string }
			}
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
	}
	var ours int
	testenv.Eventually(t, "the bootstrap FlowSchemas, and ours not dangling", 30*time.Second, func() bool {
		fss.Items = nil
		if err := json.Unmarshal([]byte(kubectl(t, append(kc, "get", "flowschemas", "-o", "json")...)), &fss); err != nil {
			t.Fatal(err)
		}
		found, dangling := 0, true
		for _, fs := range fss.Items {
			switch fs.Metadata.Name {
			case "podlife":
				ours = fs.Spec.MatchingPrecedence
				for _, c := range fs.Status.Conditions {
					if c.Type == "Dangling" && c.Status == "False" {
						dangling = false
					}
				}
			case "system-node-high", "service-accounts":
				found++
			}
		}
		return found == 2 && !dangling
	})
	// Before it: only what never matches podlife's requests or must not
	// (probes: /readyz stays exempt). After it: every FlowSchema that
	// matches a service account's requests.
	before := map[string]bool{"exempt": true, "probes": true}
	after := map[string]bool{"system-leader-election": true, "kube-system-service-accounts": true, "service-accounts": true, "global-default": true}
	for _, fs := range fss.Items {
		p := fs.Spec.MatchingPrecedence
		if before[fs.Metadata.Name] && p >= ours || after[fs.Metadata.Name] && p <= ours {
			t.Errorf("FlowSchema %s at %d, podlife's at %d", fs.Metadata.Name, p, ours)
		}
	}
	plUID := strings.TrimSpace(kubectl(t, append(kc, "get", "prioritylevelconfiguration", "podlife", "-o", "jsonpath={.metadata.uid}")...))
	level := func(user string, groups ...string) string {
		rc, err := clientcmd.BuildConfigFromFlags("", api.AdminKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
		hc, err := rest.HTTPClientFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(rc.Host + "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")
	}
	if got := level("system:serviceaccount:podlife:podlife", "system:serviceaccounts", "system:serviceaccounts:podlife", "system:authenticated"); got != plUID {
		t.Errorf("the agent's request ran in priority level %q, want podlife's %q", got, plUID)
	}
	if got := level("system:node:n1", "system:nodes", "system:authenticated"); got == plUID || got == "" {
		t.Errorf("a kubelet's Lease request ran in priority level %q (podlife's is %q)", got, plUID)
	}
}

// overlay writes a kustomization in a temp dir that takes deploy/ with the
// given components (paths relative to deploy/), and returns the dir.
func overlay(t *testing.T, components ...string) string {
	t.Helper()
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, wd)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [" + rel + "]\ncomponents:\n"
	for _, c := range components {
		k += "- " + filepath.Join(rel, c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
