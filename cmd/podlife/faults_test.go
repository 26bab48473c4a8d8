package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/lifecycle"
)

// The fault table's rows (README "Failure behaviour"): each injects one
// fault into a real component (or, where a real one cannot show it, into a
// proxy in front of the real one) under the real agent binary, and checks
// that the agent keeps serving, reports the source down with a one-line
// error, recovers by itself, and neither loses nor duplicates a transition
// it journaled.

// addFaultPods gives a kubelet the static pods that keep transitions coming
// through every fault: serving and crashloop of e2ePods.
func addFaultPods(t *testing.T, k *testenv.Kubelet) {
	t.Helper()
	var manifests map[string]string
	if err := yamlUnmarshal(e2ePods, &manifests); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"serving", "crashloop"} {
		k.AddStaticPod(t, name, strings.ReplaceAll(manifests[name], "IMG", testenv.BusyboxImage))
	}
}

// startFaultNode builds the agent and starts a real containerd and a
// standalone kubelet named node with the pods of addFaultPods.
func startFaultNode(t *testing.T, node string) (bin string, ctd *testenv.Containerd, k *testenv.Kubelet) {
	t.Helper()
	if testing.Short() {
		t.Skip("real components (containerd, kubelet): not in -short")
	}
	bin = buildPodlife(t)
	ctd = testenv.StartContainerd(t)
	ctd.ImportImages(t)
	k = testenv.StartKubelet(t, ctd, node)
	addFaultPods(t, k)
	return bin, ctd, k
}

// faultAgent is a real agent under a fault test, read through its plain
// HTTP API.
type faultAgent struct {
	*agentProc
	t       *testing.T
	logPath string
}

// startFaultAgent starts the agent with a journal of its own and no secure
// listener; args add to (or override) that.
func startFaultAgent(t *testing.T, bin string, args ...string) *faultAgent {
	t.Helper()
	dir := t.TempDir()
	a := &faultAgent{t: t, logPath: filepath.Join(dir, "agent.log")}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(a.logPath)
			t.Logf("agent log tail (%s):\n%s", a.logPath, testenv.Tail(string(b), 6000))
		}
	})
	a.agentProc = startAgent(t, bin, a.logPath, append([]string{"--journal-path", filepath.Join(dir, "journal.db"),
		"--poll-interval", "500ms", "--stuck-threshold", "0", "--secure-listen-address="}, args...)...)
	testenv.Eventually(t, "agent ready", 60*time.Second, func() bool { return getJSONFrom(a.URL+"/readyz", nil) == 200 })
	return a
}

// pods is GET /api/v1/pods and its status code.
func (a *faultAgent) pods() (agent.PodsResponse, int) {
	var r agent.PodsResponse
	code := getJSONFrom(a.URL+"/api/v1/pods", &r)
	return r, code
}

