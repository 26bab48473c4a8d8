package monitoring

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/podlife/podlife/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the generated copies of podlife.rules.yaml and grafana-dashboard.json")

const (
	rulesFile     = "podlife.rules.yaml"
	ruleTestsFile = "tests/podlife.rules.test.yaml"
	dashboardFile = "grafana-dashboard.json"
)

// Metrics the queries may name that podlife does not export: Prometheus'
// own up{job="podlife"}, and kube-state-metrics' kube_node_info (for
// PodlifeAbsentFromNode; see podlife.rules.yaml).
var (
	rulesForeign     = []string{"up", "kube_node_info"}
	dashboardForeign = []string{"up"}
)

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rf
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

func ruleQueries(t *testing.T) []query {
	var qs []query
	for _, g := range readRules(t, rulesFile).Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alert " + r.Alert + r.Record, r.Expr})
		}
	}
	return qs
}

// grafanaVariables are the dashboard's variables and Grafana's own, replaced
// by what they would expand to before a query is checked.
var grafanaVariables = regexp.MustCompile(`\$\{?(__[a-z_]+|node)\}?`)

func expandGrafana(expr string) string {
	return grafanaVariables.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.Contains(v, "node") {
			return ".*"
		}
		return "1m" // $__rate_interval, $__interval, $__range
	})
}

// dashboardQueries walks the dashboard for every target's expr and every
// query variable's query.
func dashboardQueries(t *testing.T, dash map[string]any) []query {
	var qs []query
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			title, _ := v["title"].(string)
			if title == "" {
				title, _ = v["name"].(string)
			}
			if title != "" {
				path += "/" + title
			}
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "query" && path != "" && v["type"] == "query") {
					qs = append(qs, query{"dashboard " + path, expandGrafana(s)})
					continue
				}
				if q, ok := x.(map[string]any); ok && k == "query" {
					if s, ok := q["query"].(string); ok {
						qs = append(qs, query{"dashboard variable " + path, expandGrafana(labelValues.ReplaceAllString(s, "$1"))})
						continue
					}
				}
				walk(path, x)
			}
		case []any:
			for _, x := range v {
				walk(path, x)
			}
		}
	}
	walk("", dash)
	sort.Slice(qs, func(i, j int) bool { return qs[i].where+qs[i].expr < qs[j].where+qs[j].expr })
	return qs
}

// labelValues is Grafana's label_values(SELECTOR, LABEL) variable query:
// SELECTOR is PromQL.
var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

func readDashboard(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	return dash
}

func TestMetricNamesScanner(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`podlife_source_up == 0`, []string{"podlife_source_up"}},
		{`sum by (node, cause) (podlife_pods_unknown{job="podlife", node=~".*"}) > 0`, []string{"podlife_pods_unknown"}},
		{`sum(rate(a_total[5m])) without (instance) / on (job) group_left (x) b`, []string{"a_total", "b"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket{s="a{b}"}[1h30m])))`, []string{"x_bucket"}},
		{`label_replace(m, "last_reason", "$1", "reason", "(.+)") offset 5m`, []string{"m"}},
		{`absent(up{job="podlife"} == 1) and bool 1e3 or inf`, []string{"up"}},
		{`{__name__="podlife_journal_pending", node="a"}`, []string{"podlife_journal_pending"}},
		{`time() - max by (node) (ts)`, []string{"ts"}},
		{`count without (uid) (m) > sum(n) by (x)`, []string{"m", "n"}},
		{`topk(10, sum by (node, namespace) (increase(r[1m])))`, []string{"r"}},
		{`a unless on (uid) max_over_time(b{reason="x"}[5m]) == 1`, []string{"a", "b"}},
	}
	for _, tc := range tests {
		got, err := metricNames(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
	for _, bad := range []string{`a{b="c"`, `rate(a[5m)`, `a{b="c}`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q): no error", bad)
		}
	}
}

// TestQueriesNameExportedMetrics: every alert's and every dashboard query's
// metrics are ones podlife exports (or the few foreign ones named above).
func TestQueriesNameExportedMetrics(t *testing.T) {
	exp, err := staticExported()
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, exp, ruleQueries(t), rulesForeign)
	checkNames(t, exp, dashboardQueries(t, readDashboard(t)), dashboardForeign)
}

func checkNames(t *testing.T, exp exported, qs []query, foreign []string) {
	t.Helper()
	if len(qs) == 0 {
		t.Fatal("no queries found")
	}
	for _, q := range qs {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: names no metric: %q", q.where, q.expr)
		}
		for _, n := range names {
			if !exp.has(n) && !slices.Contains(foreign, n) {
				t.Errorf("%s names %s, which podlife does not export:\n  %s", q.where, n, q.expr)
			}
		}
	}
}

