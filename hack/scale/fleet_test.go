package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/internal/testenv"
)

// Identities: the agents run as podlife's service account (deploy/'s), so
// that the FlowSchemas match them as in a cluster; each hollow kubelet as its
// node; the Lease probes as nodes too (system-node-high, like a kubelet).
const (
	agentUser   = "system:serviceaccount:podlife:podlife"
	agentToken  = "podlife-scale-agent-token"
	probePrefix = "lease-probe-"
)

func nodeName(i int) string  { return fmt.Sprintf("hn-%03d", i) }
func nodeToken(i int) string { return "podlife-scale-node-token-" + nodeName(i) }

// tokens are the static tokens of the fleet: every node, the agents, the probes.
func tokens(nodes, probes int) []testenv.StaticToken {
	out := []testenv.StaticToken{{Token: agentToken, User: agentUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:podlife"}}}
	for i := range nodes {
		out = append(out, testenv.StaticToken{Token: nodeToken(i), User: "system:node:" + nodeName(i), Groups: []string{"system:nodes"}})
	}
	for i := range probes {
		name := fmt.Sprintf("%s%02d", probePrefix, i)
		out = append(out, testenv.StaticToken{Token: "podlife-scale-probe-" + name, User: "system:node:" + name, Groups: []string{"system:nodes"}})
	}
	return out
}

// node is one simulated node of the fleet: its link to the API server (the
// kubelet's and the agent's, as a node has one network path), a hollow
// kubelet, a simulated runtime and kubelet API (simnode, in this process),
// and a real podlife agent process with its own journal.
type node struct {
	name  string
	rack  int
	link  *testenv.Link
	sim   *simnode.Node
	agent *exec.Cmd
	url   string // the agent's plain HTTP API
	kube  *exec.Cmd
	log   string
}

// fleetOptions shape the fleet.
type fleetOptions struct {
	Nodes, Racks, Pods int
	Churn              float64 // restarts per second per node
	AgentArgs          []string
	Hollow             string // hollowlocal's path
	Podlife            string // podlife's path
	Dir                string
}

// startNode starts node i: the hollow kubelet first (it registers the
// Node), then simnode and the agent.
func startNode(t *testing.T, api *testenv.APIServer, o fleetOptions, i int) *node {
	n := &node{name: nodeName(i), rack: i % o.Racks, link: api.NewLink(t)}
	dir := filepath.Join(o.Dir, n.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n.kube = startProc(t, filepath.Join(dir, "kubelet.log"), o.Hollow, "--name", n.name, "--kubeconfig", n.link.Kubeconfig(t, nodeToken(i)),
		"--root-dir", dir, "--kubelet-port", "0", "--max-pods", fmt.Sprint(max(110, o.Pods))) // SCALE_PODS past the kubelet's default 110
	sim, err := simnode.Start(context.Background(), simnode.Options{Dir: dir, Pods: o.Pods, ContainersPerPod: 1,
		ChurnPerSecond: o.Churn, PodsAPI: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("simnode %s: %v", n.name, err)
	}
	n.sim = sim
	t.Cleanup(func() { sim.Close() })
	n.log = filepath.Join(dir, "agent.log")
	args := append([]string{"agent", "--node-name", n.name, "--cri-endpoint", sim.CRIEndpoint, "--kubelet-url", sim.KubeletURL,
		"--kubelet-pods-api-socket", sim.PodsAPISocket, "--upstream", "on", "--kubeconfig", n.link.Kubeconfig(t, agentToken),
		"--journal-path", filepath.Join(dir, "journal.db"), "--secure-listen-address", "", "--insecure-listen-address", "127.0.0.1:0",
		"--blackbox-lines", "0", "--stuck-threshold", "0"}, o.AgentArgs...)
	n.agent = startProc(t, n.log, o.Podlife, args...)
	return n
}

// startProc starts a process logging to logFile, stopped by PID (SIGTERM,
// then SIGKILL) at cleanup.
func startProc(t *testing.T, logFile, bin string, args ...string) *exec.Cmd {
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// agentURL reads the agent's plain HTTP address from its log once it binds.
func (n *node) agentURL() string {
	if n.url != "" {
		return n.url
	}
	b, _ := os.ReadFile(n.log)
	for _, line := range strings.Split(string(b), "\n") {
		if u, ok := strings.CutPrefix(line, "podlife agent listening on "); ok && strings.HasPrefix(u, "http://") {
			n.url = strings.TrimSpace(u)
		}
	}
	return n.url
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

// journal is the agent's journal (its pending entries included).
func (n *node) journal() (api.JournalResponse, error) {
	var r api.JournalResponse
	u := n.agentURL()
	if u == "" {
		return r, fmt.Errorf("%s: agent not listening yet", n.name)
	}
	resp, err := httpClient.Get(u + "/api/v1/journal")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("%s: journal: HTTP %d", n.name, resp.StatusCode)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// rack is the nodes of one rack, cut and healed together.
type rack []*node

func (r rack) cut() {
	for _, n := range r {
		n.link.Cut()
	}
}

func (r rack) heal() {
	var wg sync.WaitGroup
	for _, n := range r {
		wg.Add(1)
		go func() { defer wg.Done(); n.link.Heal() }()
	}
	wg.Wait()
}