// metrics is GET /metrics ("" when it does not answer).
func (a *faultAgent) metrics() string {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(a.URL + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sourceUp is podlife_source_up of source as /metrics has it ("" if absent).
func (a *faultAgent) sourceUp(source string) string {
	prefix := fmt.Sprintf("podlife_source_up{source=%q} ", source)
	for _, l := range strings.Split(a.metrics(), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}

// history is every transition the agent recorded (GET /api/v1/transitions).
func (a *faultAgent) history() []agent.Record {
	var recs []agent.Record
	getJSONFrom(a.URL+"/api/v1/transitions", &recs)
	return recs
}

// journal is GET /api/v1/journal.
func (a *faultAgent) journal() agent.JournalResponse {
	var r agent.JournalResponse
	getJSONFrom(a.URL+"/api/v1/journal", &r)
	return r
}

// waitFaultPods waits until the agent shows faultPods on node: serving, and
// crash-looping (restarted at least once).
func (a *faultAgent) waitFaultPods(node string) {
	a.t.Helper()
	testenv.Eventually(a.t, "both static pods seen, the crash loop restarting", 120*time.Second, func() bool {
		r, _ := a.pods()
		n := 0
		for _, p := range r.Pods {
			if p.Name == "serving-"+node && p.Stage == lifecycle.StageServing || p.Name == "crashloop-"+node && p.Restarts() >= 1 {
				n++
			}
		}
		return n == 2
	})
}

// logged counts the lines of the agent's log that hold s.
func (a *faultAgent) logged(s string) int {
	b, _ := os.ReadFile(a.logPath)
	return strings.Count(string(b), s)
}

// waitDown waits until source is reported down with an error holding every
// part of want, and checks how it is reported: one line, podlife_source_up
// 0, and the API still answering with the pods it knew. It returns the error.
func (a *faultAgent) waitDown(source string, limit time.Duration, want ...string) string {
	a.t.Helper()
	var last lifecycle.SourceHealth
	testenv.Eventually(a.t, source+" down with "+strings.Join(want, " … "), limit, func() bool {
		r, _ := a.pods()
		last = r.Sources[source]
		if last.Up || last.LastError == "" {
			return false
		}
		for _, w := range want {
			if !strings.Contains(last.LastError, w) {
				return false
			}
		}
		return true
	})
	if strings.ContainsAny(last.LastError, "\n\r") {
		a.t.Errorf("%s: lastError is not one line: %q", source, last.LastError)
	}
	testenv.Eventually(a.t, "podlife_source_up{source="+source+"} 0", 10*time.Second, func() bool { return a.sourceUp(source) == "0" })
	r, code := a.pods()
	if code != http.StatusOK || len(r.Pods) == 0 || getJSONFrom(a.URL+"/healthz", nil) != http.StatusOK {
		a.t.Errorf("while %s is down: /api/v1/pods %d with %d pods, /healthz: want 200 with the pods it knew", source, code, len(r.Pods))
	}
	a.t.Logf("%s down: %s", source, last.LastError)
	return last.LastError
}

// waitUp waits until source is up again, in the API and in /metrics.
func (a *faultAgent) waitUp(source string, limit time.Duration) {
	a.t.Helper()
	testenv.Eventually(a.t, source+" up again", limit, func() bool {
		r, _ := a.pods()
		h := r.Sources[source]
		return h.Up && h.LastError == "" && a.sourceUp(source) == "1"
	})
}

// mark is what the agent had journaled before a fault.
type mark struct {
	history []agent.Record
	pending []journal.Entry
}

// mark records what the agent has journaled now.
func (a *faultAgent) mark() mark {
	return mark{history: a.history(), pending: a.journal().Pending}
}

// checkJournal checks, after a fault, that the agent went on journaling
// every transition once. With nothing delivered upstream (--upstream off)
// every journaled entry is still pending: sequences 1..lastSeq with no gap,
// each the transition the agent recorded with that number; every entry of
// before is there unchanged; nothing was dropped; source went down and up
// once each since before (see checkJournalCycles); and no transition with a time of its own (a
// container's start or exit) was journaled again.
func (a *faultAgent) checkJournal(before mark, source string) {
	a.checkJournalCycles(before, source, 1)
}

// checkJournalCycles is checkJournal for a source that went down and up
// cycles times since before.
func (a *faultAgent) checkJournalCycles(before mark, source string, cycles int) {
	a.t.Helper()
	j, hist := a.journal(), a.history()
	if j.Stats.Dropped != 0 || !j.Health.Up || j.Health.Lost != 0 {
		a.t.Errorf("journal: dropped %d, up %v, lost %d (%s)", j.Stats.Dropped, j.Health.Up, j.Health.Lost, j.Health.Error)
	}
	if uint64(len(j.Pending)) != j.Stats.LastSeq || len(hist) != len(j.Pending) {
		a.t.Fatalf("journal: %d pending, last seq %d, %d in the agent's history: want all the same", len(j.Pending), j.Stats.LastSeq, len(hist))
	}
	for i, e := range j.Pending {
		h := hist[i]
		if e.Seq != uint64(i+1) || h.Seq != e.Seq || !sameTransition(e.Transition, h.Transition) {
			a.t.Fatalf("journal entry %d: seq %d %s; the agent recorded seq %d %s", i, e.Seq, describe(e.Transition), h.Seq, describe(h.Transition))
		}
	}
	for _, e := range before.pending {
		if i := int(e.Seq) - 1; i >= len(j.Pending) || j.Pending[i].ID != e.ID || !sameTransition(j.Pending[i].Transition, e.Transition) {
			a.t.Errorf("journaled before the fault, lost or changed: seq %d %s", e.Seq, describe(e.Transition))
		}
	}
	seen := map[string]uint64{}
	var downs, ups int
	for _, e := range j.Pending {
		tr := e.Transition
		if e.Seq > uint64(len(before.pending)) && tr.Source == source {
			switch tr.Kind {
			case lifecycle.TransitionSourceDown:
				downs++
			case lifecycle.TransitionSourceUp:
				ups++
			}
		}
		if tr.HappenedAt.IsZero() || tr.Kind == lifecycle.TransitionStageChanged || strings.EqualFold(tr.From, "unknown") || strings.EqualFold(tr.To, "unknown") {
			continue // no time of its own, or a view lost and found again
		}
		k := fmt.Sprintf("%s %s %s/%s %s->%s at %s", tr.Kind, tr.Source, tr.UID, tr.Container, tr.From, tr.To, tr.HappenedAt.Format(time.RFC3339Nano))
		if s, dup := seen[k]; dup {
			a.t.Errorf("journaled twice: seq %d and %d: %s", s, e.Seq, k)
		}
		seen[k] = e.Seq
	}
	if downs != cycles || ups != cycles {
		a.t.Errorf("since the fault: %d SourceDown and %d SourceUp of %s journaled, want %d of each", downs, ups, source, cycles)
	}
}

// sameTransition compares what identifies a transition.
func sameTransition(a, b lifecycle.Transition) bool {
	return a.Kind == b.Kind && a.UID == b.UID && a.Container == b.Container && a.Source == b.Source &&
		a.From == b.From && a.To == b.To && a.ObservedAt.Equal(b.ObservedAt) && a.HappenedAt.Equal(b.HappenedAt)
}

// describe names a transition in a few words.
func describe(t lifecycle.Transition) string {
	return fmt.Sprintf("%s %s/%s %s %s->%s", t.Kind, t.Pod, t.Container, t.Source, t.From, t.To)
}

// faultyKubelet stands between the agent and a real kubelet's read-only
// port: it passes /pods through, or answers it with the fault it is set to
// (a real kubelet cannot be made to send a bad body); the kubelet's other
// endpoints always pass through.
type faultyKubelet struct {
	real  *url.URL
	proxy *httputil.ReverseProxy
	mode  atomic.Value // string: "" passes through
}

// newFaultyKubelet serves a faultyKubelet for the kubelet at realURL until
// the test ends, and returns it and its URL.
func newFaultyKubelet(t *testing.T, realURL string) (*faultyKubelet, string) {
	u, err := url.Parse(realURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyKubelet{real: u, proxy: httputil.NewSingleHostReverseProxy(u)}
	f.mode.Store("")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// The largest /pods answer the agent accepts (kubelet.Config.MaxBodyBytes).
const kubeletBodyLimit = 64 << 20

func (f *faultyKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := f.mode.Load().(string)
	if r.URL.Path != "/pods" || mode == "" {
		f.proxy.ServeHTTP(w, r)
		return
	}
	head := `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[`
	rc := http.NewResponseController(w)
	switch mode {
	case "404": // the real kubelet's own 404
		r.URL.Path = "/pods-not-here"
		f.proxy.ServeHTTP(w, r)
	case "garbage":
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>\n")
	case "truncated": // the real answer, cut off halfway through
		resp, err := http.Get(f.real.String() + "/pods")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
		// Returning short of Content-Length closes the connection.
	case "huge":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, head)
		chunk := []byte(strings.Repeat(" ", 1<<20))
		for n := len(head); n <= kubeletBodyLimit+len(chunk); n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case "trickle": // headers at once, then a byte now and then
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, head)
		rc.Flush()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// TestKubeletFaults: the kubelet rows of the fault table that a real
// kubelet can show on its own (a serving certificate it renews, a token file
// that disappears) and the bad answers it cannot (a 404 from its own mux
// behind a proxy that rewrites the path; garbage, a truncated body, one past
// the limit, one that trickles), under the real agent.
func TestKubeletFaults(t *testing.T) {
	bin, ctd, k := startFaultNode(t, "podlife-faults")
	faulty, faultyURL := newFaultyKubelet(t, k.ReadOnlyURL)
	ag := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", faultyURL, "--upstream", "off")
	ag.waitFaultPods(k.Name)

	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"404", []string{"/pods: HTTP 404 (kubelet: 404 page not found): nothing serves /pods there"}},
		{"garbage", []string{"/pods: decode /pods: invalid character '<'"}},
		{"truncated", []string{"/pods: reading body after", "bytes (truncated answer): unexpected EOF"}},
		{"huge", []string{"/pods: answer larger than the 67108864-byte limit"}},
		{"trickle", []string{"/pods: timed out after", "bytes of the answer: it came slower than the 5s timeout"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ag.t = t
			before := ag.mark()
			faulty.mode.Store(tc.mode)
			ag.waitDown(lifecycle.SourceKubelet, 60*time.Second, tc.want...)
			faulty.mode.Store("")
			ag.waitUp(lifecycle.SourceKubelet, 30*time.Second)
			ag.checkJournal(before, lifecycle.SourceKubelet)
		})
	}

	// Over HTTPS, with the kubelet's serving certificate pinned from a file
	// and a token file (the standalone kubelet accepts any caller).
	dir := t.TempDir()
	pin, token := filepath.Join(dir, "kubelet.crt"), filepath.Join(dir, "token")
	copyFile(t, k.ServingCertFile, pin)
	writeFile(t, token, "podlife-token")
	tlsAgent := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--upstream", "off",
		"--kubelet-url", k.HTTPSURL, "--kubelet-serving-cert-file", pin, "--kubelet-token-file", token)
	tlsAgent.waitUp(lifecycle.SourceKubelet, 30*time.Second)

	t.Run("token file disappears", func(t *testing.T) {
		tlsAgent.t = t
		before := tlsAgent.mark()
		if err := os.Rename(token, token+".away"); err != nil {
			t.Fatal(err)
		}
		tlsAgent.waitDown(lifecycle.SourceKubelet, 30*time.Second, "kubelet-token-file: stat "+token+": no such file or directory")
		if err := os.Rename(token+".away", token); err != nil {
			t.Fatal(err)
		}
		tlsAgent.waitUp(lifecycle.SourceKubelet, 30*time.Second)
		tlsAgent.checkJournal(before, lifecycle.SourceKubelet)
	})
	// The kubelet renews its self-signed certificate on a restart; the pinned
	// copy still holds the old one (a single-file mount of a certificate
	// replaced by a rename keeps the old file) until it is rewritten in place.
	t.Run("serving certificate renewed", func(t *testing.T) {
		tlsAgent.t = t
		before := tlsAgent.mark()
		verified := `podlife_kubelet_tls_verified{mode="pinned-cert"} `
		if !hasLine(tlsAgent.metrics(), verified+"1") {
			t.Fatalf("not verified with the pin before the renewal:\n%s", tlsAgent.metrics())
		}
		k.RestartWithNewCert(t)
		tlsAgent.waitDown(lifecycle.SourceKubelet, 90*time.Second, "TLS verification failed: the kubelet's certificate (subject "+k.Name,
			"is not the certificate pinned in kubelet-serving-cert-file "+pin+" (re-read at every connection)")
		if !hasLine(tlsAgent.metrics(), verified+"0") {
			t.Errorf("podlife_kubelet_tls_verified not 0 while the pin does not match")
		}
		copyFile(t, k.ServingCertFile, pin) // rewritten in place: same inode
		tlsAgent.waitUp(lifecycle.SourceKubelet, 30*time.Second)
		if !hasLine(tlsAgent.metrics(), verified+"1") {
			t.Errorf("podlife_kubelet_tls_verified not 1 once the pin holds the new certificate")
		}
		tlsAgent.checkJournal(before, lifecycle.SourceKubelet)
	})
}

// copyFile writes src's content over dst in place (dst keeps its inode).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(b))
}

// writeFile writes content to path in place.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKubeletAuthFaults: the kubelet rows that need a kubelet with webhook
// authentication and authorization, in the one-node cluster. The agent's
// token file is rotated (it is re-read at every change) to a token the API
// server does not know (401), to a service account without RBAC (403
// naming nodes/pods, until it is granted), and to one with nodes/pods only
// (its /metrics 403 names nodes/metrics).
func TestKubeletAuthFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster): not in -short")
	}
	bin := buildPodlife(t)
	// A denied review is cached by the kubelet for 30 s by default: 1 s
	// here, so a grant is seen at once.
	c := testenv.StartCluster(t, testenv.ClusterOptions{KubeletArgs: []string{"--authorization-webhook-cache-unauthorized-ttl=1s"}})
	admin, ctx := c.Client(t), context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	const ns = "faults"
	c.CreateNamespace(t, ns)
	saToken := func(name string) string {
		t.Helper()
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	bind := func(sa, role string) {
		t.Helper()
		b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "faults-" + sa + "-" + role},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}}
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	noPods, podsOnly := saToken("no-pods"), saToken("pods-only")
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "faults-pods-only"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/pods"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind("pods-only", "faults-pods-only")
	addFaultPods(t, c.Kubelet)

	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, testenv.AgentToken)
	ag := startFaultAgent(t, bin, "--node-name", c.NodeName, "--cri-endpoint", c.Containerd.Endpoint, "--upstream", "off",
		"--kubelet-url", c.KubeletURL, "--kubelet-token-file", token,
		"--kubelet-ca-file", c.API.CAFile, "--kubelet-serving-cert-file", c.KubeletServingCertFile)
	ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
	testenv.Eventually(t, "the static pods seen", 120*time.Second, func() bool {
		r, _ := ag.pods()
		return len(r.Pods) >= 2
	})
	// rotate rewrites the token file as the kubelet's projected volume does
	// (a new file moved into place).
	rotate := func(tok string) {
		t.Helper()
		writeFile(t, token+".new", tok)
		if err := os.Rename(token+".new", token); err != nil {
			t.Fatal(err)
		}
	}
	linkUp := func() bool {
		r, _ := ag.pods()
		return r.Sources[lifecycle.SourceKubeletLink].Up
	}

	t.Run("401: a rotated token the API server does not know", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		rotate("not-a-token-anyone-issued")
		ag.waitDown(lifecycle.SourceKubelet, 30*time.Second, "/pods: 401 Unauthorized: the token was rejected (check kubelet-token-file "+token+")")
		if !linkUp() {
			t.Errorf("a rotated token's 401 was taken for the kubelet's link to the API server being cut")
		}
		rotate(testenv.AgentToken)
		ag.waitUp(lifecycle.SourceKubelet, 30*time.Second)
		ag.checkJournal(before, lifecycle.SourceKubelet)
	})
	t.Run("403: a rotated token without nodes/pods, then granted", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		rotate(noPods)
		ag.waitDown(lifecycle.SourceKubelet, 30*time.Second, "/pods: 403 Forbidden (kubelet: Forbidden (user=system:serviceaccount:faults:no-pods",
			"the service account lacks RBAC `get` on `nodes/pods` (deploy/rbac.yaml grants it)")
		bind("no-pods", "podlife") // deploy/rbac.yaml's ClusterRole
		ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
		ag.checkJournal(before, lifecycle.SourceKubelet)
	})
	t.Run("403 from /metrics: a token without nodes/metrics", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		rotate(podsOnly)
		want := "403 Forbidden: the service account lacks RBAC `get` on `nodes/metrics` (deploy/rbac.yaml grants it)"
		testenv.Eventually(t, "the agent's log naming nodes/metrics", 30*time.Second, func() bool {
			b, _ := os.ReadFile(ag.logPath)
			return strings.Contains(string(b), want)
		})
		r, _ := ag.pods()
		if h := r.Sources[lifecycle.SourceKubelet]; !h.Up {
			t.Errorf("the kubelet's /pods still answers: the kubelet source must stay up, got %+v", h)
		}
		rotate(testenv.AgentToken)
		ag.checkJournalCycles(before, lifecycle.SourceKubelet, 0)
	})
}

