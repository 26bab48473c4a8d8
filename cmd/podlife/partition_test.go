package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
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
	"github.com/podlife/podlife/lifecycle"
)

// TestPartition: the real agent reports to a real API server; the API server
// freezes (a partition) while containers crash on the real containerd, and the
// agent is SIGKILLed and restarted in the middle. After the partition heals,
// every journaled transition is delivered as exactly one Event, with its
// original time.
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (API server, containerd, kubelet): not in -short")
	}
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
	k.AddStaticPod(t, "crashloop", e2ePod(t, "crashloop"))

	journalPath := filepath.Join(t.TempDir(), "journal.db")
	logPath := filepath.Join(t.TempDir(), "agent.log")
	var ag *agentProc
	var server string
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 4000))
		}
	})
	start := func() {
		ag = startAgent(t, bin, logPath, "--node-name", "podlife-part", "--cri-endpoint", ctd.Endpoint,
			"--kubelet-url", k.ReadOnlyURL, "--poll-interval", "500ms",
			"--upstream", "on", "--kubeconfig", api.AgentKubeconfig, "--journal-path", journalPath,
			"--event-burst", "1000", "--stuck-threshold", "0", "--event-log-lines", "2",
			// Fault detection as fast as before the fleet defaults (15 s
			// quiet before /readyz); a short jitter, still exercised.
			"--apiserver-probe-interval", "2s", "--delivery-jitter", "2s")
		server = ag.URL
		testenv.Eventually(t, "agent up", 20*time.Second, func() bool {
			var r agent.JournalResponse
			return getJSONFrom(server+"/api/v1/journal", &r) == 200
		})
	}
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
			for _, q := range eventSeqs(t, e) {
				out[q] = append(out[q], e)
			}
		}
		return out
	}

	start()
	testenv.Eventually(t, "first crash-loop events delivered", 90*time.Second, func() bool {
		for _, evs := range events() {
			if evs[0].Regarding.Name == "crashloop-podlife-part" {
				return true
			}
		}
		return false
	})
	testenv.Eventually(t, "node conditions set", 20*time.Second, func() bool {
		n, _ := admin.CoreV1().Nodes().Get(ctx, "podlife-part", metav1.GetOptions{})
		conds := map[string]string{}
		for _, c := range n.Status.Conditions {
			conds[string(c.Type)] = string(c.Status)
		}
		return conds["ContainerRuntimeUnreachable"] == "False" && conds["KubeletUnreachable"] == "False"
	})
	delivered := journalNow().Stats.Delivered

	// Partition: the API server freezes while the container keeps crashing;
	// the agent is SIGKILLed and restarted in the middle of it. The partition
	// lasts until the crashing container has changed after the restart (its
	// back-off grows: up to a minute or so): podlife's own SourceDown of the
	// API server is not enough to show that transitions cross a partition.
	api.Freeze()
	frozenAt := time.Now()
	time.Sleep(8 * time.Second)
	ag.Process.Signal(syscall.SIGKILL)
	ag.wait()
	start()
	restartedAt := time.Now()
	// The restarted agent meets the partition too (a failed delivery) before
	// it heals: only then does it owe a PartitionSummary.
	testenv.Eventually(t, "the restarted agent failing to deliver", 60*time.Second, func() bool {
		resp, err := http.Get(server + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		return hasLine(string(m), "podlife_upstream_event_failures_total ") && !hasLine(string(m), "podlife_upstream_event_failures_total 0")
	})
	crashing := func(e journal.Entry) bool {
		tr := e.Transition
		return tr.Pod == "crashloop-podlife-part" && tr.Container == "app" && upstream.Reportable(tr) &&
			(tr.Kind == lifecycle.TransitionContainerRestarted || tr.Kind == lifecycle.TransitionContainerState)
	}
	var backlog agent.JournalResponse
	// One observed by the restarted agent, which has never reached the API
	// server: the first agent goes on taking it for reachable for a few
	// seconds into the partition.
	testenv.Eventually(t, "a transition of the crashing container journaled by the restarted agent during the partition", 150*time.Second, func() bool {
		backlog = journalNow()
		for _, e := range backlog.Pending {
			if e.Seq > delivered && crashing(e) && e.Transition.ObservedAt.After(restartedAt) {
				return true
			}
		}
		return false
	})
	var during, containerDuring []journal.Entry
	for _, e := range backlog.Pending {
		if upstream.Reportable(e.Transition) && e.Seq > delivered {
			during = append(during, e)
			if crashing(e) {
				containerDuring = append(containerDuring, e)
			}
		}
	}
	api.Thaw()
	partition := time.Since(frozenAt).Round(time.Second)
	testenv.Eventually(t, "backlog delivered", 90*time.Second, func() bool {
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
		want = want.Truncate(time.Microsecond)
		ev := evs[0]
		if ev.Labels["podlife.dev/seq"] != fmt.Sprint(e.Seq) {
			// A repeat folded into the series of an earlier Event: within it.
			if ev.Series == nil || want.Before(ev.EventTime.Time) || ev.Series.LastObservedTime.Time.Before(want) {
				t.Errorf("seq %d at %v folded into Event %s from %v, series %+v", e.Seq, want, ev.Name, ev.EventTime.Time, ev.Series)
			}
			continue
		}
		if !ev.EventTime.Time.Equal(want) {
			t.Errorf("seq %d: event time %v, want the original %v", e.Seq, ev.EventTime.Time, want)
		}
		order = append(order, ev.CreationTimestamp.Time)
	}
	for i := 1; i < len(order); i++ {
		if order[i].Before(order[i-1]) {
			t.Errorf("events created out of journal order at %d", i)
		}
	}
	// The crashing container's transitions crossed the partition as Events
	// about its pod.
	for _, e := range containerDuring {
		evs := got[fmt.Sprint(e.Seq)]
		if len(evs) != 1 || evs[0].Regarding.Kind != "Pod" || evs[0].Regarding.Name != "crashloop-podlife-part" ||
			!strings.Contains(evs[0].Note, `container "app"`) {
			t.Errorf("seq %d (%s %s -> %s of the crashing container): events %+v", e.Seq, e.Transition.Kind,
				e.Transition.From, e.Transition.To, evs)
		}
	}
	t.Logf("%d transitions of the crashing container crossed the partition", len(containerDuring))
	// --event-log-lines: the Events of its ended attempts carry the last
	// lines each attempt wrote (its crash black box), after the partition
	// too; those of other transitions none.
	// A series' newest attempt is in its podlife.dev/last annotation.
	withLines := 0
	for q, evs := range got {
		ev := evs[0]
		if ev.Regarding.Name != "crashloop-podlife-part" {
			continue
		}
		note := ev.Note
		if ev.Labels["podlife.dev/seq"] != q {
			note = ev.Annotations[upstream.AnnotationLast] // checked for the newest only
		}
		switch lines := strings.Contains(note, "; ended with: last words before exit 7"); {
		case ev.Reason == "ContainerExited" || ev.Reason == "ContainerFailed" || ev.Reason == "ContainerRestarted":
			if !lines {
				t.Errorf("%s Event %s (seq %s): note %q, want the attempt's last line (--event-log-lines)", ev.Reason, ev.Name, q, note)
			}
			withLines++
		case lines:
			t.Errorf("%s Event %s carries log lines: %q", ev.Reason, ev.Name, note)
		}
	}
	if withLines == 0 {
		t.Error("no Event of an ended attempt of the crashing container")
	}
	t.Logf("%d Events of ended attempts carry the attempt's last line", withLines)
	// The summary follows the backlog's last acknowledgement: wait for it.
	summary := false
	for deadline := time.Now().Add(30 * time.Second); !summary && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		l, _ := admin.EventsV1().Events("e2e").List(ctx, metav1.ListOptions{})
		for _, e := range l.Items {
			if e.Reason == "PartitionSummary" {
				summary = true
				t.Logf("summary event: %s", e.Note)
			}
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
