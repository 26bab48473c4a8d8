package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// promConfig is the test's Prometheus: a static scrape of the agent's
// secure listener as deploy/monitoring's ServiceMonitor does it (HTTPS,
// honor_labels, the podlife-scraper ServiceAccount's token, the node label),
// and the alerts of deploy/monitoring/prometheusrule.yaml. Intervals of 1s.
const promConfig = `global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{{rules}}]
scrape_configs:
- job_name: podlife
  honor_labels: true
  scheme: https
  tls_config: {insecure_skip_verify: true}
  authorization: {credentials_file: {{token}}}
  static_configs:
  - targets: ['{{target}}']
    labels: {node: {{node}}}
`

// prometheus is a Prometheus server a test started.
type prometheus struct {
	url string
	log string
}

// startPrometheus runs prometheus (built by make tools) with config on a
// loopback port, stopped by PID at cleanup, and waits until it is ready.
// Prometheus cannot report a port it chose, so the test picks a free one;
// should another process take it first, Prometheus exits and the test
// tries another.
func startPrometheus(t *testing.T, dir, config string) *prometheus {
	t.Helper()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{log: filepath.Join(dir, "prometheus.log")}
	for attempt := 0; attempt < 3; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.LoopbackPort(t))
		p.url = "http://" + addr
		logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testenv.Bin(t, "prometheus"), "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if resp, err := http.Get(p.url + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					t.Cleanup(func() {
						if t.Failed() {
							b, _ := os.ReadFile(p.log)
							t.Logf("prometheus log tail:\n%s", testenv.Tail(string(b), 4000))
						}
					})
					return p
				}
			}
		}
	}
	b, _ := os.ReadFile(p.log)
	t.Fatalf("prometheus did not become ready; log tail:\n%s", testenv.Tail(string(b), 4000))
	return nil
}

// promSample is one element of an instant query's vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query; an error for a failed query.
func (p *prometheus) query(q string) ([]promSample, error) {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	var out []promSample
	if r.Data.ResultType == "vector" {
		if err := json.Unmarshal(r.Data.Result, &out); err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
	}
	return out, nil
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
}

func (p *prometheus) alerts() ([]promAlert, error) {
	resp, err := http.Get(p.url + "/api/v1/alerts")
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return r.Data.Alerts, nil
}

// rulesFromPrometheusRule writes the spec of deploy/monitoring's
// PrometheusRule as a Prometheus rule file: the rules the operator would load.
func rulesFromPrometheusRule(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string         `json:"kind"`
		Spec map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &pr); err != nil || pr.Kind != "PrometheusRule" {
		t.Fatalf("prometheusrule.yaml: kind %q, %v", pr.Kind, err)
	}
	out, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "podlife.rules.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// scraperToken applies deploy/monitoring/scraper.yaml (the ServiceAccount
// Prometheus scrapes as, bound to podlife-reader, and its token Secret) and
// waits for the token controller to fill the Secret in.
func scraperToken(t *testing.T, c *testenv.Cluster) string {
	t.Helper()
	c.CreateNamespace(t, "podlife")
	kubect, err := exec.LookPath("kubectl")
	if err != nil {
		kubect = testenv.Bin(t, "kubectl")
	}
	for _, f := range []string{filepath.Join("deploy", "reader-rbac.yaml"), filepath.Join("deploy", "monitoring", "scraper.yaml")} {
		out, err := exec.Command(kubect, "--kubeconfig", c.AdminKubeconfig, "apply", "-f", filepath.Join(testenv.RepoRoot(), f)).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply -f %s: %v\n%s", f, err, out)
		}
	}
	var token string
	admin := c.Client(t)
	testenv.Eventually(t, "the podlife-scraper-token Secret filled in by the token controller", 60*time.Second, func() bool {
		s, err := admin.CoreV1().Secrets("podlife").Get(context.Background(), "podlife-scraper-token", metav1.GetOptions{})
		if err == nil {
			token = string(s.Data["token"])
		}
		return token != ""
	})
	return token
}

