package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/lifecycle"
)

// buildPodlife builds the real binary once per test.
func buildPodlife(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "podlife")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestCLIExitCodes(t *testing.T) {
	bin := buildPodlife(t)
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"agent", "--poll-interval", "1ms", "--node-name", "n"}, 2, "podlife: config: poll-interval: 1ms: must be at least 10ms\n"},
		{[]string{"agent", "--cri-endpoint", "tcp://x", "--node-name", "n"}, 2, `podlife: config: cri-endpoint: cri-endpoint "tcp://x": want unix:///path/to/socket` + "\n"},
		{[]string{"agent", "--no-such-flag"}, 2, "podlife: config: flags: unknown flag: --no-such-flag\n"},
		{[]string{"agent", "--check-config", "--node-name", "n", "--insecure-listen-address", "127.0.0.1:9809"}, 0, ""},
		{[]string{"agent", "--check-config", "--node-name", "n"}, 2, `podlife: config: secure-listen-address: ":9808" needs an API server to review callers`},
		{[]string{"pods", "--server", "http://127.0.0.1:1", "--token", "t"}, 2, "podlife: usage: a token for http://127.0.0.1:1: it would travel in clear"},
		{[]string{"bogus"}, 2, "podlife: unknown command \"bogus\" (see 'podlife help')\n"},
		{[]string{"pods", "--server", "http://127.0.0.1:1"}, 1, "podlife: cannot reach the podlife agent at http://127.0.0.1:1"},
		{[]string{"version"}, 0, ""},
		{[]string{"pods", "--kubeconfig", "/k"}, 2, "podlife: usage: --kubeconfig goes with --node NODE\n"},
		{[]string{"pods", "--node", "n", "--server", "https://x:9808"}, 2, "podlife: usage: --server and --node: give one\n"},
		{[]string{"pods", "--node", "n", "--direct"}, 2, "podlife: usage: --direct reads this node, --node another through the API server: give one\n"},
		{[]string{"pods", "--node", "n", "--kubeconfig", "/nonexistent"}, 1, "podlife: kubeconfig: stat /nonexistent: no such file or directory\n"},
		// Named kubectl-podlife, it is the kubectl plugin.
		{[]string{"kubectl-podlife", "pods"}, 2, "kubectl podlife pods: --node NODE: which node's agent (see 'kubectl podlife help')\n"},
		{[]string{"kubectl-podlife", "agent"}, 2, "kubectl podlife: unknown command \"agent\" (see 'kubectl podlife help')\n"},
		{[]string{"kubectl-podlife", "help"}, 0, ""},
	}
	plugin := filepath.Join(filepath.Dir(bin), "kubectl-podlife")
	if err := os.Symlink(bin, plugin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		cmd := exec.Command(bin, tc.args...)
		if tc.args[0] == "kubectl-podlife" {
			cmd = exec.Command(plugin, tc.args[1:]...)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.HasPrefix(stderr.String(), tc.stderr) || strings.Count(stderr.String(), "\n") > 1 {
			t.Errorf("podlife %s: exit %d, stderr %q; want %d, %q", strings.Join(tc.args, " "), code, stderr.String(), tc.code, tc.stderr)
		}
	}
	// --help prints the command's flags and succeeds, for every command.
	for _, name := range []string{"agent", "demo", "pods", "describe", "watch", "journal", "simnode"} {
		out, err := exec.Command(bin, name, "--help").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "Usage of "+name+":") {
			t.Errorf("podlife %s --help: %v, output %q", name, err, testenv.Tail(string(out), 300))
		}
	}
}

// e2ePods are the static pods of the end-to-end tests, in namespace e2e:
// testenv's shared manifests (serving, crashloop, ghost, completed), each
// named after its manifest.
var e2ePods = []string{"serving", "crashloop", "ghost", "completed"}

// e2ePod returns the manifest of the e2e pod name (one of e2ePods).
func e2ePod(t testing.TB, name string) string { return testenv.PodManifest(t, name, name, "e2e") }

// listenLine starts the line on which the agent reports its bound address.
const listenLine = "podlife agent listening on "

// agentProc is a podlife agent process a test started.
type agentProc struct {
	*exec.Cmd
	URL  string        // its plain HTTP API, as the agent reported it
	urls chan string   // the other addresses it reported (its secure one)
	done chan struct{} // closed when it has exited; err is then Wait's error
	err  error
}

// secureURL waits for the agent's secure address (https://), which it
// reports after the plain one where it has an API server to review callers.
func (p *agentProc) secureURL(t testing.TB) string {
	t.Helper()
	select {
	case u := <-p.urls:
		return u
	case <-p.done:
	case <-time.After(30 * time.Second):
	}
	t.Fatalf("the agent reported no secure address (exit: %v)", p.err)
	return ""
}

