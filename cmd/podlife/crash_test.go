package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// startSimnode starts `podlife simnode` as its own process with args and
// returns its CRI endpoint and kubelet URL. Cleanup kills it by PID.
func startSimnode(t *testing.T, bin string, args ...string) (cri, kubelet string) {
	t.Helper()
	sc := startPrinting(t, bin, append([]string{"simnode", "--dir", t.TempDir()}, args...)...)
	endpoints := map[string]string{}
	for len(endpoints) < 2 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		endpoints[k] = v
	}
	if endpoints["cri-endpoint"] == "" || endpoints["kubelet-url"] == "" {
		t.Fatalf("podlife simnode printed %v", endpoints)
	}
	return endpoints["cri-endpoint"], endpoints["kubelet-url"]
}

// startPrinting starts bin with args and returns a scanner of its stdout.
// Cleanup kills it by PID.
func startPrinting(t *testing.T, bin string, args ...string) *bufio.Scanner {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return bufio.NewScanner(out)
}

// streamed reads an agent's whole transition stream, from its first record.
type streamed struct {
	mu      sync.Mutex
	records []agent.Record
	other   []string
	done    chan struct{}
}

func watchAll(t *testing.T, url string) *streamed {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/transitions?watch=true&since=1970-01-01T00:00:00Z", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := &streamed{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r agent.Record
			s.mu.Lock()
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Seq > 0 {
				s.records = append(s.records, r)
			} else if strings.TrimSpace(sc.Text()) != "" {
				s.other = append(s.other, sc.Text())
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *streamed) len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.records) }

// journalWriteSyscalls are pwrite64, fsync and fdatasync: bbolt writing a
// transaction's pages and syncing them.
var journalWriteSyscalls = map[string][]int{"amd64": {18, 74, 75}, "arm64": {68, 82, 83}}

// inJournalWrite waits (up to limit) until one of pid's threads is inside a
// write or sync of the file at path, and reports whether it saw one.
func inJournalWrite(pid int, path string, limit time.Duration) bool {
	nrs := journalWriteSyscalls[runtime.GOARCH]
	fd := -1
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		if fd < 0 {
			ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			for _, e := range ents {
				if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); l == path {
					fd, _ = strconv.Atoi(e.Name())
				}
			}
			continue
		}
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b))
			if len(f) < 2 {
				continue
			}
			nr, _ := strconv.Atoi(f[0])
			arg0, _ := strconv.ParseInt(strings.TrimPrefix(f[1], "0x"), 16, 64)
			for _, n := range nrs {
				if nr == n && int(arg0) == fd {
					return true
				}
			}
		}
	}
	return false
}

// The agent process stopped under churn, then started again, three times
// each way: SIGTERM (it shuts down) and SIGKILL (it cannot), each sent while
// one of its threads is inside a write or fsync of the journal (seen in
// /proc/PID/task/*/syscall) at a random moment of heavy churn. The real
// binary, with `podlife simnode` (a process of its own, 50 pods, 100
// restarts/s) as its sources. After every restart the journal opens (nothing
// moved aside) and: its sequences are contiguous and its IDs unique; the
// entries pending before the stop are unchanged; every transition the
// stopped agent had streamed is in it once, in stream order, where that run
// began; what the run journaled but had not streamed yet is at most one
// correlation's worth; and no transition is in it twice.
func TestAgentKilledUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the agent binary and podlife simnode under churn, and kills the agent")
	}
	bin := buildPodlife(t)
	cri, kubelet := startSimnode(t, bin, "--pods", "50", "--churn", "100")
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.db")
	logPath := filepath.Join(dir, "agent.log")
	args := []string{"--node-name", "crash", "--cri-endpoint", cri, "--kubelet-url", kubelet, "--upstream", "off",
		"--secure-listen-address=", "--journal-path", path, "--poll-interval", "200ms", "--history-size", "1000000",
		"--stuck-threshold", "0"}
	var before []journal.Entry // the journal as the last run left it
	caught := 0
	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGTERM, syscall.SIGKILL, syscall.SIGTERM,
		syscall.SIGKILL} {
		name := fmt.Sprintf("round %d %s", round+1, sig)
		p := startAgent(t, bin, logPath, args...)
		s := watchAll(t, p.URL)
		testenv.Eventually(t, name+": transitions streaming", 60*time.Second, func() bool { return s.len() > 100 })
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Millisecond) // a random moment of churn
		if inJournalWrite(p.Process.Pid, path, 20*time.Second) {
			caught++
		} else {
			t.Logf("%s: no journal write seen in 20s; signalled anyway", name)
		}
		if err := p.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the agent did not exit within 30s", name)
		}
		if sig == syscall.SIGTERM && p.err != nil {
			t.Errorf("%s: the agent exited with %v, want 0", name, p.err)
		}
		select {
		case <-s.done: // the stream ends with the process
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the stream did not end with the agent", name)
		}
		s.mu.Lock()
		records, other := s.records, s.other
		s.mu.Unlock()
		if len(other) > 0 {
			t.Fatalf("%s: the stream carried %q", name, other)
		}

		j, err := journal.Open(path, journal.Options{})
		if err != nil {
			t.Fatalf("%s: the journal does not open after the stop: %v", name, err)
		}
		entries, err := j.Pending(0)
		st, serr := j.Stats()
		j.Close()
		if err != nil || serr != nil {
			t.Fatalf("%s: reading the journal: %v %v", name, err, serr)
		}
		checkAfterStop(t, name, entries, st, before, records)
		before = entries
		t.Logf("%s: %d transitions streamed, journal %d entries", name, len(records), len(entries))
	}
	if matches, _ := filepath.Glob(path + ".*"); len(matches) > 0 {
		t.Fatalf("a journal was moved aside: %v", matches)
	}
	if caught < 4 {
		t.Errorf("only %d of 6 signals landed inside a journal write", caught)
	}
	t.Logf("%d of 6 signals sent while a thread was inside a journal write or fsync", caught)
}

