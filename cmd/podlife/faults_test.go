package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
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
	for _, name := range []string{"serving", "crashloop"} {
		k.AddStaticPod(t, name, e2ePod(t, name))
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

// writeFile writes content to path in place.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