// wait waits for the agent to exit and returns Wait's error.
func (p *agentProc) wait() error { <-p.done; return p.err }

// startAgent starts `podlife agent` (bin) with args and --insecure-listen-address
// 127.0.0.1:0 (and --secure-listen-address 127.0.0.1:0 unless args set it),
// its output appended to logPath, and waits until it reports the plain
// address it bound: the agent takes the port itself, so no other process can
// take it between a test choosing it and the agent binding it. Cleanup kills
// it.
func startAgent(t testing.TB, bin, logPath string, args ...string) *agentProc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 2)
	args = append(append([]string{"agent"}, args...), "--insecure-listen-address", "127.0.0.1:0")
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--secure-listen-address") }) {
		args = append(args, "--secure-listen-address", "127.0.0.1:0")
	}
	p := &agentProc{Cmd: exec.Command(bin, args...), urls: found, done: make(chan struct{})}
	p.Stdout, p.Stderr = &addrWatcher{w: logf, found: found}, logf
	p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Start(); err != nil {
		logf.Close()
		t.Fatalf("start agent: %v", err)
	}
	go func() { p.err = p.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() { p.Process.Kill(); <-p.done })
	select {
	case p.URL = <-found:
		return p
	case <-p.done:
	case <-time.After(30 * time.Second):
	}
	b, _ := os.ReadFile(logPath)
	t.Fatalf("the agent reported no listening address (exit: %v); log tail:\n%s", p.err, testenv.Tail(string(b), 3000))
	return nil
}

// addrWatcher passes the agent's output on to w and sends the address of
// each listenLine to found (a buffer of two: the plain and the secure one).
type addrWatcher struct {
	w     io.Writer
	line  []byte
	found chan<- string
}

func (a *addrWatcher) Write(b []byte) (int, error) {
	if a.found != nil {
		a.line = append(a.line, b...)
		for {
			i := bytes.IndexByte(a.line, '\n')
			if i < 0 {
				if len(a.line) > 64<<10 { // not the line looked for
					a.line = nil
				}
				break
			}
			if url, ok := strings.CutPrefix(string(a.line[:i]), listenLine); ok {
				select {
				case a.found <- url:
				default: // nobody waits for more
				}
				if strings.HasPrefix(url, "https://") { // the last one
					a.found, a.line = nil, nil
					break
				}
			}
			a.line = a.line[i+1:]
		}
	}
	return a.w.Write(b)
}