// TestGeneratedCopies: the PrometheusRule and the chart's copies are
// generated from podlife.rules.yaml and grafana-dashboard.json; -update
// rewrites them.
func TestGeneratedCopies(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dash, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(testenv.RepoRoot(), "charts", "podlife", "files")
	tests := []struct {
		path string
		want []byte
	}{
		{"prometheusrule.yaml", prometheusRule(rules)},
		{filepath.Join(chart, "podlife.rules.yaml"), rules},
		{filepath.Join(chart, "grafana-dashboard.json"), dash},
	}
	for _, tc := range tests {
		if *update {
			if err := os.WriteFile(tc.path, tc.want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(tc.path)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s is not generated from %s and %s (%v): run go test ./deploy/monitoring -run TestGeneratedCopies -update",
				tc.path, rulesFile, dashboardFile, err)
		}
	}
}

// prometheusRule wraps the rule file in a PrometheusRule.
func prometheusRule(rules []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`# Generated from podlife.rules.yaml by
#   go test ./deploy/monitoring -run TestGeneratedCopies -update
# Edit that file, not this one.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: podlife
  namespace: podlife
  labels: {app.kubernetes.io/name: podlife}
spec:
`)
	for _, line := range strings.SplitAfter(string(rules), "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("  ")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// promtool runs promtool (built by make tools) in this directory.
func promtool(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(testenv.Bin(t, "promtool"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs promtool (make tools): not in -short")
	}
}

// TestRuleUnitTests runs promtool's unit tests of the alerts, and checks
// that each alert is tested firing.
func TestRuleUnitTests(t *testing.T) {
	skipShort(t)
	if out, err := promtool(t, "", "check", "rules", rulesFile); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	out, err := promtool(t, "", "test", "rules", ruleTestsFile)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	t.Logf("promtool test rules %s:\n%s", ruleTestsFile, out)

	b, err := os.ReadFile(ruleTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range readRules(t, rulesFile).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: %s needs a case where it fires (%v) and one where it does not (%v)",
					r.Alert, ruleTestsFile, fires[r.Alert], quiet[r.Alert])
			}
			for _, k := range []string{"summary", "description"} {
				if r.Annotations[k] == "" {
					t.Errorf("alert %s has no %s", r.Alert, k)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s has no severity", r.Alert)
			}
		}
	}
}

// TestDashboardQuerySyntax: promtool parses every dashboard query (as
// recording rules).
func TestDashboardQuerySyntax(t *testing.T) {
	skipShort(t)
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	qs := dashboardQueries(t, readDashboard(t))
	for i, q := range qs {
		expr, _ := json.Marshal(q.expr)
		fmt.Fprintf(&b, "  - record: podlife:dashboard:%d\n    expr: %s\n", i, expr)
	}
	path := filepath.Join(t.TempDir(), "dashboard.rules.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := promtool(t, "", "check", "rules", path); err != nil {
		t.Errorf("promtool check rules (the dashboard's %d queries): %v\n%s", len(qs), err, out)
	}
}

// TestDashboard: the dashboard parses, has a panel for each thing it must
// show, and its panels are well formed.
func TestDashboard(t *testing.T) {
	dash := readDashboard(t)
	if dash["uid"] != "podlife" || dash["title"] == "" {
		t.Errorf("uid %v, title %v", dash["uid"], dash["title"])
	}
	panels, _ := dash["panels"].([]any)
	ids := map[float64]bool{}
	var rows []string
	exprs := map[string]string{} // panel title -> its queries
	for _, p := range panels {
		p := p.(map[string]any)
		id, _ := p["id"].(float64)
		title, _ := p["title"].(string)
		if ids[id] {
			t.Errorf("panel %q: id %v used twice", title, id)
		}
		ids[id] = true
		if p["type"] == "row" {
			rows = append(rows, title)
			continue
		}
		if g, _ := p["gridPos"].(map[string]any); g == nil || g["x"].(float64)+g["w"].(float64) > 24 {
			t.Errorf("panel %q: gridPos %v", title, p["gridPos"])
		}
		if ds, _ := p["datasource"].(map[string]any); ds["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", title, p["datasource"])
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		refs := map[string]bool{}
		for _, x := range targets {
			x := x.(map[string]any)
			ref, _ := x["refId"].(string)
			if ref == "" || refs[ref] {
				t.Errorf("panel %q: refId %q empty or repeated", title, ref)
			}
			refs[ref] = true
			e, _ := x["expr"].(string)
			exprs[title] += e + "\n"
		}
	}
	// What the dashboard is for: node -> pods by stage; causes; restarts;
	// transition rate; source health; journal.
	for _, want := range []struct{ row, metric string }{
		{"Pods by stage", "podlife_pod_stage"},
		{"Causes", "podlife_pods_unknown"},
		{"Restarts", "podlife_container_crash_loop_restarts"},
		{"Transitions", "podlife_transitions_total"},
		{"Source health", "podlife_source_up"},
		{"Journal and upstream", "podlife_journal_pending"},
	} {
		if !slices.Contains(rows, want.row) {
			t.Errorf("no row %q (rows: %v)", want.row, rows)
		}
		found := false
		for _, e := range exprs {
			found = found || strings.Contains(e, want.metric)
		}
		if !found {
			t.Errorf("no panel queries %s", want.metric)
		}
	}
	if !strings.Contains(exprs["Nodes by stage"], "count by (node, stage)") {
		t.Errorf("Nodes by stage does not count pods per node and stage: %q", exprs["Nodes by stage"])
	}
}
