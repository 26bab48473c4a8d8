package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// seriesBudget is the default mode's most series for one pod (issue 26: a
// 150,000-pod cluster must afford podlife beside kube-state-metrics).
const seriesBudget = 10

// podSamples is the sample lines of the pod families a mode exports for
// pods, without the HELP and TYPE lines.
func podSamples(t *testing.T, mode string, pods []lifecycle.PodView) []string {
	t.Helper()
	c := podMetrics{families: podFamiliesOf(mode)}
	views := make([]*lifecycle.PodView, len(pods))
	for i := range pods {
		views[i] = &pods[i]
	}
	text, err := c.get(views)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(text)), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// representativePods are the generated node's pods and the shapes the
// budget is for: a pod of 4 containers with 2 crash-looping and 2 kinds of
// mismatch, a pod of 4 Serving, and one Unknown while the node is cut off.
func representativePods(t *testing.T) []lifecycle.PodView {
	t.Helper()
	a, _ := generatedAgent(t)
	var pods []lifecycle.PodView
	for _, p := range a.Snapshot().Pods {
		pods = append(pods, *p)
	}
	byName := func(name string) lifecycle.PodView {
		i := slices.IndexFunc(pods, func(p lifecycle.PodView) bool { return p.Name == name })
		if i < 0 {
			t.Fatalf("no pod %s in the generated node", name)
		}
		return pods[i]
	}
	worker, web := byName("worker-6f7c9-klmno"), byName("web-7d9f8-abcde")
	running := web.Containers[slices.IndexFunc(web.Containers, func(c lifecycle.ContainerView) bool { return c.State == lifecycle.StateRunning })]
	four := func(uid string, looping int) lifecycle.PodView {
		p := worker
		p.Name, p.UID, p.Containers = uid, uid, nil
		for i := range 4 {
			c := running
			if i < looping {
				c = worker.Containers[0]
			}
			c.Name = "c" + string(rune('0'+i))
			p.Containers = append(p.Containers, c)
		}
		return p
	}
	loop := four("crashloop-4", 2)
	loop.Mismatches = []lifecycle.Mismatch{{Kind: lifecycle.MismatchRestartCount, Container: "c0"},
		{Kind: lifecycle.MismatchRunningButExited, Container: "c1"}, {Kind: lifecycle.MismatchRestartCount, Container: "c1"}}
	serving := four("serving-4", 0)
	serving.Stage = lifecycle.StageServing
	cut := four("cut-off-4", 0)
	cut.Stage, cut.UnknownCause = lifecycle.StageUnknown, lifecycle.CauseNodeCutOff
	cut.Mismatches = []lifecycle.Mismatch{{Kind: lifecycle.MismatchAPIStale}}
	return append(pods, loop, serving, cut)
}

// The default exposition stays within the series budget for every pod of
// the representative set, and a Serving pod, whatever its containers, is
// one series: a family that adds a series per container, or a 0-valued
// member per pod, fails here.
func TestSeriesBudget(t *testing.T) {
	pods := representativePods(t)
	perPod := map[string]int{}
	lines := podSamples(t, PodMetricsPodlife, pods)
	for _, l := range lines {
		i := strings.Index(l, `uid="`)
		if i < 0 {
			t.Fatalf("a pod series without uid: %s", l)
		}
		uid := l[i+5:]
		perPod[uid[:strings.IndexByte(uid, '"')]]++
	}
	for _, p := range pods {
		n := perPod[p.UID]
		if n > seriesBudget {
			t.Errorf("pod %s (%s, %d containers, %d mismatches): %d series by default, over the budget of %d",
				p.Name, p.Stage, len(p.Containers), len(p.Mismatches), n, seriesBudget)
		}
		if p.Stage == lifecycle.StageServing && n != 1 {
			t.Errorf("Serving pod %s (%d containers): %d series, want 1 (its stage)", p.Name, len(p.Containers), n)
		}
	}
	ksm := len(podSamples(t, PodMetricsKSM, pods))
	t.Logf("%d pods: %d series by default (%.1f per pod), %d ksm-compatible (%.1f per pod)",
		len(pods), len(lines), float64(len(lines))/float64(len(pods)), ksm, float64(ksm)/float64(len(pods)))
}