// TestRuntimeFaults: the runtime rows of the fault table, on a real
// containerd under the real agent.
func TestRuntimeFaults(t *testing.T) {
	bin, ctd, k := startFaultNode(t, "podlife-rtfaults")
	ag := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL, "--upstream", "off")
	ag.waitFaultPods(k.Name)
	const streamOpen = "following the runtime's container events"

	t.Run("containerd restarted while the event stream is open", func(t *testing.T) {
		ag.t = t
		if n := ag.logged(streamOpen); n != 1 {
			t.Fatalf("the event stream opened %d times before the restart, want 1", n)
		}
		before := ag.mark()
		ctd.Stop(t)
		ag.waitDown(lifecycle.SourceRuntime, 30*time.Second, "cri "+ctd.Endpoint+": ")
		ctd.Restart(t)
		ag.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		testenv.Eventually(t, "the event stream reopened", 30*time.Second, func() bool {
			return ag.logged("container event stream ended") == 1 && ag.logged(streamOpen) == 2
		})
		ag.checkJournal(before, lifecycle.SourceRuntime)
	})
	t.Run("socket removed, then re-created", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		if err := os.Remove(ctd.Socket); err != nil {
			t.Fatal(err)
		}
		// The connection the agent holds still reaches containerd: it goes
		// on reading the runtime (a relist every 500 ms) without the file.
		since := time.Now()
		time.Sleep(3 * time.Second)
		if r, _ := ag.pods(); !r.Sources[lifecycle.SourceRuntime].Up || !r.Sources[lifecycle.SourceRuntime].LastSuccess.After(since) {
			t.Errorf("with the socket file gone but its connection open: runtime %+v, want up and read since", r.Sources[lifecycle.SourceRuntime])
		}
		ctd.Kill(t) // the connection ends; a new one finds no socket
		ag.waitDown(lifecycle.SourceRuntime, 30*time.Second, "cri "+ctd.Endpoint+": ", "connect: no such file or directory")
		ctd.Restart(t) // containerd makes its socket again
		ag.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		ag.checkJournal(before, lifecycle.SourceRuntime)
	})
	t.Run("permission denied on the socket", func(t *testing.T) {
		// Root passes a unix socket's file mode (CAP_DAC_OVERRIDE), so an
		// agent run as root cannot be denied: this one runs as nobody.
		if err := os.Chmod(ctd.Socket, 0); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("unix", ctd.Socket); err != nil {
			t.Logf("root was refused a mode-0 socket (%v): this kernel enforces it even for root", err)
		} else {
			c.Close()
			t.Logf("root connects to a mode-0 socket: the denied agent runs as uid %d", nobody)
		}
		// containerd's directory is root's 0700: let nobody reach the socket.
		for path, mode := range map[string]os.FileMode{ctd.Dir: 0o711, ctd.Socket: 0o666} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
		}
		wrapper, journalPath := asNobody(t, bin)
		nb := startFaultAgent(t, wrapper, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL,
			"--upstream", "off", "--journal-path", journalPath)
		nb.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", nb.Process.Pid)); !strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", nobody)) {
			t.Fatalf("the agent does not run as uid %d:\n%s", nobody, b)
		}
		before := nb.mark()
		// Restarted, containerd makes its socket root:root 0660 again.
		ctd.Stop(t)
		ctd.Restart(t)
		nb.waitDown(lifecycle.SourceRuntime, 30*time.Second, "cri "+ctd.Endpoint+": ", "connect: permission denied")
		if err := os.Chmod(ctd.Socket, 0o666); err != nil {
			t.Fatal(err)
		}
		nb.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		nb.checkJournal(before, lifecycle.SourceRuntime)
	})
	t.Run("a runtime without GetContainerEvents", func(t *testing.T) {
		ep := startEventlessCRI(t, ctd.Socket)
		el := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ep, "--kubelet-url", k.ReadOnlyURL, "--upstream", "off")
		el.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		testenv.Eventually(t, "the agent saying it relists only", 30*time.Second, func() bool {
			return el.logged("runtime does not stream container events; relisting only") >= 1
		})
		before := el.mark()
		// A pod that runs and exits now is seen by relisting alone.
		var manifests map[string]string
		if err := yamlUnmarshal(e2ePods, &manifests); err != nil {
			t.Fatal(err)
		}
		oneshot := strings.NewReplacer("name: completed", "name: oneshot", `"exit 0"`, `"sleep 2; exit 3"`, "IMG", testenv.BusyboxImage).Replace(manifests["completed"])
		k.AddStaticPod(t, "oneshot", oneshot)
		var seen []string
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the one-shot pod's transitions: %s", strings.Join(seen, "; "))
			}
		})
		testenv.Eventually(t, "the one-shot container seen running, then exiting, in the runtime", 60*time.Second, func() bool {
			exited := false
			seen = nil
			for _, r := range el.history() {
				if strings.HasPrefix(r.Pod, "oneshot") {
					seen = append(seen, describe(r.Transition))
				}
				exited = exited || r.Pod == "oneshot-"+k.Name && r.Container == "job" && r.Source == lifecycle.SourceRuntime &&
					r.Kind == lifecycle.TransitionContainerState && r.From == string(lifecycle.RuntimeRunning) &&
					r.To == string(lifecycle.RuntimeExited) && r.ExitCode != nil && *r.ExitCode == 3
			}
			return exited
		})
		if n := el.logged(streamOpen); n != 0 {
			t.Errorf("the agent says it follows events %d times from a runtime without them", n)
		}
		el.checkJournalCycles(before, lifecycle.SourceRuntime, 0)
	})
}