// TestAlertsInCluster: a real Prometheus scrapes a podlife agent on a real
// one-node cluster, as deploy/monitoring's ServiceMonitor does (HTTPS, the
// podlife-scraper token, which the agent has the API server review), with
// deploy/monitoring's alerts loaded. A crash-looping pod created through the
// API server makes PodlifeContainerCrashLooping fire; the test logs the time
// from the container's first crash to the alert firing. The agent's live
// /metrics passes promtool check metrics, and every query of the Grafana
// dashboard evaluates.
func TestAlertsInCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster, prometheus, promtool): not in -short")
	}
	testStart := time.Now()
	bin := buildPodlife(t)
	dir := t.TempDir()
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	admin := c.Client(t)
	ctx := context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	c.CreateNamespace(t, "alerts")
	token := scraperToken(t, c)
	tokenFile := filepath.Join(dir, "scraper-token")
	agentTokenFile := filepath.Join(dir, "agent-token")
	for f, v := range map[string]string{tokenFile: token, agentTokenFile: testenv.AgentToken} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The agent, as on a node: the real containerd, the kubelet over HTTPS
	// with its pinned certificate, the API server through a link of its own,
	// and its secure listener on 127.0.0.1 for Prometheus.
	link := c.NewLink(t)
	ag := startAgent(t, bin, filepath.Join(dir, "agent.log"), "--node-name", c.NodeName,
		"--cri-endpoint", c.Containerd.Endpoint, "--kubelet-url", c.KubeletURL, "--kubelet-token-file", agentTokenFile,
		"--kubelet-serving-cert-file", c.KubeletServingCertFile, "--poll-interval", "1s", "--upstream", "on",
		"--kubeconfig", link.Kubeconfig(t, testenv.AgentToken), "--journal-path", filepath.Join(dir, "journal.db"),
		"--apiserver-probe-interval", "2s", "--delivery-jitter", "0")
	secure := ag.secureURL(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
			t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 5000))
		}
	})
	testenv.Eventually(t, "agent ready", 60*time.Second, func() bool { return getJSONFrom(ag.URL+"/readyz", &struct{}{}) == 200 })

	t.Run("live /metrics over HTTPS with the scraper's token passes promtool check metrics", func(t *testing.T) {
		checkLiveMetrics(t, secure, token)
	})

	prom := startPrometheus(t, dir, strings.NewReplacer("{{rules}}", rulesFromPrometheusRule(t, dir), "{{token}}", tokenFile,
		"{{target}}", strings.TrimPrefix(secure, "https://"), "{{node}}", c.NodeName).Replace(promConfig))
	testenv.Eventually(t, "Prometheus scraping the agent (up == 1, its sources up)", 60*time.Second, func() bool {
		up, err := prom.query(`up{job="podlife", node="` + c.NodeName + `"} == 1`)
		src, err2 := prom.query(`podlife_source_up{job="podlife"} == 1`)
		return err == nil && err2 == nil && len(up) == 1 && len(src) >= 3
	})

	// The crash loop: the container runs 1s and exits 7, over and over.
	crashStart := time.Now()
	pod := testenv.Pod(t, "crashloop", "crashloop", "alerts")
	if _, err := admin.CoreV1().Pods("alerts").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var firing promAlert
	var seen time.Time
	testenv.Eventually(t, "PodlifeContainerCrashLooping firing for alerts/crashloop", 5*time.Minute, func() bool {
		alerts, err := prom.alerts()
		if err != nil {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "PodlifeContainerCrashLooping" && a.Labels["pod"] == "crashloop" && a.State == "firing" {
				firing, seen = a, time.Now()
				return true
			}
		}
		return false
	})
	firstCrash, restarts := crashTimes(t, ag.URL)
	if firstCrash.IsZero() {
		t.Fatal("the agent recorded no termination of alerts/crashloop's container")
	}
	t.Logf("alert: %v\n  %s", firing.Labels, firing.Annotations["description"])
	for k, want := range map[string]string{"namespace": "alerts", "container": "app", "last_reason": "Error", "node": c.NodeName, "severity": "warning"} {
		if firing.Labels[k] != want {
			t.Errorf("alert label %s = %q, want %q", k, firing.Labels[k], want)
		}
	}
	if !strings.Contains(firing.Annotations["description"], "exit code 7") {
		t.Errorf("description %q lacks the exit code", firing.Annotations["description"])
	}
	var afterSecond time.Duration
	if len(restarts) >= 2 {
		afterSecond = seen.Sub(restarts[1])
	}
	t.Logf("crash loop alert latency: pod created %s; first crash %s; exits before each restart %v; pending since %s; "+
		"firing seen %s after the first crash (%s after the second restart; `for: 1m`; the kubernetes-mixin's KubePodCrashLooping: 15m)",
		crashStart.Format("15:04:05.000"), firstCrash.Format("15:04:05.000"), formatTimes(restarts),
		firing.ActiveAt.Local().Format("15:04:05.000"), seen.Sub(firstCrash).Round(100*time.Millisecond),
		afterSecond.Round(100*time.Millisecond))

	t.Run("every dashboard query evaluates; the main panels have data", func(t *testing.T) { checkDashboardQueries(t, prom, c.NodeName) })

	alerts, _ := prom.alerts()
	var states []string
	for _, a := range alerts {
		states = append(states, a.Labels["alertname"]+"/"+a.State+" "+a.Labels["source"]+a.Labels["pod"]+" "+a.Labels["kind"])
	}
	sort.Strings(states)
	t.Logf("alerts at the end: %v", states)
	for _, a := range alerts {
		// The crash loop is one alert, not one per symptom; the sources stay up.
		if a.Labels["alertname"] != "PodlifeContainerCrashLooping" && (a.Labels["pod"] == "crashloop" ||
			a.Labels["alertname"] == "PodlifeSourceDown" || a.Labels["alertname"] == "PodlifeDown") {
			t.Errorf("unexpected alert (%s) %v", a.State, a.Labels)
		}
	}
	t.Logf("TestAlertsInCluster: %s", time.Since(testStart).Round(time.Second))
}

