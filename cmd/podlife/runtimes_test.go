package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// scenarioPods are the static pods TestScenariosOnBothRuntimes runs on each
// runtime (testenv/testdata/pods), with the stage podlife must show once
// each has settled (lifecycle-reference.md).
var scenarioPods = map[string]lifecycle.Stage{
	"serving":   lifecycle.StageServing,
	"crashloop": lifecycle.StageFailing,
	"oom":       lifecycle.StageFailing,
	"initfail":  lifecycle.StageFailing,
	"completed": lifecycle.StageTerminated,
	"notready":  lifecycle.StageStarting,
	"sidecar":   lifecycle.StageServing,
	"ghost":     lifecycle.StageFailing,
	"badimage":  lifecycle.StageFailing,
}

// TestScenariosOnBothRuntimes runs the scenario pods on a real kubelet over
// each real runtime (containerd, CRI-O), with a real agent, and checks that
// podlife says the same of each pod on both: its stage and reason, and each
// container's state and reason (the last attempt's, for a container that
// restarted); the kubelet's reasons for a failing pull compare alike
// (pullFailing). The rows are printed side by side.
func TestScenariosOnBothRuntimes(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (containerd, CRI-O, kubelet): not in -short")
	}
	bin := buildPodlife(t)
	rows := map[string]map[string]string{}
	for _, name := range testenv.RuntimeNames {
		t.Run(name, func(t *testing.T) { rows[name] = scenarioRows(t, bin, name) })
	}
	if len(rows) < len(testenv.RuntimeNames) {
		return // a runtime's subtest failed before its rows
	}
	pods := make([]string, 0, len(scenarioPods))
	for p := range scenarioPods {
		pods = append(pods, p)
	}
	slices.Sort(pods)
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s | %-60s | %s\n", "pod", testenv.RuntimeNames[0], testenv.RuntimeNames[1])
	for _, p := range pods {
		a, c := rows[testenv.RuntimeNames[0]][p], rows[testenv.RuntimeNames[1]][p]
		mark := ""
		if pullFailing.Replace(a) != pullFailing.Replace(c) {
			mark = "   <- differs"
			t.Errorf("%s: %s says %q, %s says %q", p, testenv.RuntimeNames[0], a, testenv.RuntimeNames[1], c)
		}
		fmt.Fprintf(&b, "%-10s | %-60s | %s%s\n", p, a, c, mark)
	}
	t.Logf("podlife's view of the scenario pods, side by side:\n%s", b.String())
}

// pullFailing names alike the kubelet's reasons for an image pull that
// fails: which of a failed pull and its back-off (ImagePullBackOff) a
// snapshot shows is timing; and for a registry that does not answer the
// kubelet says RegistryUnavailable on CRI-O, whose pull errors carry that
// prefix, where it says ErrImagePull on containerd
// (kubernetes/kubernetes pkg/kubelet/images/image_manager.go,
// evalCRIPullErr). The rows print as each runtime's kubelet said them.
var pullFailing = strings.NewReplacer("ErrImagePull", "<pull failing>", "RegistryUnavailable", "<pull failing>",
	"ImagePullBackOff", "<pull failing>")

// scenarioRows runs the scenario pods on runtime name and returns each
// pod's settled row (scenarioRow) once every pod shows its stage and the
// looping ones have restarted.
func scenarioRows(t *testing.T, bin, name string) map[string]string {
	rt := testenv.StartRuntime(t, name)
	node := "podlife-" + strings.ReplaceAll(name, "-", "")
	k := testenv.StartKubeletRestartingFast(t, rt, node)
	for p := range scenarioPods {
		k.AddStaticPod(t, p, testenv.PodManifest(t, p, p, "scenarios"))
	}
	logPath := filepath.Join(t.TempDir(), "agent.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 3000))
		}
	})
	ag := startAgent(t, bin, logPath, "--node-name", node, "--cri-endpoint", rt.CRIEndpoint(),
		"--kubelet-url", k.ReadOnlyURL, "--upstream", "off", "--stuck-threshold", "0")
	var last, prev map[string]string
	testenv.Eventually(t, name+": every scenario pod settled in its stage", 3*time.Minute, func() bool {
		var r agent.PodsResponse
		if getJSONFrom(ag.URL+"/api/v1/pods", &r) != 200 {
			return false
		}
		prev, last = last, map[string]string{}
		for _, p := range r.Pods {
			short := strings.TrimSuffix(p.Name, "-"+node)
			for _, c := range p.Containers {
				if c.ContainerID != "" && !strings.HasPrefix(c.ContainerID, name+"://") {
					t.Errorf("%s/%s: container ID %q, want the runtime's scheme %s://", short, c.Name, c.ContainerID, name)
				}
			}
			if want, ok := scenarioPods[short]; ok && p.Stage == want && settled(short, *p) {
				last[short] = scenarioRow(short, *p)
			}
		}
		return len(last) == len(scenarioPods) && fmt.Sprint(last) == fmt.Sprint(prev)
	})
	return last
}

// settled says whether a pod that loops has been seen to loop: a restart
// (or, for an init container, a failed attempt) behind it.
func settled(name string, p lifecycle.PodView) bool {
	switch name {
	case "crashloop", "oom", "initfail":
		return p.Restarts() >= 1
	}
	return true
}

// scenarioRow is what the runtimes must agree on of a pod: its stage and
// reason, and each container's state and reason. Of a pod that loops, what
// holds through the loop: its stage, and each restarted container's last
// exit (reason and code); where in the loop a snapshot falls (running,
// exited, backing off, being created) is a matter of timing, not runtime.
func scenarioRow(name string, p lifecycle.PodView) string {
	looping := !settled(name, lifecycle.PodView{})
	parts := []string{string(p.Stage)}
	if !looping {
		parts[0] += "/" + p.StageReason
	}
	for _, c := range p.Containers {
		s := c.Name + ":" + string(c.State)
		if c.Reason != "" {
			s += "(" + c.Reason + ")"
		}
		if c.LastState != nil && c.LastState.Reason != "" {
			last := fmt.Sprintf("last %s %d", c.LastState.Reason, c.LastState.ExitCode)
			s += " " + last
			if looping {
				s = c.Name + ": loops, " + last
			}
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}
