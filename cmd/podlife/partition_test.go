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
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/internal/upstream"
)

// TestPartition: the real agent reports to a real API server; the API server
// freezes (a partition) while containers crash on the real containerd, and the
// agent is SIGKILLed and restarted in the middle. After the partition heals,
// every journaled transition is delivered as exactly one Event, with its
// original time.
func TestPartition(t *testing.T) {
	bin := buildPodlife(t)
	api := testenv.StartAPIServer(t)
	ctx := context.Background()
	rc, err := clientcmd.BuildConfigFromFlags("", api.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(rc)
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{"e2e"} {
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: obj}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "podlife-part"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ctd := testenv.StartContainerd(t)
	ctd.ImportImages(t)
	k := testenv.StartKubelet(t, ctd, "podlife-part")
	k.AddStaticPod(t, "crashloop", strings.ReplaceAll(`
apiVersion: v1
kind: Pod
metadata: {name: crashloop, namespace: e2e}
spec:
  hostNetwork: true
  containers:
  - {name: app, image: IMG, imagePullPolicy: Never, command: [sh, -c, "sleep 1; exit 7"]}
`, "IMG", testenv.BusyboxImage))

	journalPath := filepath.Join(t.TempDir(), "journal.db")
	logPath := filepath.Join(t.TempDir(), "agent.log")
	var agentCmd *exec.Cmd
	var server string
	startAgent := func() {
		logf, _ := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		addr := freeAddr(t)
		server = "http://" + addr
		agentCmd = exec.Command(bin, "agent", "--node-name", "podlife-part", "--cri-endpoint", ctd.Endpoint,
			"--kubelet-url", k.ReadOnlyURL, "--listen-address", addr, "--poll-interval", "500ms",
			"--upstream", "on", "--kubeconfig", api.AgentKubeconfig, "--journal-path", journalPath,
			"--event-burst", "1000", "--stuck-threshold", "0")
		agentCmd.Stdout, agentCmd.Stderr = logf, logf
		agentCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := agentCmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := agentCmd
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		eventually(t, "agent up", 20*time.Second, func() bool {
			var r agent.JournalResponse
			return getJSONFrom(server+"/api/v1/journal", &r) == 200
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log tail:\n%s", lastBytes(string(b), 4000))
		}
	})
	journalNow := func() agent.JournalResponse {
		var r agent.JournalResponse
		getJSONFrom(server+"/api/v1/journal", &r)
		return r
	}
	// events maps journal seq -> the podlife Events carrying it.
	events := func() map[string][]eventsv1.Event {
		l, err := admin.EventsV1().Events("").List(ctx, metav1.ListOptions{LabelSelector: "podlife.dev/seq"})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]eventsv1.Event{}
		for _, e := range l.Items {
			out[e.Labels["podlife.dev/seq"]] = append(out[e.Labels["podlife.dev/seq"]], e)
		}
		return out
	}

	startAgent()
	eventually(t, "first crash-loop events delivered", 90*time.Second, func() bool {
		for _, evs := range events() {
			if evs[0].Regarding.Name == "crashloop-podlife-part" {
				return true
			}
		}
		return false
	})
	eventually(t, "node conditions set", 20*time.Second, func() bool {
		n, _ := admin.CoreV1().Nodes().Get(ctx, "podlife-part", metav1.GetOptions{})
		conds := map[string]string{}
		for _, c := range n.Status.Conditions {
			conds[string(c.Type)] = string(c.Status)
		}
		return conds["ContainerRuntimeUnreachable"] == "False" && conds["KubeletUnreachable"] == "False"
	})
	delivered := journalNow().Stats.Delivered

	// Partition: the API server freezes while the container keeps crashing;
	// the agent is SIGKILLed and restarted in the middle of it.
	api.Freeze()
	frozenAt := time.Now()
	time.Sleep(8 * time.Second)
	agentCmd.Process.Signal(syscall.SIGKILL)
	agentCmd.Wait()
	startAgent()
	time.Sleep(8 * time.Second)
	backlog := journalNow()
	var during []journal.Entry
	for _, e := range backlog.Pending {
		if upstream.Reportable(e.Transition) && e.Seq > delivered {
			during = append(during, e)
		}
	}
	if len(during) == 0 {
		t.Fatalf("no reportable transitions during the partition; journal %+v", backlog.Stats)
	}
	api.Thaw()
	partition := time.Since(frozenAt).Round(time.Second)
	eventually(t, "backlog delivered", 90*time.Second, func() bool {
		st := journalNow().Stats
		return st.Delivered >= backlog.Stats.LastSeq
	})
	got := events()
	lost, dup := 0, 0
	var order []time.Time
	for _, e := range during {
		evs := got[fmt.Sprint(e.Seq)]
		switch {
		case len(evs) == 0:
			lost++
			continue
		case len(evs) > 1:
			dup += len(evs) - 1
		}
		want := e.Transition.HappenedAt
		if want.IsZero() {
			want = e.Transition.ObservedAt
		}
		if !evs[0].EventTime.Time.Equal(want.Truncate(time.Microsecond)) {
			t.Errorf("seq %d: event time %v, want the original %v", e.Seq, evs[0].EventTime.Time, want)
		}
		order = append(order, evs[0].CreationTimestamp.Time)
	}
	for i := 1; i < len(order); i++ {
		if order[i].Before(order[i-1]) {
			t.Errorf("events created out of journal order at %d", i)
		}
	}
	summary := false
	l, _ := admin.EventsV1().Events("e2e").List(ctx, metav1.ListOptions{})
	for _, e := range l.Items {
		if e.Reason == "PartitionSummary" {
			summary = true
			t.Logf("summary event: %s", e.Note)
		}
	}
	t.Logf("partition %s (agent killed and restarted inside it): %d reportable transitions during the partition, %d delivered after, lost=%d duplicated=%d, dropped=%d",
		partition, len(during), len(during)-lost, lost, dup, journalNow().Stats.Dropped)
	if lost != 0 || dup != 0 || journalNow().Stats.Dropped != 0 {
		t.Fatalf("lost %d, duplicated %d", lost, dup)
	}
	if !summary {
		t.Error("no PartitionSummary event after the partition healed")
	}
	resp, err := http.Get(server + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"podlife_journal_pending ", "podlife_journal_dropped_total 0",
		`podlife_upstream_events_total{outcome="delivered"}`, `podlife_source_up{source="apiserver"} 1`} {
		if !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func getJSONFrom(url string, v any) int {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, v)
	return resp.StatusCode
}
