package monitoring

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podlife/podlife/internal/testenv"
)

// startProcess starts bin with args, stopped by PID at cleanup, and returns
// its stdout lines.
func startProcess(t *testing.T, bin string, args ...string) <-chan string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s %s stderr:\n%s", filepath.Base(bin), args[0], stderr.String())
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// line waits for a line starting with prefix and returns the rest.
func line(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the process exited before printing %q", prefix)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return rest
			}
		case <-timeout:
			t.Fatalf("no line %q within 60s", prefix)
		}
	}
}

// TestLiveMetrics runs the agent against a simulated node (podlife
// simnode, as hack/loadharness does), with a journal, and checks its live
// /metrics: promtool check metrics passes, and every metric the alerts and
// the dashboard name, as staticExported derives them, is there (but those
// only an agent with upstream reporting or a TLS kubelet exports, or a pod
// whose views disagree: a family without series is not written).
func TestLiveMetrics(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "podlife")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(testenv.RepoRoot(), "cmd", "podlife")).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sim := startProcess(t, bin, "simnode", "--pods", "20", "--churn", "2", "--script", "--dir", dir)
	cri := line(t, sim, "cri-endpoint=")
	kubelet := line(t, sim, "kubelet-url=")
	agentOut := startProcess(t, bin, "agent", "--node-name", "sim", "--cri-endpoint", cri, "--kubelet-url", kubelet,
		"--upstream", "off", "--journal-path", filepath.Join(dir, "journal.db"), "--poll-interval", "1s",
		"--secure-listen-address", "", "--insecure-listen-address", "127.0.0.1:0", "--log-level", "error")
	server := line(t, agentOut, "podlife agent listening on ")

	var body string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if resp, err := http.Get(server + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			// Pods by stage, the script's crash loop, a transition counted.
			if strings.Contains(body, "podlife_pod_stage{") && strings.Contains(body, "podlife_container_crash_loop_restarts{") &&
				strings.Contains(body, "podlife_pod_startup_duration_seconds_bucket") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pod series in /metrics within 60s:\n%s", body)
		}
	}
	cmd := exec.Command(testenv.Bin(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	live := parseExposition(body)
	static, err := staticExported()
	if err != nil {
		t.Fatal(err)
	}
	onlyWith := map[string]string{
		"podlife_upstream_events_total":         "--upstream",
		"podlife_upstream_event_failures_total": "--upstream",
		"podlife_kubelet_tls_verified":          "a kubelet over TLS",
		"podlife_view_mismatches":               "views that disagree",
	}
	// The agent runs in the default mode: the families only
	// --pod-metrics=ksm-compatible adds are not in its /metrics.
	def, err := goldenExported("metrics.golden")
	if err != nil {
		t.Fatal(err)
	}
	ksm, err := goldenExported("metrics-ksm.golden")
	if err != nil {
		t.Fatal(err)
	}
	for n := range ksm {
		if !def.has(n) {
			onlyWith[n] = "--pod-metrics=ksm-compatible"
		}
	}
	qs := append(ruleQueries(t), dashboardQueries(t, readDashboard(t))...)
	for _, q := range qs {
		names, _ := metricNames(q.expr)
		for _, n := range names {
			if !static.has(n) || live.has(n) || onlyWith[strings.TrimSuffix(n, "_bucket")] != "" {
				continue
			}
			t.Errorf("%s names %s: derived as exported, but not in a live agent's /metrics", q.where, n)
		}
	}
	t.Logf("live /metrics: %d families, %d bytes; promtool check metrics passed", len(live), len(body))
}