// Each default family is a pure function of a pod's view (as
// kube-state-metrics' are of an object): the exact series of one pod.
func TestDefaultPodFamilies(t *testing.T) {
	pods := representativePods(t)
	byName := func(name string) lifecycle.PodView {
		return pods[slices.IndexFunc(pods, func(p lifecycle.PodView) bool { return p.Name == name })]
	}
	settled := byName("worker-6f7c9-klmno") // one crash, then a run past the settle: Serving
	settled.Stage = lifecycle.StageServing
	settled.Containers = slices.Clone(settled.Containers)
	settled.Containers[0].State, settled.Containers[0].Reason = lifecycle.StateRunning, ""
	settled.Containers[0].StartedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	odd := byName("worker-6f7c9-klmno") // a reason no kubelet lists
	odd.Containers = slices.Clone(odd.Containers)
	last := *odd.Containers[0].LastState
	last.Reason, last.ExitCode = "Segfaulted: core dumped at 0x0", 139
	odd.Containers[0].LastState = &last
	exited := byName("worker-6f7c9-klmno") // exited again, not restarted yet: still the loop
	exited.Containers = slices.Clone(exited.Containers)
	code, started := int32(2), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ec := &exited.Containers[0]
	ec.State, ec.Reason, ec.ExitCode, ec.StartedAt, ec.FinishedAt = lifecycle.StateTerminated, "Error", &code, started, started.Add(3*time.Second)
	first := byName("worker-6f7c9-klmno") // the first crash: no restart yet, no loop
	first.Containers = slices.Clone(first.Containers)
	first.Containers[0].RestartCount = 0
	lbl := func(p lifecycle.PodView, extra string) string {
		return `{` + extra + `namespace="` + p.Namespace + `",pod="` + p.Name + `",` // the pod's labels, sorted with extra
	}
	tests := []struct {
		name string
		pod  lifecycle.PodView
		want []string // each line's start, in order
	}{
		{"serving, 4 containers", byName("serving-4"), []string{`podlife_pod_stage{namespace="shop",pod="serving-4",stage="Serving",uid="serving-4"} 1`}},
		{"crash loop: restarts and the last exit by reason", byName("worker-6f7c9-klmno"), []string{
			`podlife_container_crash_loop_exit_code` + lbl(byName("worker-6f7c9-klmno"), `container="worker",`) + `reason="OOMKilled",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 137`,
			`podlife_container_crash_loop_restarts` + lbl(byName("worker-6f7c9-klmno"), `container="worker",`) + `uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 5`,
			`podlife_pod_stage{namespace="shop",pod="worker-6f7c9-klmno",stage="Failing",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 1`}},
		{"crash loop over: the stage only", settled, []string{
			`podlife_pod_stage{namespace="shop",pod="worker-6f7c9-klmno",stage="Serving",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 1`}},
		{"exited again: the loop goes on, with this exit", exited, []string{
			`podlife_container_crash_loop_exit_code` + lbl(exited, `container="worker",`) + `reason="Error",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 2`,
			`podlife_container_crash_loop_restarts` + lbl(exited, `container="worker",`) + `uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 5`,
			`podlife_pod_stage{namespace="shop",pod="worker-6f7c9-klmno",stage="Failing",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 1`}},
		{"the first crash is not a loop", first, []string{
			`podlife_pod_stage{namespace="shop",pod="worker-6f7c9-klmno",stage="Failing",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 1`}},
		{"an unlisted reason is Other", odd, []string{
			`podlife_container_crash_loop_exit_code` + lbl(odd, `container="worker",`) + `reason="Other",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 139`,
			`podlife_container_crash_loop_restarts` + lbl(odd, `container="worker",`) + `uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 5`,
			`podlife_pod_stage{namespace="shop",pod="worker-6f7c9-klmno",stage="Failing",uid="6f1c0003-8e2b-4c1a-9d3e-5a7b9c0d1e2f"} 1`}},
		{"unknown: the cause, the mismatch", byName("cut-off-4"), []string{
			`podlife_pod_stage{namespace="shop",pod="cut-off-4",stage="Unknown",uid="cut-off-4"} 1`,
			`podlife_pod_unknown_cause{cause="node-cut-off",namespace="shop",pod="cut-off-4",uid="cut-off-4"} 1`,
			`podlife_view_mismatches{kind="apiserver-stale",namespace="shop",pod="cut-off-4",uid="cut-off-4"} 1`}},
		{"mismatches by kind, counted", byName("crashloop-4"), []string{
			`podlife_container_crash_loop_exit_code{container="c0",`, `podlife_container_crash_loop_exit_code{container="c1",`,
			`podlife_container_crash_loop_restarts{container="c0",`, `podlife_container_crash_loop_restarts{container="c1",`,
			`podlife_pod_stage{namespace="shop",pod="crashloop-4",stage="Failing",uid="crashloop-4"} 1`,
			`podlife_view_mismatches{kind="kubelet-running-runtime-exited",namespace="shop",pod="crashloop-4",uid="crashloop-4"} 1`,
			`podlife_view_mismatches{kind="restart-count-mismatch",namespace="shop",pod="crashloop-4",uid="crashloop-4"} 2`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := podSamples(t, PodMetricsPodlife, []lifecycle.PodView{tc.pod})
			ok := len(got) == len(tc.want)
			for i := range got {
				ok = ok && strings.HasPrefix(got[i], tc.want[i])
			}
			if !ok {
				t.Errorf("got\n%s\nwant lines starting\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// The README's table of the pod families is podFamilies: each family's
// name, the mode that exports it and why, in order.
func TestPodFamiliesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start, end = "<!-- pod families: generated from agent/exposition.go's podFamilies -->\n", "<!-- end of pod families -->"
	readme := string(b)
	i, j := strings.Index(readme, start), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no table between %q and %q", start, end)
	}
	want := "| family | exported | why |\n|---|---|---|\n"
	for _, f := range podFamilies {
		mode, why := "always", f.why
		if f.ksm != "" {
			mode, why = PodMetricsKSM, "duplicates `"+f.ksm+"`"
		}
		name := fqName.FindStringSubmatch(f.desc.String()) // Desc{fqName: "podlife_...", ...}
		if name == nil {
			t.Fatalf("no name in %s", f.desc)
		}
		want += fmt.Sprintf("| `%s` | %s | %s |\n", name[1], mode, why)
	}
	if got := readme[i+len(start) : j]; got != want {
		t.Errorf("README.md's pod families:\n%s\nwant (podFamilies):\n%s", got, want)
	}
}