// nobody is the uid and gid the permission-denied agent runs as.
const nobody = 65534

// asNobody returns a command that runs the podlife binary bin as nobody
// (setpriv execs it: the PID the test starts is the agent's own), and a
// journal path nobody can write.
func asNobody(t *testing.T, bin string) (wrapper, journalPath string) {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) runs the agent as nobody: %v", err)
	}
	dir, err := os.MkdirTemp("", "podlife-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	journalDir := filepath.Join(dir, "journal")
	if err := os.Mkdir(journalDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(journalDir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "podlife")
	wrapper = filepath.Join(dir, "podlife-as-nobody")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --reuid=%d --regid=%d --clear-groups %s \"$@\"\n", setpriv, nobody, nobody, own)
	for path, content := range map[string][]byte{own: b, wrapper: []byte(script)} {
		if err := os.WriteFile(path, content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, filepath.Join(journalDir, "journal.db")
}

// startEventlessCRI serves a CRI socket that passes every call through to
// the containerd at backend but answers GetContainerEvents Unimplemented, as
// runtimes without the event stream do. It stops at test end.
func startEventlessCRI(t *testing.T, backend string) string {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+backend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(passthroughCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		if method == runtimeapi.RuntimeService_GetContainerEvents_FullMethodName {
			return status.Error(codes.Unimplemented, "unknown method GetContainerEvents for service runtime.v1.RuntimeService")
		}
		var req, resp []byte // every other call is unary
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		if err := conn.Invoke(ss.Context(), method, &req, &resp, grpc.ForceCodecV2(passthroughCodec{})); err != nil {
			return err
		}
		return ss.SendMsg(&resp)
	}))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(); conn.Close() })
	return "unix://" + sock
}

