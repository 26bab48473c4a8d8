package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/secure"
	"github.com/podlife/podlife/internal/testenv"
)

// checkBlackBoxAuth: the crash black box holds log lines, so the agent serves
// a pod's black box to who may do what kubectl logs needs, get pods/log on
// that pod in its namespace (a SubjectAccessReview by the real API server),
// and nobody else; the rest of the API keeps nodes/podlife. ServiceAccount
// logs-a/reader is bound to ClusterRole view in namespace logs-a only (view
// grants pods/log: kubernetes/kubernetes
// plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, addClusterRoleViewRules
// ... "pods/log"). Directly, to the agent's HTTPS listener, with a token for
// the API server's audience; through kubectl podlife --node --token, with a
// token for audience podlife. Without --token, kubectl podlife sends
// podlife-viewer's token, which may not read logs: one line says so.
func (e *dsEnv) checkBlackBoxAuth(t *testing.T) {
	ctx := context.Background()
	secret := func(ns string) string {
		b := make([]byte, 6)
		rand.Read(b)
		return ns + "-secret-" + hex.EncodeToString(b)
	}
	want := map[string]string{"logs-a": secret("logs-a"), "logs-b": secret("logs-b")}
	e.secretA = want["logs-a"]
	for ns, line := range want {
		e.c.CreateNamespace(t, ns)
		e.createPod(ns, "crasher", []string{"sh", "-c", "echo " + line + "; exit 3"})
	}
	// The agent keeps both pods' first exit (read as the test, on its plain
	// listener).
	for ns, line := range want {
		testenv.Eventually(t, "the agent's black box of "+ns+"/crasher holding "+line, 90*time.Second, func() bool {
			var r api.LogsResponse
			return getJSONFrom(e.server+"/api/v1/pods/"+ns+"/crasher/logs", &r) == 200 && logsHold(r, line)
		})
	}

	// By default (no --event-log-lines) the Events of those exits name the
	// command that shows the lines, and carry none.
	testenv.Eventually(t, "the Event of logs-a/crasher's exit", 90*time.Second, func() bool {
		l, err := e.admin.EventsV1().Events("logs-a").List(ctx, metav1.ListOptions{LabelSelector: "podlife.dev/seq"})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range l.Items {
			if strings.Contains(ev.Note, want["logs-a"]) {
				t.Fatalf("Event %s %s carries a log line without --event-log-lines: %q", ev.Name, ev.Reason, ev.Note)
			}
		}
		for _, ev := range l.Items {
			if ev.Reason == "ContainerExited" && strings.Contains(ev.Note, "; last lines: podlife logs logs-a/crasher -c app --all") {
				return true
			}
		}
		return false
	})

	if _, err := e.admin.CoreV1().ServiceAccounts("logs-a").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reader-view", Namespace: "logs-a"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: "logs-a"}}}
	if _, err := e.admin.RbacV1().RoleBindings("logs-a").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(audiences ...string) string {
		ttl := int64(600)
		tr, err := e.admin.CoreV1().ServiceAccounts("logs-a").CreateToken(ctx, "reader",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl, Audiences: audiences}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	const reader = "system:serviceaccount:logs-a:reader"
	forbiddenB := `Forbidden: user "` + reader + `" cannot get pods/log "crasher" in namespace "logs-b" (what kubectl logs needs`

	t.Run("directly, with an API server token", func(t *testing.T) {
		tok := token()
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		get := func(path string) (int, string) {
			req, _ := http.NewRequest(http.MethodGet, e.secure+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		code, body := get("/api/v1/pods/logs-a/crasher/logs")
		var r api.LogsResponse
		if code != 200 || json.Unmarshal([]byte(body), &r) != nil || !logsHold(r, want["logs-a"]) {
			t.Errorf("GET logs-a/crasher/logs as %s: %d %s, want 200 with %q", reader, code, body, want["logs-a"])
		}
		for path, msg := range map[string]string{
			"/api/v1/pods/logs-b/crasher/logs": forbiddenB,
			"/api/v1/pods":                     `Forbidden: user "` + reader + `" cannot get nodes/podlife`,
		} {
			code, body := get(path)
			var e struct{ Error string }
			json.Unmarshal([]byte(body), &e)
			if code != http.StatusForbidden || !strings.Contains(e.Error, msg) || strings.Contains(body, want["logs-b"]) {
				t.Errorf("GET %s as %s: %d %s, want 403 with %q", path, reader, code, body, msg)
			}
		}
	})

	jane := e.c.API.Kubeconfig("jane.kubeconfig", "jane-token") // Role podlife-cli (checkPlugin)
	node := e.c.NodeName
	t.Run("kubectl podlife logs --node --token", func(t *testing.T) {
		tok := token(secure.ProxyAudience)
		stdout, stderr, code := e.plugin(t, jane, "podlife", "logs", "logs-a/crasher", "--node", node, "--token", tok)
		if code != 0 || !strings.Contains(stdout, want["logs-a"]) || !strings.Contains(stdout, "exit 3") {
			t.Errorf("kubectl podlife logs logs-a/crasher --token (reader): exit %d\n%s%s", code, stdout, stderr)
		}
		t.Logf("kubectl podlife logs logs-a/crasher --node %s --token (reader):\n%s", node, stdout)
		stdout, stderr, code = e.plugin(t, jane, "podlife", "logs", "logs-b/crasher", "--node", node, "--token", tok)
		if code == 0 || !strings.Contains(stderr, forbiddenB) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 || strings.Contains(stdout+stderr, want["logs-b"]) {
			t.Errorf("kubectl podlife logs logs-b/crasher --token (reader): exit %d, stdout %q, stderr %q, want one line with %q", code, stdout, stderr, forbiddenB)
		}
		t.Logf("kubectl podlife logs logs-b/crasher --node %s --token (reader): exit %d: %s", node, code, stderr)
	})
	t.Run("kubectl podlife logs --node, as podlife-viewer", func(t *testing.T) {
		stdout, stderr, code := e.plugin(t, jane, "podlife", "logs", "logs-a/crasher", "--node", node)
		msg := `Forbidden: user "system:serviceaccount:podlife:podlife-viewer" cannot get pods/log "crasher" in namespace "logs-a"`
		if code == 0 || !strings.Contains(stderr, msg) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("kubectl podlife logs logs-a/crasher (viewer): exit %d, stdout %q, stderr %q, want one line with %q", code, stdout, stderr, msg)
		}
	})
}

// logsHold reports whether an attempt of r wrote a line holding s.
func logsHold(r api.LogsResponse, s string) bool {
	for _, a := range r.Attempts {
		for _, l := range a.Lines {
			if strings.Contains(l.Text, s) {
				return true
			}
		}
	}
	return false
}

// checkPluginUI: kubectl podlife ui --node serves the agent's page on
// 127.0.0.1 through the API server's pod proxy (jane's kubeconfig, the
// viewer's token); in headless Chromium it lists the pods the agent's API
// lists and every pod the API server has on the node, follows the watch,
// with no console error and no request but to the forwarder.
func (e *dsEnv) checkPluginUI(t *testing.T) {
	ui := e.startPluginUI(t)
	base := strings.TrimSuffix(ui, "/ui/")
	b := testenv.StartBrowser(t)
	b.Do(t, time.Minute, chromedp.Navigate(ui), chromedp.WaitVisible(`#pods tbody tr`))
	testenv.Eventually(t, "the page through the API server listing the pods the agent lists", time.Minute, func() bool {
		return slices.Equal(pageRows(t, b), apiRows(t, e.server))
	})
	// Every pod the API server has on the node is on the page (the churn
	// creates and deletes pods: some pass, none stays missing).
	testenv.Eventually(t, "the page listing every pod the API server lists on the node", time.Minute, func() bool {
		l, err := e.admin.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + e.c.NodeName})
		if err != nil {
			t.Fatal(err)
		}
		rows := pageRows(t, b)
		for _, p := range l.Items {
			if !slices.Contains(rows, p.Namespace+"/"+p.Name) {
				return false
			}
		}
		return len(l.Items) > 0
	})
	if node := testenv.Eval[string](t, b, `document.querySelector('#node').textContent`); node != "node "+e.c.NodeName {
		t.Errorf("the page names %q, want node %s", node, e.c.NodeName)
	}
	testenv.Eventually(t, "the page following the watch through the pod proxy", time.Minute, func() bool {
		return testenv.Eval[string](t, b, `document.querySelector('#live').textContent`) == "live"
	})
	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
	for _, u := range b.Requests() {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("a request outside the forwarder: %s", u)
		}
	}
	// An attempt's last lines on click, where the caller may read them: the
	// viewer may not (no pods/log); logs-a/reader may, once also bound to
	// podlife-reader (the page, like the API, needs get nodes/podlife).
	if got := attemptLines(t, b, ui); !strings.Contains(got, "Not allowed to read its last lines: Forbidden") || !strings.Contains(got, "pods/log") {
		t.Errorf("an attempt of logs-a/crasher clicked, as podlife-viewer: %q", got)
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "podlife-reader-logs-a-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "podlife-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: "logs-a"}}}
	if _, err := e.admin.RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ttl := int64(600)
	tr, err := e.admin.CoreV1().ServiceAccounts("logs-a").CreateToken(context.Background(), "reader",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl, Audiences: []string{secure.ProxyAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reader := e.startPluginUI(t, "--token", tr.Status.Token)
	if got := attemptLines(t, b, reader); !strings.Contains(got, e.secretA) {
		t.Errorf("an attempt of logs-a/crasher clicked, as logs-a/reader: %q, want its line %q", got, e.secretA)
	}
}

// startPluginUI starts kubectl podlife ui --node as jane, with args, and
// returns the page's URL it prints. It stops with the test.
func (e *dsEnv) startPluginUI(t *testing.T, args ...string) string {
	bin := e.pluginDir(t)
	jane := e.c.API.Kubeconfig("jane.kubeconfig", "jane-token")
	cmd := exec.Command(e.kubect, append([]string{"podlife", "ui", "--node", e.c.NodeName}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "KUBECONFIG="+jane, "HOME="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("kubectl podlife ui printed nothing; stderr: %s", stderr.String())
	}
	line := sc.Text()
	t.Logf("kubectl podlife ui --node %s: %s", e.c.NodeName, line)
	f := strings.Fields(line)
	if len(f) < 3 || !strings.HasPrefix(f[2], "http://127.0.0.1:") || !strings.HasSuffix(line, "through the API server (Ctrl-C stops)") {
		t.Fatalf("kubectl podlife ui printed %q", line)
	}
	return f[2]
}

// attemptLines opens logs-a/crasher's timeline at ui, selects an ended
// attempt with the keyboard, and returns what the detail shows of its lines.
func attemptLines(t *testing.T, b *testenv.Browser, ui string) string {
	b.Do(t, time.Minute, chromedp.Navigate(ui+"#/pod/logs-a/crasher"), chromedp.WaitVisible(`#timeline rect.bar.failed`))
	testenv.Eval[bool](t, b, `document.querySelector('#timeline rect.bar.failed').focus() || true`)
	b.Do(t, time.Minute, chromedp.KeyEvent(kb.Enter))
	var got string
	testenv.Eventually(t, "the attempt's lines, or why not", time.Minute, func() bool {
		got = testenv.Eval[string](t, b, `document.querySelector('#detail').textContent`)
		return !strings.Contains(got, "Reading its last lines")
	})
	return got
}