// TestAgentEndToEnd runs the real podlife binary against a real containerd
// and a real kubelet and checks the API, the metrics and the CLI.
func TestAgentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (containerd, kubelet): not in -short")
	}
	bin := buildPodlife(t)
	ctd := testenv.StartContainerd(t)
	ctd.ImportImages(t)
	k := testenv.StartKubelet(t, ctd, "podlife-e2e")
	for _, name := range e2ePods {
		k.AddStaticPod(t, name, e2ePod(t, name))
	}
	journalPath := filepath.Join(t.TempDir(), "journal.db")
	logPath := filepath.Join(t.TempDir(), "agent.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 3000))
		}
	})
	ag := startAgent(t, bin, logPath, "--node-name", "podlife-e2e", "--cri-endpoint", ctd.Endpoint,
		"--kubelet-url", k.ReadOnlyURL, "--poll-interval", "500ms", "--upstream", "off",
		"--journal-path", journalPath, "--stuck-threshold", "0")
	server := ag.URL

	getJSON := func(path string, v any) int { return getJSONFrom(server+path, v) }
	want := map[string]lifecycle.Stage{"serving": lifecycle.StageServing, "crashloop": lifecycle.StageFailing,
		"ghost": lifecycle.StageFailing, "completed": lifecycle.StageTerminated}
	stages := func() (map[string]lifecycle.PodView, string) {
		var r agent.PodsResponse
		getJSON("/api/v1/pods", &r)
		got := map[string]lifecycle.PodView{}
		var bad []string
		for _, p := range r.Pods {
			got[strings.TrimSuffix(p.Name, "-podlife-e2e")] = *p
		}
		for name, st := range want {
			if p, ok := got[name]; !ok || p.Stage != st {
				bad = append(bad, fmt.Sprintf("%s=%s(%s)", name, p.Stage, p.StageReason))
			}
		}
		return got, strings.Join(bad, " ")
	}
	testenv.Eventually(t, "every pod in its stage, the crash loop restarted", 120*time.Second, func() bool {
		got, bad := stages()
		c := got["crashloop"]
		return bad == "" && c.Restarts() >= 1
	})
	if code := getJSON("/readyz", nil); code != 200 {
		t.Fatalf("readyz %d", code)
	}

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(server + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := string(b)
		// The default mode (--pod-metrics=podlife): the stage, and the
		// crash loop's restarts and exit while it loops; no family that
		// kube-state-metrics exports too.
		for _, want := range [][]string{
			{"podlife_pod_stage{", `pod="crashloop-podlife-e2e"`, `stage="Failing"`, `} 1`},
			{"podlife_pod_stage{", `pod="ghost-podlife-e2e"`, `stage="Failing"`, `} 1`},
			{`podlife_source_up{source="runtime"} 1`}, {`podlife_source_up{source="kubelet"} 1`},
			{"podlife_container_crash_loop_restarts{", `pod="crashloop-podlife-e2e"`, `container="app"`},
			{"podlife_container_crash_loop_exit_code{", `pod="crashloop-podlife-e2e"`, `container="app"`, `reason="Error"`, `} 7`},
		} {
			if !hasLine(m, want...) {
				t.Errorf("/metrics has no line with %q", want)
			}
		}
		for _, ksm := range []string{"podlife_pod_phase{", "podlife_container_waiting_reason{", "podlife_container_last_exit_code{"} {
			if hasLine(m, ksm) {
				t.Errorf("/metrics has %s series in the default mode", ksm)
			}
		}
	})
	t.Run("CLI", func(t *testing.T) {
		out, err := exec.Command(bin, "pods", "--server", server).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		table := string(out)
		for _, row := range []string{"NAMESPACE  NAME", "serving-podlife-e2e", "Serving", "crashloop-podlife-e2e", "Failing", "ghost-podlife-e2e"} {
			if !strings.Contains(table, row) {
				t.Errorf("pods table lacks %q:\n%s", row, table)
			}
		}
		out, err = exec.Command(bin, "describe", "e2e/crashloop-podlife-e2e", "--server", server).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Stage:         Failing") || !strings.Contains(string(out), "EXITED") {
			t.Fatalf("describe: %v\n%s", err, out)
		}
		out, err = exec.Command(bin, "pods", "-o", "json", "--direct", "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL).CombinedOutput()
		var direct agent.PodsResponse
		if err != nil || json.Unmarshal(out, &direct) != nil || len(direct.Pods) != 4 {
			t.Fatalf("pods --direct: %v\n%s", err, out)
		}
	})
	t.Run("runtime killed: the agent keeps serving and says why", func(t *testing.T) {
		ctd.Kill(t)
		testenv.Eventually(t, "runtime-unreachable", 20*time.Second, func() bool {
			got, _ := stages()
			p := got["serving"]
			return p.Stage == lifecycle.StageUnknown && p.UnknownCause == lifecycle.CauseRuntimeUnreachable
		})
		ctd.Restart(t)
		testenv.Eventually(t, "recovery", 30*time.Second, func() bool {
			got, _ := stages()
			return got["serving"].Stage == lifecycle.StageServing
		})
		// The snapshot is served before its transitions are recorded: wait
		// for the record, not for the stage alone.
		testenv.EventuallyState(t, "SourceDown:runtime then SourceUp:runtime in /api/v1/transitions", 10*time.Second, func() (bool, any) {
			var recs []agent.Record
			getJSON("/api/v1/transitions", &recs)
			var kinds []string
			for _, r := range recs {
				if r.Kind == lifecycle.TransitionSourceDown || r.Kind == lifecycle.TransitionSourceUp {
					kinds = append(kinds, string(r.Kind)+":"+r.Source)
				}
			}
			return strings.Contains(strings.Join(kinds, " "), "SourceDown:runtime SourceUp:runtime"), kinds
		})
	})
	t.Run("SIGTERM: graceful exit, journal readable", func(t *testing.T) {
		ag.Process.Signal(syscall.SIGTERM)
		select {
		case <-ag.done:
			if ag.err != nil {
				t.Fatalf("agent exit: %v", ag.err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("agent did not stop on SIGTERM")
		}
		out, err := exec.Command(bin, "journal", "--journal-path", journalPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "pending") || !strings.Contains(string(out), "PodAdded e2e/serving-podlife-e2e") {
			t.Fatalf("journal: %v\n%s", err, out)
		}
	})
}

// hasLine reports whether one line of text contains every part.
// eventSeqs are the journal sequences a podlife Event stands for: its
// podlife.dev/seqs annotation (the entry that created it and the repeats
// folded into its series), else its podlife.dev/seq label.
func eventSeqs(t testing.TB, ev eventsv1.Event) []string {
	t.Helper()
	a, ok := ev.Annotations[upstream.AnnotationSeqs]
	if !ok {
		return []string{ev.Labels["podlife.dev/seq"]}
	}
	seqs, err := upstream.ParseSeqRanges(a)
	if err != nil {
		t.Fatalf("Event %s: %v", ev.Name, err)
	}
	out := make([]string, len(seqs))
	for i, q := range seqs {
		out[i] = fmt.Sprint(q)
	}
	return out
}

func hasLine(text string, parts ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}
