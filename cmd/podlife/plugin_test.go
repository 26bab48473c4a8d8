package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/testenv"
)

// Users of the one-node cluster that TestDaemonSet's plugin check runs as:
// jane is bound to Role podlife-cli (deploy/cli-rbac.yaml) the way the
// README says; bob to nothing; carol to a Role without pods/proxy.
var pluginUsers = []testenv.StaticToken{{Token: "jane-token", User: "jane"}, {Token: "bob-token", User: "bob"},
	{Token: "carol-token", User: "carol"}}

// pluginRequestTimeout is TestDaemonSet's API server --request-timeout, short
// so that the watch through the pod proxy is seen to outlive it.
const pluginRequestTimeout = 10 * time.Second

// checkPlugin: kubectl podlife pods|describe|watch|journal --node NODE reach
// the DaemonSet's agent through the API server's pod proxy, run by a real
// kubectl that finds the plugin (kubectl-podlife) on PATH, as a user with
// only Role podlife-cli. The API server reaches the hostNetwork agent at the
// node's address, which exists in the test's own network namespace
// (testenv.MainInNetns).
func (e *dsEnv) checkPlugin(t *testing.T) {
	bin := e.pluginDir(t)
	// As the README says: bind Role podlife-cli to the user.
	e.kubectl("-n", dsNamespace, "create", "rolebinding", "podlife-cli-jane", "--role=podlife-cli", "--user=jane")
	jane := e.c.API.Kubeconfig("jane.kubeconfig", "jane-token")
	bob := e.c.API.Kubeconfig("bob.kubeconfig", "bob-token")
	node := e.c.NodeName

	t.Run("kubectl plugin list finds it", func(t *testing.T) {
		stdout, stderr, code := e.plugin(t, jane, "plugin", "list")
		if code != 0 || !strings.Contains(stdout, filepath.Join(bin, "kubectl-podlife")) {
			t.Fatalf("kubectl plugin list: exit %d\n%s%s", code, stdout, stderr)
		}
	})

	t.Run("pods", func(t *testing.T) {
		var got agent.PodsResponse
		testenv.Eventually(t, "kubectl podlife pods --node showing the churn namespace's crash-looping pod", 60*time.Second, func() bool {
			stdout, stderr, code := e.plugin(t, jane, "podlife", "pods", "--node", node, "-o", "json")
			if code != 0 {
				t.Logf("kubectl podlife pods: exit %d: %s", code, stderr)
				return false
			}
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("kubectl podlife pods -o json: %v\n%s", err, stdout)
			}
			return hasPod(got, "churn", "crashloop")
		})
		// The same agent as the one the test reads directly: its node, its own pod.
		direct := e.pods()
		if got.Node != node || direct.Node != node {
			t.Errorf("node: through the API server %q, directly %q, want %q", got.Node, direct.Node, node)
		}
		for _, p := range direct.Pods {
			if p.Namespace == dsNamespace && !hasPod(got, p.Namespace, p.Name) {
				t.Errorf("the agent's own pod %s/%s is missing through the API server", p.Namespace, p.Name)
			}
		}
		stdout, stderr, code := e.plugin(t, jane, "podlife", "pods", "--node", node)
		if code != 0 || !strings.Contains(stdout, "NAMESPACE") || !strings.Contains(stdout, "crashloop") {
			t.Errorf("kubectl podlife pods (table): exit %d\n%s%s", code, stdout, stderr)
		}
	})

	t.Run("podlife pods --node --kubeconfig, without kubectl", func(t *testing.T) {
		podlife := filepath.Join(t.TempDir(), "podlife")
		if err := os.Link(filepath.Join(bin, "kubectl-podlife"), podlife); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(podlife, "pods", "--node", node, "--kubeconfig", jane, "-o", "json").Output()
		var got agent.PodsResponse
		if err != nil || json.Unmarshal(out, &got) != nil || got.Node != node || !hasPod(got, "churn", "crashloop") {
			t.Errorf("podlife pods --node %s --kubeconfig jane: %v\n%s", node, err, out)
		}
	})

	t.Run("nodes: the fleet from the API server alone, as the README binds it", func(t *testing.T) {
		e.kubectl("create", "clusterrolebinding", "podlife-fleet-jane", "--clusterrole=podlife-fleet-viewer", "--user=jane")
		e.kubectl("-n", dsNamespace, "create", "rolebinding", "podlife-fleet-jane", "--role=podlife-fleet-viewer", "--user=jane")
		var rows []cli.NodeRow
		testenv.Eventually(t, "kubectl podlife nodes showing the node's agent reporting", 60*time.Second, func() bool {
			stdout, stderr, code := e.plugin(t, jane, "podlife", "nodes", "-o", "json")
			if code != 0 {
				t.Logf("kubectl podlife nodes: exit %d: %s", code, stderr)
				return false
			}
			if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
				t.Fatalf("kubectl podlife nodes -o json: %v\n%s", err, stdout)
			}
			return len(rows) == 1 && rows[0].Agent == "reports"
		})
		// What the agent itself says: its pods failing and unknown, the
		// kubelet's link (the heartbeat is rewritten within a minute of a
		// change: compare with what it wrote, from the API server's Lease).
		r := rows[0]
		if r.Node != node || r.Ready != "True" || r.KubeletLink != "up" || len(r.Unreachable) != 0 || r.Trouble > 2 {
			t.Errorf("row %+v", r)
		}
		l, err := e.admin.CoordinationV1().Leases(dsNamespace).Get(context.Background(), "podlife-"+node, metav1.GetOptions{})
		if err != nil || l.Annotations["podlife.dev/pods-failing"] != fmt.Sprint(r.Failing) {
			t.Errorf("heartbeat Lease %v (%v), row %+v", l.Annotations, err, r)
		}
		stdout, stderr, code := e.plugin(t, jane, "podlife", "nodes")
		if code != 0 || !strings.Contains(stdout, "NODE") || !strings.Contains(stdout, node) {
			t.Errorf("kubectl podlife nodes (table): exit %d\n%s%s", code, stdout, stderr)
		}
		t.Logf("kubectl podlife nodes:\n%s", stdout)
		_, stderr, code = e.plugin(t, bob, "podlife", "nodes")
		if want := `podlife: listing the nodes: API server: nodes is forbidden: User "bob" cannot list resource "nodes"`; code != 1 || !strings.HasPrefix(stderr, want) {
			t.Errorf("bob: exit %d, %q; want 1 and %q", code, stderr, want)
		}
	})

	t.Run("describe", func(t *testing.T) {
		testenv.Eventually(t, "kubectl podlife describe churn/crashloop showing its exit 3", 60*time.Second, func() bool {
			stdout, stderr, code := e.plugin(t, jane, "podlife", "describe", "churn/crashloop", "--node", node)
			if code != 0 {
				t.Logf("kubectl podlife describe: exit %d: %s", code, stderr)
			}
			return code == 0 && strings.Contains(stdout, "Name:          crashloop") && strings.Contains(stdout, "exit 3")
		})
	})

	t.Run("journal", func(t *testing.T) {
		stdout, stderr, code := e.plugin(t, jane, "podlife", "journal", "--node", node)
		if code != 0 || !strings.HasPrefix(stdout, "journal of the agent on node "+node+":") {
			t.Errorf("kubectl podlife journal: exit %d\n%s%s", code, stdout, stderr)
		}
	})

	t.Run("watch streams transitions", func(t *testing.T) {
		cmd := exec.Command(e.kubect, "podlife", "watch", "--node", node, "-o", "json")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "KUBECONFIG="+jane, "HOME="+t.TempDir())
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		// -o json writes one indented JSON object per transition.
		records := make(chan agent.Record)
		decodeErr := make(chan error, 1)
		go func() {
			dec := json.NewDecoder(stdout)
			for {
				var r agent.Record
				if err := dec.Decode(&r); err != nil {
					decodeErr <- err
					return
				}
				records <- r
			}
		}()
		// The churn creates and deletes pods every few seconds. The stream
		// must outlive the API server's --request-timeout (pluginRequestTimeout
		// in this cluster): pod proxy requests are long-running
		// (kubernetes/kubernetes pkg/controlplane/apiserver/config.go,
		// BasicLongRunningRequestCheck with subresource "proxy").
		start := time.Now()
		var first, last agent.Record
		for last.Seq == 0 || time.Since(start) < pluginRequestTimeout+3*time.Second {
			select {
			case r := <-records:
				if r.Seq == 0 || r.Transition.Pod == "" || r.Seq <= last.Seq {
					t.Fatalf("kubectl podlife watch -o json: not the next transition after #%d: %+v", last.Seq, r)
				}
				if first.Seq == 0 {
					first = r
					t.Logf("first transition through the API server after %s: #%d %s", time.Since(start).Round(time.Millisecond), r.Seq, cli.FormatTransition(r))
				}
				last = r
			case err := <-decodeErr:
				t.Fatalf("kubectl podlife watch -o json: %v after %s; stderr: %s", err, time.Since(start).Round(time.Millisecond), stderr.String())
			case <-time.After(60 * time.Second):
				t.Fatalf("kubectl podlife watch: no transition in 60s; stderr: %s", stderr.String())
			}
		}
		t.Logf("the watch still streams after %s (the API server's --request-timeout is %s): #%d .. #%d",
			time.Since(start).Round(time.Millisecond), pluginRequestTimeout, first.Seq, last.Seq)
	})

	t.Run("refusals say what is missing", func(t *testing.T) {
		// Tokens of a ServiceAccount that may not read podlife: one for the
		// agent (audience podlife), whose 403 comes back through the proxy,
		// and one for the API server, which the CLI does not send.
		token := func(audiences ...string) string {
			ttl := int64(600)
			tr, err := e.admin.CoreV1().ServiceAccounts(dsNamespace).CreateToken(context.Background(), "default",
				&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl, Audiences: audiences}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return tr.Status.Token
		}
		// carol may list pods and request the viewer's token, but not pods/proxy.
		ctx := context.Background()
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "podlife-cli-no-proxy", Namespace: dsNamespace}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{"podlife-viewer"}, Verbs: []string{"create"}}}}
		if _, err := e.admin.RbacV1().Roles(dsNamespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "podlife-cli-no-proxy-carol", Namespace: dsNamespace},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "carol"}}}
		if _, err := e.admin.RbacV1().RoleBindings(dsNamespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		carol := e.c.API.Kubeconfig("carol.kubeconfig", "carol-token")
		for _, tc := range []struct {
			name, kubeconfig string
			args             []string
			want             string
		}{
			{"no Role podlife-cli", bob, []string{"pods", "--node", node},
				`API server: pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "podlife"`},
			{"no pods/proxy", carol, []string{"pods", "--node", node},
				`API server: pods "https:podlife-`},
			{"no such node", jane, []string{"pods", "--node", "nosuch"},
				`no podlife agent on node "nosuch": no pod in namespace podlife with labels app.kubernetes.io/name=podlife there`},
			{"a token for the agent without podlife-viewer", jane, []string{"pods", "--node", node, "--token", token("podlife")},
				`Forbidden: user "system:serviceaccount:podlife:default" cannot get nodes/podlife "` + node + `"`},
			{"an API server token is not sent to the node", jane, []string{"pods", "--node", node, "--token", token()},
				`--token is for audience ["https://kubernetes.default.svc"]; with --node the token goes to the node's agent`},
			{"no --node", jane, []string{"pods"}, "--node NODE: which node's agent"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stdout, stderr, code := e.plugin(t, tc.kubeconfig, append([]string{"podlife"}, tc.args...)...)
				if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
					t.Errorf("exit %d, stderr %q, want one line with %q (stdout %q)", code, stderr, tc.want, stdout)
				}
				if tc.name == "no pods/proxy" && !strings.Contains(stderr, `is forbidden: User "carol" cannot get resource "pods/proxy"`) {
					t.Errorf("stderr %q, want the API server's pods/proxy refusal", stderr)
				}
			})
		}
	})

	t.Run("-n: one namespace", func(t *testing.T) {
		stdout, stderr, code := e.plugin(t, jane, "podlife", "pods", "-n", "churn", "--node", node, "-o", "json")
		var got agent.PodsResponse
		if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || !hasPod(got, "churn", "crashloop") {
			t.Fatalf("kubectl podlife pods -n churn: exit %d\n%s%s", code, stdout, stderr)
		}
		for _, p := range got.Pods {
			if p.Namespace != "churn" {
				t.Errorf("kubectl podlife pods -n churn lists %s/%s", p.Namespace, p.Name)
			}
		}
		stdout, stderr, code = e.plugin(t, jane, "podlife", "describe", "crashloop", "-n", "churn", "--node", node)
		if code != 0 || !strings.Contains(stdout, "Namespace:     churn") {
			t.Errorf("kubectl podlife describe crashloop -n churn: exit %d\n%s%s", code, stdout, stderr)
		}
	})

	// Why the token travels in X-Podlife-Authorization: the API server
	// authenticates the caller and deletes the Authorization header before
	// the request goes on to the pod (kubernetes/kubernetes
	// staging/src/k8s.io/apiserver/pkg/endpoints/filters/authentication.go,
	// WithAuthentication: req.Header.Del("Authorization")). A caller with
	// every right, through the proxy without that header, gets the agent's
	// 401; and in that header the agent takes only a token for audience
	// podlife, so not even a valid API server credential.
	t.Run("through the proxy: no X-Podlife-Authorization, or an API server token in it", func(t *testing.T) {
		pod := e.waitAgentPod("", 30*time.Second)
		port := pod.Spec.Containers[0].Ports[0].ContainerPort
		rc, err := clientcmd.BuildConfigFromFlags("", e.c.AdminKubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		hc, err := rest.HTTPClientFor(rc)
		if err != nil {
			t.Fatal(err)
		}
		// A token of the viewer itself, for the API server's audience.
		ttl := int64(600)
		tr, err := e.admin.CoreV1().ServiceAccounts(dsNamespace).CreateToken(context.Background(), "podlife-viewer",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		url := rc.Host + "/api/v1/namespaces/" + dsNamespace + "/pods/https:" + pod.Name + ":" + strconv.Itoa(int(port)) + "/proxy/api/v1/pods"
		for _, tc := range []struct{ header, want string }{
			{"", "Unauthorized: send a bearer token"},
			{"Bearer " + tr.Status.Token, `Unauthorized: the X-Podlife-Authorization token is not one the API server accepts for audience \"podlife\"`},
		} {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			if tc.header != "" {
				req.Header.Set("X-Podlife-Authorization", tc.header)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), tc.want) {
				t.Errorf("GET %s as admin, X-Podlife-Authorization %.20q: %d %s, want the agent's 401 %s", url, tc.header, resp.StatusCode, b, tc.want)
			}
		}
	})
}

// pluginDir builds kubectl-podlife once into a directory for PATH.
func (e *dsEnv) pluginDir(t *testing.T) string {
	t.Helper()
	if e.pluginBin != "" {
		return e.pluginBin
	}
	bin := filepath.Join(e.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "kubectl-podlife"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -o kubectl-podlife: %v\n%s", err, out)
	}
	e.pluginBin = bin
	return bin
}

// plugin runs kubectl ARGS as the user of kubeconfig, with the plugin on
// PATH, and returns stdout, stderr and the exit code.
func (e *dsEnv) plugin(t *testing.T, kubeconfig string, args ...string) (string, string, int) {
	t.Helper()
	bin := e.pluginDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kubect, args...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), code
}

// hasPod reports whether r lists ns/name.
func hasPod(r agent.PodsResponse, ns, name string) bool {
	for _, p := range r.Pods {
		if p.Namespace == ns && p.Name == name {
			return true
		}
	}
	return false
}