// passthroughCodec carries messages as their undecoded bytes (*[]byte).
type passthroughCodec struct{}

func (passthroughCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (passthroughCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (passthroughCodec) Name() string { return "proto" }

// checkDelivered waits until the agent has delivered its whole journal
// upstream, then checks, after a fault of source: nothing dropped; every
// reportable transition the agent journaled (its history, numbered as the
// journal numbers them in a journal it started) is exactly one Event, every
// other none; what it had journaled before the fault is still recorded
// unchanged; and source went down and came back once since before.
func (a *faultAgent) checkDelivered(admin kubernetes.Interface, before mark, source string) {
	a.t.Helper()
	testenv.Eventually(a.t, "the whole journal delivered", 120*time.Second, func() bool {
		j := a.journal()
		return j.Stats.LastSeq > 0 && j.Stats.Delivered == j.Stats.LastSeq
	})
	j, hist := a.journal(), a.history()
	if j.Stats.Dropped != 0 || !j.Health.Up {
		a.t.Errorf("journal: dropped %d, up %v (%s)", j.Stats.Dropped, j.Health.Up, j.Health.Error)
	}
	if uint64(len(hist)) != j.Stats.LastSeq {
		a.t.Fatalf("%d transitions recorded, %d journaled: want the same", len(hist), j.Stats.LastSeq)
	}
	for i, r := range before.history {
		if i >= len(hist) || hist[i].Seq != r.Seq || !sameTransition(hist[i].Transition, r.Transition) {
			a.t.Errorf("recorded before the fault, lost or changed: seq %d %s", r.Seq, describe(r.Transition))
		}
	}
	l, err := admin.EventsV1().Events("").List(context.Background(), metav1.ListOptions{LabelSelector: "podlife.dev/seq"})
	if err != nil {
		a.t.Fatal(err)
	}
	events := map[string]int{}
	for _, e := range l.Items {
		events[e.Labels["podlife.dev/seq"]]++
	}
	var downs, ups, reported int
	for _, r := range hist {
		n, want := events[fmt.Sprint(r.Seq)], 0
		if upstream.Reportable(r.Transition) {
			want = 1
			reported++
		}
		if n != want {
			a.t.Errorf("seq %d %s: %d Events, want %d", r.Seq, describe(r.Transition), n, want)
		}
		if r.Seq > uint64(len(before.history)) && r.Source == source {
			switch r.Kind {
			case lifecycle.TransitionSourceDown:
				downs++
			case lifecycle.TransitionSourceUp:
				ups++
			}
		}
	}
	if downs != 1 || ups != 1 {
		a.t.Errorf("since the fault: %d SourceDown and %d SourceUp of %s, want 1 and 1", downs, ups, source)
	}
	a.t.Logf("%d transitions journaled, %d delivered as one Event each", len(hist), reported)
}

// TestAPIServerFaults: the API server rows of the fault table, in the
// one-node cluster, with the agent reporting upstream through a link of its
// own. The API server runs without its watch cache and compacts etcd every
// 2 s: a watch the agent resumes after a few seconds' partition then meets
// 410 Gone from etcd, as it would after a partition longer than the default
// 5-minute compaction. (With the watch cache, a watch resumed within its
// window of about 75 s is served from memory and never sees 410.)
func TestAPIServerFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster): not in -short")
	}
	bin := buildPodlife(t)
	c := testenv.StartCluster(t, testenv.ClusterOptions{APIServerArgs: []string{"--watch-cache=false", "--etcd-compaction-interval=2s"}})
	admin, ctx := c.Client(t), context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	const ns = "faults"
	c.CreateNamespace(t, ns)
	// The agent reads the kubelet with a service-account token of its own
	// user, so that revoking its static token leaves the kubelet's reviews
	// of the other alone.
	if _, err := admin.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "podlife"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts("kube-system").CreateToken(ctx, "podlife", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeletToken := filepath.Join(t.TempDir(), "token")
	writeFile(t, kubeletToken, tr.Status.Token)
	link := c.NewLink(t)
	ag := startFaultAgent(t, bin, "--node-name", c.NodeName, "--cri-endpoint", c.Containerd.Endpoint,
		"--kubelet-url", c.KubeletURL, "--kubelet-token-file", kubeletToken,
		"--kubelet-ca-file", c.API.CAFile, "--kubelet-serving-cert-file", c.KubeletServingCertFile,
		"--upstream", "on", "--kubeconfig", link.Kubeconfig(t, testenv.AgentToken), "--event-burst", "1000")
	createPod := func(name string, command ...string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{HostNetwork: true,
			Containers: []corev1.Container{{Name: "app", Image: testenv.BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: command}}}}
		if _, err := admin.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// seen reports whether the agent shows the pod, and whether with the
	// API server's copy of it (its watch of the pods bound to the node).
	seen := func(name string) (shown, withAPIServer bool) {
		r, _ := ag.pods()
		for _, p := range r.Pods {
			if p.Namespace == ns && p.Name == name {
				return true, p.APIServer != nil
			}
		}
		return false, false
	}
	createPod("serving", "sleep", "3600")
	createPod("crashloop", "sh", "-c", "sleep 1; exit 7")
	testenv.Eventually(t, "the pods shown with the API server's copy", 120*time.Second, func() bool {
		_, a := seen("serving")
		_, b := seen("crashloop")
		return a && b
	})
	testenv.Eventually(t, "Events delivered", 60*time.Second, func() bool { return ag.journal().Stats.Delivered > 0 })
	selector := "spec.nodeName=" + c.NodeName

	t.Run("watch 410 Gone: the agent relists", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		link.Cut()
		// Nothing after this version reaches the agent: its watches resume
		// from it or earlier.
		l, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			t.Fatal(err)
		}
		cutAt := l.ResourceVersion
		ag.waitDown(lifecycle.SourceAPIServer, 30*time.Second, "apiserver: ")
		createPod("born-in-cut", "sleep", "3600")
		testenv.Eventually(t, "the new pod shown from the kubelet and runtime alone", 90*time.Second, func() bool {
			shown, api := seen("born-in-cut")
			return shown && !api
		})
		testenv.Eventually(t, "etcd compacted past the partition: a watch from "+cutAt+" answers 410", 60*time.Second, func() bool {
			return watchExpired(admin, selector, cutAt)
		})
		link.Heal()
		ag.waitUp(lifecycle.SourceAPIServer, 60*time.Second)
		testenv.Eventually(t, "the new pod's API server copy, from the relist", 60*time.Second, func() bool {
			_, api := seen("born-in-cut")
			return api
		})
		ag.checkDelivered(admin, before, lifecycle.SourceAPIServer)
	})
	t.Run("serving certificate renewed, same CA: the agent reconnects", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		old := servedSerial(t, c.API)
		c.API.Stop()
		ag.waitDown(lifecycle.SourceAPIServer, 30*time.Second, "apiserver: ")
		serial := c.API.RenewServingCert(t)
		c.API.Start()
		if got := servedSerial(t, c.API); got != serial || got == old {
			t.Fatalf("the API server serves certificate serial %s, want the new %s (was %s)", got, serial, old)
		}
		ag.waitUp(lifecycle.SourceAPIServer, 60*time.Second)
		ag.checkDelivered(admin, before, lifecycle.SourceAPIServer)
	})
	t.Run("the agent's token revoked, then restored", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		delivered := ag.journal().Stats.Delivered
		c.API.Stop()
		c.API.SetTokenAccepted(t, testenv.AgentToken, false)
		c.API.Start()
		ag.waitDown(lifecycle.SourceAPIServer, 60*time.Second, "apiserver: 401 Unauthorized: the API server does not accept podlife's credentials")
		// A pod that crashes now: its transitions wait in the journal.
		createPod("crash-while-revoked", "sh", "-c", "sleep 1; exit 9")
		testenv.Eventually(t, "the new pod's crash journaled, not delivered", 90*time.Second, func() bool {
			for _, e := range ag.journal().Pending {
				if e.Seq > delivered && e.Transition.Pod == "crash-while-revoked" && upstream.Reportable(e.Transition) {
					return true
				}
			}
			return false
		})
		c.API.Stop()
		c.API.SetTokenAccepted(t, testenv.AgentToken, true)
		c.API.Start()
		ag.waitUp(lifecycle.SourceAPIServer, 60*time.Second)
		ag.checkDelivered(admin, before, lifecycle.SourceAPIServer)
	})
}

// watchExpired reports whether a watch of the pods matching selector from
// resourceVersion is refused as expired (410 Gone).
func watchExpired(admin kubernetes.Interface, selector, resourceVersion string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	w, err := admin.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: resourceVersion})
	if err != nil {
		return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
	}
	defer w.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false
			}
			if ev.Type == watch.Error {
				err := apierrors.FromObject(ev.Object)
				return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
			}
		case <-ctx.Done():
			return false
		}
	}
}

// servedSerial is the serial number of the certificate the API server
// presents, verified with its CA.
func servedSerial(t *testing.T, api *testenv.APIServer) string {
	t.Helper()
	ca, err := os.ReadFile(api.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(api.URL, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("the API server's certificate: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
