// Package chart tests the podlife Helm chart: helm lint, helm template with
// each value that matters, the chart's objects against deploy/'s kustomize
// render (so the two cannot drift), and server-side dry runs and a real
// helm install against a real API server with the Prometheus Operator's CRDs.
package chart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/podlife/podlife/internal/testenv"
)

// chartDir is the chart, the test's working directory.
const chartDir = "."

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs helm and kubectl (make tools): not in -short")
	}
}

// helm runs helm (built by make tools) with its configuration, cache and
// data in a temporary directory, so no user's helm setup is read or written.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(testenv.Bin(t, "helm"), args...)
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// renderText is `helm template podlife . --namespace podlife` with values.
func renderText(t *testing.T, values ...string) (string, error) {
	t.Helper()
	args := []string{"template", "podlife", chartDir, "--namespace", "podlife"}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return helm(t, args...)
}

// render is renderText's objects.
func render(t *testing.T, values ...string) ([]obj, error) {
	t.Helper()
	out, err := renderText(t, values...)
	if err != nil {
		return nil, err
	}
	return parseObjects(out)
}

func kubectlBin(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("kubectl"); err == nil {
		return bin
	}
	return testenv.Bin(t, "kubectl") // built by make tools where the machine has none
}

func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubectlBin(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// obj is one rendered Kubernetes object.
type obj map[string]any

func (o obj) kind() string { s, _ := o["kind"].(string); return s }

func (o obj) meta(field string) string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m[field].(string)
	return s
}

func (o obj) key() string { return o.kind() + " " + o.meta("namespace") + "/" + o.meta("name") }

// path returns the value at a dotted path (list elements by name=VALUE or index).
func (o obj) path(p string) any {
	var v any = map[string]any(o)
	for _, part := range strings.Split(p, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[part]
		case []any:
			var next any
			for i, e := range x {
				if m, ok := e.(map[string]any); ok && strings.HasPrefix(part, "name=") && m["name"] == part[5:] {
					next = e
				} else if fmt.Sprint(i) == part {
					next = e
				}
			}
			v = next
		default:
			return nil
		}
	}
	return v
}

func (o obj) str(p string) string { s, _ := o.path(p).(string); return s }