// crashTimes reads the agent's transitions of alerts/crashloop: when its
// container first terminated (as the runtime tells) and when it restarted.
func crashTimes(t *testing.T, server string) (time.Time, []time.Time) {
	t.Helper()
	var recs []agent.Record
	if code := getJSONFrom(server+"/api/v1/transitions", &recs); code != 200 {
		t.Fatalf("transitions: HTTP %d", code)
	}
	var first time.Time
	var restarts []time.Time
	for _, r := range recs {
		if r.Namespace != "alerts" || r.Pod != "crashloop" {
			continue
		}
		at := r.HappenedAt
		if at.IsZero() {
			at = r.ObservedAt
		}
		switch {
		case r.Kind == lifecycle.TransitionContainerState && first.IsZero() &&
			(r.To == string(lifecycle.RuntimeExited) || strings.HasPrefix(r.To, string(lifecycle.StateTerminated))):
			first = at
		case r.Kind == lifecycle.TransitionContainerRestarted:
			restarts = append(restarts, at)
		}
	}
	if first.IsZero() && len(restarts) > 0 { // the exit folded into the restart
		first = restarts[0]
	}
	return first, restarts
}

func formatTimes(ts []time.Time) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Format("15:04:05.000"))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// checkLiveMetrics scrapes the agent's secure /metrics with token and runs
// promtool check metrics on it (metric and label names, HELP and TYPE,
// counters' _total, units).
func checkLiveMetrics(t *testing.T, secure, token string) {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", secure+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s/metrics: %v", secure, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: HTTP %d, want 401", code)
	}
	code, body := get(token)
	if code != 200 || !strings.Contains(body, `podlife_source_up{source="kubelet"} 1`) {
		t.Fatalf("/metrics with the scraper's token: HTTP %d\n%s", code, testenv.Tail(body, 2000))
	}
	cmd := exec.Command(testenv.Bin(t, "promtool"), "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	t.Logf("promtool check metrics: %d bytes, %d series: ok %s", len(body), strings.Count(body, "\n")-strings.Count(body, "\n#"), out)
}

// grafanaVars are the dashboard's variables, expanded as Grafana would.
var grafanaVars = regexp.MustCompile(`\$\{?(__[a-z_]+|node)\}?`)

// checkDashboardQueries evaluates every query of the Grafana dashboard
// against the Prometheus that scrapes the agent: each must evaluate, and
// the panels the dashboard is for must have data.
func checkDashboardQueries(t *testing.T, prom *prometheus, node string) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "deploy", "monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	mustHaveData := map[string]bool{"Pods by stage": true, "Nodes by stage": true, "Sources up": true, "Crash loops": true,
		"Transitions by kind": true, "Restarts (top 10 containers)": true, "Agents up": true, "Journal pending": true}
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			q := grafanaVars.ReplaceAllStringFunc(tg.Expr, func(v string) string {
				if strings.Contains(v, "node") {
					return node
				}
				return "1m"
			})
			res, err := prom.query(q)
			n++
			if err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
				continue
			}
			if mustHaveData[p.Title] && len(res) == 0 {
				t.Errorf("panel %q: no data for %s", p.Title, q)
			}
		}
	}
	t.Logf("%d dashboard queries evaluated", n)
}