// checkAfterStop compares the journal after a stop with the one before and
// with what the stopped run streamed.
func checkAfterStop(t *testing.T, name string, entries []journal.Entry, st journal.Stats, before []journal.Entry,
	records []agent.Record) {
	t.Helper()
	if uint64(len(entries)) != st.LastSeq || (len(entries) > 0 && entries[0].Seq != 1) {
		t.Fatalf("%s: %d entries, last seq %d: not contiguous from 1 (nothing is delivered here)", name, len(entries), st.LastSeq)
	}
	ids := map[string]bool{}
	seen := map[string]uint64{}
	for i, e := range entries {
		if e.Seq != uint64(i+1) || ids[e.ID] {
			t.Fatalf("%s: entry %d: seq %d, id %s (seen: %v)", name, i, e.Seq, e.ID, ids[e.ID])
		}
		ids[e.ID] = true
		k := transitionKey(e.Transition)
		if s, dup := seen[k]; dup {
			t.Fatalf("%s: entries %d and %d are the same transition %s", name, s, e.Seq, k)
		}
		seen[k] = e.Seq
	}
	for i := range before {
		if i >= len(entries) || entries[i].ID != before[i].ID || !entries[i].AppendedAt.Equal(before[i].AppendedAt) ||
			transitionKey(entries[i].Transition) != transitionKey(before[i].Transition) {
			t.Fatalf("%s: entry %d, pending before the stop, changed or went missing", name, before[i].Seq)
		}
	}
	run := entries[len(before):]
	for i, r := range records {
		if r.Seq != uint64(i+1) {
			t.Fatalf("%s: stream record %d has seq %d", name, i, r.Seq)
		}
		if i >= len(run) {
			t.Fatalf("%s: %d of the %d streamed transitions are not in the journal (lost), the first: %s", name,
				len(records)-i, len(records), transitionKey(r.Transition))
		}
		if transitionKey(run[i].Transition) != transitionKey(r.Transition) {
			t.Fatalf("%s: journal entry %d is %s, the stream's transition %d is %s", name, run[i].Seq,
				transitionKey(run[i].Transition), r.Seq, transitionKey(r.Transition))
		}
	}
	// Journaled, not yet streamed when the process stopped: one
	// correlation's transitions at most (a restart is two or three).
	if extra := len(run) - len(records); extra > 50 {
		t.Errorf("%s: %d transitions journaled beyond the %d streamed", name, extra, len(records))
	}
}

// transitionKey names a transition by everything that tells two apart.
func transitionKey(t lifecycle.Transition) string {
	return fmt.Sprintf("%s %s/%s(%s) %s %s %s->%s %s @%s", t.Kind, t.Namespace, t.Pod, t.UID, t.Container, t.Source,
		t.From, t.To, t.Reason, t.ObservedAt.UTC().Format(time.RFC3339Nano))
}