// parseObjects reads a multi-document YAML stream.
func parseObjects(stream string) ([]obj, error) {
	var objs []obj
	for _, doc := range strings.Split("\n"+stream, "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o obj
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("parse %q: %w", doc, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, nil
}

func find(objs []obj, kind, name string) obj {
	for _, o := range objs {
		if o.kind() == kind && o.meta("name") == name {
			return o
		}
	}
	return nil
}

// container is the DaemonSet's podlife container.
func container(t *testing.T, objs []obj) obj {
	t.Helper()
	for _, o := range objs {
		if o.kind() == "DaemonSet" {
			if c, ok := o.path("spec.template.spec.containers.name=podlife").(map[string]any); ok {
				return c
			}
		}
	}
	t.Fatal("no DaemonSet with a podlife container")
	return nil
}

func args(c obj) []string {
	var out []string
	for _, a := range c["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

func rbacResources(objs []obj) []string {
	var out []string
	for _, o := range objs {
		if o.kind() != "ClusterRole" && o.kind() != "Role" {
			continue
		}
		for _, r := range o["rules"].([]any) {
			for _, res := range r.(map[string]any)["resources"].([]any) {
				out = append(out, o.meta("name")+":"+res.(string))
			}
		}
	}
	sort.Strings(out)
	return out
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestLint(t *testing.T) {
	skipShort(t)
	for _, values := range [][]string{
		nil,
		{"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true"},
		{"podMonitor.enabled=true", "rbac.kubeletAccess=proxy", "kubelet.tls.mode=pinned", "hostNetwork=true"},
	} {
		args := []string{"lint", "--strict", chartDir}
		for _, v := range values {
			args = append(args, "--set", v)
		}
		if out, err := helm(t, args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestTemplate: each value that matters renders what it says.
func TestTemplate(t *testing.T) {
	skipShort(t)
	tests := []struct {
		name   string
		values []string
		check  func(t *testing.T, objs []obj)
	}{
		{"defaults: least RBAC, the cluster CA, no monitoring objects", nil, func(t *testing.T, objs []obj) {
			c := container(t, objs)
			if got := c["image"]; got != "ghcr.io/podlife/podlife:0.1.0" {
				t.Errorf("image %v, want the appVersion tag", got)
			}
			for _, a := range args(c) {
				if strings.Contains(a, "insecure") || strings.Contains(a, "kubelet-url") {
					t.Errorf("default arg %q", a)
				}
			}
			res := rbacResources(objs)
			if contains(res, "podlife:nodes/proxy") || !contains(res, "podlife:nodes/pods") || !contains(res, "podlife:nodes/metrics") {
				t.Errorf("RBAC resources %v", res)
			}
			for _, o := range objs {
				if strings.Contains(o["apiVersion"].(string), "monitoring.coreos.com") || o.kind() == "ConfigMap" {
					t.Errorf("%s rendered by default", o.key())
				}
				if o.kind() == "Namespace" {
					t.Errorf("the chart creates %s (use --create-namespace)", o.key())
				}
			}
			if find(objs, "DaemonSet", "podlife").str("spec.template.spec.hostNetwork") != "" {
				t.Error("hostNetwork by default")
			}
		}},
		{"image digest and tag", []string{"image.tag=v9", "image.digest=sha256:abc", "image.registry=registry.example:5000"}, func(t *testing.T, objs []obj) {
			if got := container(t, objs)["image"]; got != "registry.example:5000/podlife/podlife:v9@sha256:abc" {
				t.Errorf("image %v", got)
			}
		}},
		{"kubelet TLS pinned: the certificate file alone, read-only", []string{"kubelet.tls.mode=pinned", "kubelet.tls.serverName=node-1"}, func(t *testing.T, objs []obj) {
			c := container(t, objs)
			ds := find(objs, "DaemonSet", "podlife")
			if got := c.str("env.name=PODLIFE_KUBELET_SERVING_CERT_FILE.value"); got != "/var/lib/kubelet/pki/kubelet.crt" {
				t.Errorf("serving cert env %q", got)
			}
			if c.path("volumeMounts.name=kubelet-serving-cert.readOnly") != true {
				t.Error("the kubelet certificate is not mounted read-only")
			}
			if got := ds.str("spec.template.spec.volumes.name=kubelet-serving-cert.hostPath.type"); got != "File" {
				t.Errorf("kubelet certificate volume type %q, want File (never the pki directory)", got)
			}
			if !contains(args(c), "--kubelet-tls-server-name=node-1") {
				t.Errorf("args %v", args(c))
			}
		}},
		{"kubelet TLS insecure is explicit", []string{"kubelet.tls.mode=insecure"}, func(t *testing.T, objs []obj) {
			if !contains(args(container(t, objs)), "--kubelet-insecure-skip-verify") {
				t.Errorf("args %v", args(container(t, objs)))
			}
		}},
		{"RBAC proxy: nodes/proxy in a ClusterRole of its own", []string{"rbac.kubeletAccess=proxy"}, func(t *testing.T, objs []obj) {
			res := rbacResources(objs)
			if !contains(res, "podlife-kubelet-proxy:nodes/proxy") || contains(res, "podlife:nodes/proxy") {
				t.Errorf("RBAC resources %v", res)
			}
			if b := find(objs, "ClusterRoleBinding", "podlife-kubelet-proxy"); b == nil || b.str("subjects.0.name") != "podlife" {
				t.Errorf("binding %v", b)
			}
		}},
		{"hostNetwork, resources, tolerations, priority class, extra args and env", []string{
			"hostNetwork=true", "resources.limits.memory=256Mi", "priorityClassName=",
			"tolerations[0].key=a", "tolerations[0].operator=Exists", "extraArgs[0]=--stuck-threshold=10m",
			"extraEnv[0].name=KUBERNETES_SERVICE_HOST", "extraEnv[0].value=127.0.0.1", "kubelet.url=https://127.0.0.1:10250",
			"cri.socketPath=/var/run/crio/crio.sock",
		}, func(t *testing.T, objs []obj) {
			ds := find(objs, "DaemonSet", "podlife")
			c := container(t, objs)
			if ds.path("spec.template.spec.hostNetwork") != true || ds.str("spec.template.spec.dnsPolicy") != "ClusterFirstWithHostNet" {
				t.Error("hostNetwork without ClusterFirstWithHostNet")
			}
			if c.str("resources.limits.memory") != "256Mi" || ds.path("spec.template.spec.priorityClassName") != nil {
				t.Errorf("resources %v, priority class %v", c["resources"], ds.path("spec.template.spec.priorityClassName"))
			}
			if ds.str("spec.template.spec.tolerations.0.key") != "a" {
				t.Errorf("tolerations %v", ds.path("spec.template.spec.tolerations"))
			}
			if a := args(c); !contains(a, "--stuck-threshold=10m") || !contains(a, "--kubelet-url=https://127.0.0.1:10250") {
				t.Errorf("args %v", a)
			}
			if c.str("env.name=KUBERNETES_SERVICE_HOST.value") != "127.0.0.1" || c.str("env.name=PODLIFE_CRI_ENDPOINT.value") != "unix:///var/run/crio/crio.sock" {
				t.Errorf("env %v", c["env"])
			}
			if ds.str("spec.template.spec.volumes.name=cri-socket.hostPath.path") != "/var/run/crio/crio.sock" {
				t.Errorf("volumes %v", ds.path("spec.template.spec.volumes"))
			}
		}},
		{"ServiceMonitor, PrometheusRule and dashboard with labels; another name", []string{
			"serviceMonitor.enabled=true", "serviceMonitor.labels.release=kps", "serviceMonitor.interval=15s",
			"prometheusRule.enabled=true", "prometheusRule.labels.release=kps", "grafanaDashboard.enabled=true",
			"nameOverride=nodetruth",
		}, func(t *testing.T, objs []obj) {
			sm := find(objs, "ServiceMonitor", "podlife-nodetruth")
			if sm == nil || sm.str("metadata.labels.release") != "kps" || sm.str("spec.endpoints.0.interval") != "15s" ||
				sm.path("spec.endpoints.0.honorLabels") != true || sm.str("spec.jobLabel") != "app.kubernetes.io/name" ||
				sm.str("spec.endpoints.0.relabelings.0.targetLabel") != "node" || sm.str("spec.endpoints.0.scheme") != "https" ||
				sm.str("spec.endpoints.0.authorization.credentials.name") != "podlife-nodetruth-scraper-token" {
				t.Errorf("ServiceMonitor %v", sm)
			}
			if s := find(objs, "Secret", "podlife-nodetruth-scraper-token"); s == nil || s.str("type") != "kubernetes.io/service-account-token" ||
				s.path("metadata.annotations").(map[string]any)["kubernetes.io/service-account.name"] != "podlife-nodetruth-scraper" {
				t.Errorf("scrape token Secret %v", s)
			}
			if b := find(objs, "ClusterRoleBinding", "podlife-nodetruth-scraper"); b == nil || b.str("roleRef.name") != "podlife-nodetruth-reader" ||
				b.str("subjects.0.name") != "podlife-nodetruth-scraper" {
				t.Errorf("scraper binding %v", b)
			}
			pr := find(objs, "PrometheusRule", "podlife-nodetruth")
			if pr == nil || pr.str("metadata.labels.release") != "kps" {
				t.Fatalf("PrometheusRule %v", pr)
			}
			b, _ := json.Marshal(pr["spec"])
			if !strings.Contains(string(b), `up{job=\"nodetruth\"}`) || strings.Contains(string(b), `job=\"podlife\"`) {
				t.Errorf("the alerts do not select the chart's job label nodetruth: %s", b)
			}
			cm := find(objs, "ConfigMap", "podlife-nodetruth-dashboard")
			if cm == nil || cm.str("metadata.labels.grafana_dashboard") != "1" {
				t.Fatalf("dashboard ConfigMap %v", cm)
			}
			var dash map[string]any
			if err := json.Unmarshal([]byte(cm.path("data").(map[string]any)["podlife.json"].(string)), &dash); err != nil {
				t.Errorf("the dashboard in the ConfigMap does not parse: %v", err)
			}
			if s, _ := json.Marshal(dash); !strings.Contains(string(s), `up{job=\"nodetruth\"}`) {
				t.Error("the dashboard does not select the chart's job label")
			}
		}},
		{"crash black box: on by default, /var/log/pods read-only; no log lines in Events unless asked", nil, func(t *testing.T, objs []obj) {
			c := container(t, objs)
			if c.path("volumeMounts.name=pod-logs.readOnly") != true || c.str("volumeMounts.name=pod-logs.mountPath") != "/var/log/pods" {
				t.Errorf("pod-logs mount %v", c["volumeMounts"])
			}
			for _, a := range args(c) {
				if strings.HasPrefix(a, "--blackbox") || strings.HasPrefix(a, "--event-log-lines") ||
					strings.HasPrefix(a, "--kube-api") || strings.HasPrefix(a, "--apiserver-probe") || strings.HasPrefix(a, "--delivery-jitter") ||
					strings.HasPrefix(a, "--pod-metrics") {
					t.Errorf("default arg %q", a)
				}
			}
		}},
		{"crash black box off: no mount", []string{"blackBox.lines=0"}, func(t *testing.T, objs []obj) {
			c := container(t, objs)
			if !contains(args(c), "--blackbox-lines=0") || c.path("volumeMounts.name=pod-logs") != nil {
				t.Errorf("args %v, mounts %v", args(c), c["volumeMounts"])
			}
		}},
		{"log lines in Events, opted in", []string{"blackBox.eventLogLines=5"}, func(t *testing.T, objs []obj) {
			if !contains(args(container(t, objs)), "--event-log-lines=5") {
				t.Errorf("args %v", args(container(t, objs)))
			}
		}},
		{"flowControl off: no FlowSchema, no priority level", []string{"flowControl.enabled=false"}, func(t *testing.T, objs []obj) {
			if find(objs, "FlowSchema", "podlife") != nil || find(objs, "PriorityLevelConfiguration", "podlife") != nil {
				t.Error("flowcontrol objects rendered with flowControl.enabled=false")
			}
		}},
		{"flowControl: the release's service account and namespace", []string{"serviceAccount.name=agent", "flowControl.matchingPrecedence=870"}, func(t *testing.T, objs []obj) {
			fs := find(objs, "FlowSchema", "podlife")
			if fs == nil || fs.str("spec.rules.0.subjects.0.serviceAccount.name") != "agent" ||
				fs.str("spec.rules.0.subjects.0.serviceAccount.namespace") != "podlife" || fmt.Sprint(fs.path("spec.matchingPrecedence")) != "870" {
				t.Errorf("FlowSchema %v", fs)
			}
		}},
		{"API server traffic tuned", []string{"kubeAPI.qps=2.5", "kubeAPI.burst=4", "kubeAPI.probeInterval=30s", "kubeAPI.deliveryJitter=0s"}, func(t *testing.T, objs []obj) {
			a := args(container(t, objs))
			for _, want := range []string{"--kube-api-qps=2.5", "--kube-api-burst=4", "--apiserver-probe-interval=30s", "--delivery-jitter=0s"} {
				if !contains(a, want) {
					t.Errorf("args %v, want %s", a, want)
				}
			}
		}},
		{"KSM-compatible pod metrics, for a cluster without kube-state-metrics", []string{"podMetrics=ksm-compatible"}, func(t *testing.T, objs []obj) {
			if a := args(container(t, objs)); !contains(a, "--pod-metrics=ksm-compatible") {
				t.Errorf("args %v", a)
			}
		}},
		{"PodMonitor", []string{"podMonitor.enabled=true", "podMonitor.labels.release=kps"}, func(t *testing.T, objs []obj) {
			pm := find(objs, "PodMonitor", "podlife")
			if pm == nil || pm.str("metadata.labels.release") != "kps" || pm.str("spec.podMetricsEndpoints.0.port") != "https" ||
				pm.str("spec.podMetricsEndpoints.0.authorization.credentials.name") != "podlife-scraper-token" ||
				pm.path("spec.selector.matchLabels").(map[string]any)["app.kubernetes.io/instance"] != "podlife" {
				t.Errorf("PodMonitor %v", pm)
			}
			if find(objs, "ServiceMonitor", "podlife") != nil {
				t.Error("a ServiceMonitor too")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render(t, tc.values...)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, objs)
		})
	}
}

// TestTemplateRejects: values that make no sense fail with a message saying why.
func TestTemplateRejects(t *testing.T) {
	skipShort(t)
	tests := []struct {
		values []string
		want   string
	}{
		{[]string{"serviceMonitor.enabled=true", "podMonitor.enabled=true"}, "enable one"},
		{[]string{"kubelet.tls.mode=skip"}, `kubelet.tls.mode "skip": want clusterCA, pinned or insecure`},
		{[]string{"kubelet.tls.mode=insecure", "kubelet.tls.caFile=/ca.crt"}, "turns verification off"},
		{[]string{"rbac.kubeletAccess=all"}, `rbac.kubeletAccess "all": want fineGrained or proxy`},
		{[]string{"serviceMonitor.enabled=true", "service.enabled=false"}, "needs service.enabled"},
		{[]string{"flowControl.matchingPrecedence=2"}, "flowControl.matchingPrecedence 2: want 3 to 9999"},
		{[]string{"podMetrics=kube-state-metrics"}, `podMetrics "kube-state-metrics": want podlife or ksm-compatible`},
	}
	for _, tc := range tests {
		_, err := render(t, tc.values...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.values, err, tc.want)
		}
	}
}

// normalize drops what the chart and kustomize legitimately render
// differently: labels and annotations (Helm's standard labels), label
// selectors (the chart's include app.kubernetes.io/instance), the image's
// tag or digest (the chart's default to appVersion, deploy/'s is latest) and
// pull policy; and it sorts env, volumes and mounts by name (a kustomize
// component's patch appends, the chart's template orders).
func normalize(o obj) obj {
	var c obj
	b, _ := json.Marshal(o)
	json.Unmarshal(b, &c)
	if m, ok := c["metadata"].(map[string]any); ok {
		delete(m, "labels")
		delete(m, "annotations")
	}
	spec, _ := c["spec"].(map[string]any)
	switch c.kind() {
	case "DaemonSet":
		delete(spec, "selector")
		tmpl := spec["template"].(map[string]any)
		delete(tmpl["metadata"].(map[string]any), "labels")
		pod := tmpl["spec"].(map[string]any)
		sortByName(pod, "volumes")
		for _, x := range pod["containers"].([]any) {
			ctr := x.(map[string]any)
			img := ctr["image"].(string)
			if i := strings.Index(img, "@"); i >= 0 {
				img = img[:i]
			}
			if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
				img = img[:i]
			}
			ctr["image"] = img
			delete(ctr, "imagePullPolicy")
			sortByName(ctr, "env")
			sortByName(ctr, "volumeMounts")
		}
	case "Service", "ServiceMonitor", "PodMonitor":
		delete(spec, "selector")
	}
	return c
}

func sortByName(m map[string]any, field string) {
	list, _ := m[field].([]any)
	sort.SliceStable(list, func(i, j int) bool {
		return fmt.Sprint(list[i].(map[string]any)["name"]) < fmt.Sprint(list[j].(map[string]any)["name"])
	})
}

// kustomize renders deploy/ (or another kustomization) with components.
func kustomize(t *testing.T, dir string, components ...string) []obj {
	t.Helper()
	if len(components) > 0 {
		// kustomize takes only relative paths to other kustomizations.
		overlay := t.TempDir()
		rel, err := filepath.Rel(overlay, dir)
		if err != nil {
			t.Fatal(err)
		}
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel + "\ncomponents:\n"
		for _, c := range components {
			k += "- " + filepath.Join(rel, "components", c) + "\n"
		}
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			t.Fatal(err)
		}
		dir = overlay
	}
	out, err := kubectl(t, "", "kustomize", dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseObjects(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestKustomizeDrift: the chart renders the same objects as deploy/ (and
// deploy/monitoring/): same kinds and names, RBAC rules, security contexts,
// args, env, volumes, monitors and rules, but for what normalize drops. The
// chart creates no Namespace (helm install --create-namespace does).
func TestKustomizeDrift(t *testing.T) {
	skipShort(t)
	deploy := filepath.Join(testenv.RepoRoot(), "deploy")
	monitoring := filepath.Join(deploy, "monitoring")
	readFiles := func(names ...string) func(t *testing.T) []obj {
		return func(t *testing.T) []obj {
			var objs []obj
			for _, name := range names {
				b, err := os.ReadFile(filepath.Join(monitoring, name))
				if err != nil {
					t.Fatal(err)
				}
				o, err := parseObjects(string(b))
				if err != nil {
					t.Fatal(err)
				}
				objs = append(objs, o...)
			}
			return objs
		}
	}
	tests := []struct {
		name   string
		kust   func(t *testing.T) []obj
		values []string
		// added: compare only the objects these values add to the chart's
		// default render.
		added bool
	}{
		{"defaults", func(t *testing.T) []obj { return kustomize(t, deploy) }, nil, false},
		{"components/pin-kubelet-cert = kubelet.tls.mode=pinned",
			func(t *testing.T) []obj { return kustomize(t, deploy, "pin-kubelet-cert") }, []string{"kubelet.tls.mode=pinned"}, false},
		{"components/kubelet-proxy-rbac = rbac.kubeletAccess=proxy",
			func(t *testing.T) []obj { return kustomize(t, deploy, "kubelet-proxy-rbac") }, []string{"rbac.kubeletAccess=proxy"}, false},
		{"deploy/monitoring = serviceMonitor, prometheusRule, grafanaDashboard",
			func(t *testing.T) []obj { return kustomize(t, monitoring) },
			[]string{"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true"}, true},
		{"deploy/monitoring/podmonitor.yaml and scraper.yaml = podMonitor", readFiles("podmonitor.yaml", "scraper.yaml"),
			[]string{"podMonitor.enabled=true"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chartObjs, err := render(t, tc.values...)
			if err != nil {
				t.Fatal(err)
			}
			base := map[string]bool{}
			if tc.added {
				defaults, err := render(t)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range defaults {
					base[o.key()] = true
				}
			}
			want, got := map[string]obj{}, map[string]obj{}
			for _, o := range tc.kust(t) {
				if o.kind() != "Namespace" {
					want[o.key()] = normalize(o)
				}
			}
			for _, o := range chartObjs {
				if !base[o.key()] {
					got[o.key()] = normalize(o)
				}
			}
			if len(want) == 0 {
				t.Fatal("kustomize rendered nothing to compare")
			}
			for k, w := range want {
				g, ok := got[k]
				if !ok {
					t.Errorf("the chart does not render %s", k)
					continue
				}
				if !reflect.DeepEqual(w, g) {
					wy, _ := yaml.Marshal(w)
					gy, _ := yaml.Marshal(g)
					t.Errorf("%s differs (- kustomize, + chart):\n%s", k, lineDiff(string(wy), string(gy)))
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("the chart renders %s, which kustomize does not", k)
				}
			}
		})
	}
}

// lineDiff shows the lines only a has (-) and only b has (+), with a line
// of context, from their longest common subsequence.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, line{' ', x[i]})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			lines = append(lines, line{'+', y[j]})
			j++
		default:
			lines = append(lines, line{'-', x[i]})
			i++
		}
	}
	var out strings.Builder
	for k, l := range lines {
		near := l.op != ' ' || k > 0 && lines[k-1].op != ' ' || k+1 < len(lines) && lines[k+1].op != ' '
		if near {
			fmt.Fprintf(&out, "%c %s\n", l.op, l.text)
		}
	}
	return out.String()
}

// crdFiles are the Prometheus Operator's CRDs that make tools fetches.
func crdFiles(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(testenv.Bin(t, "helm")), "..", "crds")
	files, err := filepath.Glob(filepath.Join(dir, "monitoring.coreos.com_*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("the Prometheus Operator CRDs in %s (%v, %v): run make tools", dir, files, err)
	}
	return files
}

// installCRDs creates the ServiceMonitor, PodMonitor and PrometheusRule CRDs
// and waits until the API server serves them.
func installCRDs(t *testing.T, kubeconfig string) {
	t.Helper()
	for _, f := range crdFiles(t) {
		if out, err := kubectl(t, "", "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", f); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	// Not kubectl wait --for=condition=Established: it fails at once, not
	// waits, on a CRD whose status has no conditions yet (".status.conditions
	// accessor error: <nil> is of the type <nil>", kubernetes/kubernetes
	// #66439; seen in CI under load).
	for _, crd := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		name := "crd/" + crd + ".monitoring.coreos.com"
		testenv.EventuallyState(t, name+" Established", 60*time.Second, func() (bool, any) {
			out, err := kubectl(t, "", "--kubeconfig", kubeconfig, "get", name,
				"-o", `jsonpath={.status.conditions[?(@.type=="Established")].status}`)
			return err == nil && strings.TrimSpace(out) == "True", fmt.Sprintf("%s %v", out, err)
		})
	}
}

// TestServerDryRun applies the chart's renders and deploy/monitoring with
// kubectl apply --dry-run=server against a real API server that has the
// Prometheus Operator's CRDs: the API server validates every object,
// the ServiceMonitor, PodMonitor and PrometheusRule against the CRDs'
// schemas (unknown fields are errors: kubectl's strict field validation).
// Then a real helm install and uninstall.
func TestServerDryRun(t *testing.T) {
	skipShort(t)
	api := testenv.StartAPIServer(t)
	kc := api.AdminKubeconfig
	installCRDs(t, kc)
	if out, err := kubectl(t, "", "--kubeconfig", kc, "create", "namespace", "podlife"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, values := range [][]string{
		nil,
		{"kubelet.tls.mode=pinned", "rbac.kubeletAccess=proxy", "hostNetwork=true", "reader.subjects[0].kind=User", "reader.subjects[0].name=jane"},
		{"serviceMonitor.enabled=true", "prometheusRule.enabled=true", "grafanaDashboard.enabled=true"},
		{"podMonitor.enabled=true", "podMonitor.interval=15s"},
	} {
		rendered := mustRender(t, values...)
		objs, _ := parseObjects(rendered)
		out, err := kubectl(t, rendered, "--kubeconfig", kc, "apply", "--dry-run=server", "-f", "-")
		if err != nil {
			t.Errorf("values %v: %v", values, err)
			continue
		}
		if n := strings.Count(out, "(server dry run)"); n != len(objs) {
			t.Errorf("values %v: %d objects rendered, %d applied:\n%s", values, len(objs), n, out)
		}
	}
	monitoring := filepath.Join(testenv.RepoRoot(), "deploy", "monitoring")
	for _, args := range [][]string{{"-k", monitoring}, {"-f", filepath.Join(monitoring, "podmonitor.yaml")}} {
		if out, err := kubectl(t, "", append([]string{"--kubeconfig", kc, "apply", "--dry-run=server"}, args...)...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
	// A bad field is refused, so the dry runs above do check the schemas.
	bad := strings.Replace(mustRender(t, "serviceMonitor.enabled=true"), "honorLabels: true", "honourLabels: true", 1)
	if out, err := kubectl(t, bad, "--kubeconfig", kc, "apply", "--dry-run=server", "-f", "-"); err == nil || !strings.Contains(out, "honourLabels") {
		t.Errorf("a ServiceMonitor with an unknown field was accepted: %v\n%s", err, out)
	}

	out, err := helm(t, "install", "podlife", chartDir, "--kubeconfig", kc, "--namespace", "podlife",
		"--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "STATUS: deployed") || !strings.Contains(out, "kubectl podlife pods --node <NODE> --agent-namespace podlife") {
		t.Errorf("helm install:\n%s", out)
	}
	got, err := kubectl(t, "", "--kubeconfig", kc, "-n", "podlife", "get", "daemonset,servicemonitor,prometheusrule,configmap,secret", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"daemonset.apps/podlife", "servicemonitor.monitoring.coreos.com/podlife",
		"prometheusrule.monitoring.coreos.com/podlife", "configmap/podlife-dashboard", "secret/podlife-scraper-token"} {
		if !strings.Contains(got, want) {
			t.Errorf("after helm install, no %s in:\n%s", want, got)
		}
	}
	if out, err := helm(t, "uninstall", "podlife", "--kubeconfig", kc, "--namespace", "podlife", "--wait"); err != nil {
		t.Errorf("%v\n%s", err, out)
	}
}

func mustRender(t *testing.T, values ...string) string {
	t.Helper()
	out, err := renderText(t, values...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
