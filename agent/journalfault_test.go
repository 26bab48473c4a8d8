package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// needRoot skips a test that mounts file systems.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: this test mounts a tmpfs and runs the agent against a simulated node")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: it mounts a tmpfs")
	}
}

// mountTmpfs mounts a tmpfs of size at a new directory, unmounted in Cleanup.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "journal")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, mode, err, out)
	}
}

// syncBuffer is a log sink read while the agent writes it.
type syncBuffer struct{ testenv.LogBuffer }

// lines returns the log lines whose msg starts with prefix.
func (s *syncBuffer) lines(prefix string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		var e struct{ Msg string }
		if json.Unmarshal([]byte(l), &e) == nil && strings.HasPrefix(e.Msg, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// runningAgent is agent.Run, in this process, against a simulated node with
// churn, with its transition stream read from the start.
type runningAgent struct {
	t    *testing.T
	url  string
	node *simnode.Node
	log  *syncBuffer
	stop func()

	mu      sync.Mutex
	records []Record
	tail    []string // anything on the stream that is not a record
}

// runAgent starts the simulated node and the agent with its journal at path.
// Cleanup stops both.
func runAgent(t *testing.T, path string) *runningAgent {
	t.Helper()
	return startRunningAgent(t, path, simnode.Options{Pods: 10, ChurnPerSecond: 20}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startRunningAgent starts the simulated node of o and the agent with its
// journal at path ("": none). Cleanup stops both.
func startRunningAgent(t *testing.T, path string, o simnode.Options, simLog *slog.Logger) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o.Dir = t.TempDir()
	node, err := simnode.Start(ctx, o, simLog)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &runningAgent{t: t, node: node, log: &syncBuffer{}}
	cfg := Config{NodeName: "fault", CRIEndpoint: node.CRIEndpoint, CRIStream: true, KubeletURL: node.KubeletURL,
		PollInterval: 200 * time.Millisecond, ListenAddress: "127.0.0.1:0", HistorySize: 100000, Upstream: "off",
		EventBurst: 5, EventInterval: time.Minute, JournalPath: path, LogLevel: "info"}
	if err := cfg.Validate(); err != nil {
		cancel()
		node.Close()
		t.Fatal(err)
	}
	urls := make(chan string, 2)
	done := make(chan error, 1)
	// Run sets the runtime's defaults for a whole process (setGCPercent,
	// setMaxProcs): the package's other tests keep theirs.
	procs, gc := runtime.GOMAXPROCS(0), debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs); debug.SetGCPercent(gc) })
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewJSONHandler(r.log, nil)), func(u string) { urls <- u })
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("agent.Run did not return within 30s of its context's end")
			}
			node.Close()
		})
	}
	t.Cleanup(r.stop)
	select {
	case u := <-urls:
		if !strings.Contains(u, "://") { // reported as HOST:PORT
			u = "http://" + u
		}
		r.url = u
	case err := <-done:
		t.Fatalf("agent.Run: %v; log:\n%s", err, r.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent reported no address; log:\n%s", r.log)
	}
	r.watch(ctx)
	return r
}

// watch reads the whole transition stream, from the first record on.
func (r *runningAgent) watch(ctx context.Context) {
	req, _ := http.NewRequestWithContext(ctx, "GET", r.url+"/api/v1/transitions?watch=true&since=1970-01-01T00:00:00Z", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec Record
			r.mu.Lock()
			if err := json.Unmarshal(sc.Bytes(), &rec); err == nil && rec.Seq > 0 {
				r.records = append(r.records, rec)
			} else if len(bytes.TrimSpace(sc.Bytes())) > 0 {
				r.tail = append(r.tail, sc.Text())
			}
			r.mu.Unlock()
		}
	}()
}

func (r *runningAgent) get(path string, v any) int {
	r.t.Helper()
	resp, err := http.Get(r.url + path)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			r.t.Fatalf("GET %s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

func (r *runningAgent) journal() JournalResponse {
	r.t.Helper()
	var j JournalResponse
	if code := r.get("/api/v1/journal", &j); code != http.StatusOK {
		r.t.Fatalf("GET /api/v1/journal: %d", code)
	}
	return j
}

// metricSamples returns the samples of /metrics whose series starts with
// prefix, by series (name and labels).
func (r *runningAgent) metricSamples(prefix string) map[string]float64 {
	r.t.Helper()
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if series, v, ok := strings.Cut(line, " "); ok && strings.HasPrefix(series, prefix) {
			out[series], _ = strconv.ParseFloat(v, 64)
		}
	}
	return out
}

// eventually waits up to limit for cond, saying what it waited for.
func (r *runningAgent) eventually(limit time.Duration, what string, cond func() bool) {
	r.t.Helper()
	testenv.EventuallyState(r.t, what, limit, func() (bool, any) { return cond(), agentState{r} })
}

// agentState describes the agent for a failure: its journal's health and
// its log, read only when printed.
type agentState struct{ r *runningAgent }

func (s agentState) String() string {
	var j JournalResponse
	code := s.r.get("/api/v1/journal", &j) // never Fatal here: this describes another failure
	return fmt.Sprintf("journal (HTTP %d) %+v; log:\n%s", code, j.Health, s.r.log)
}

// serving checks the agent answers its API while the journal is down.
func (r *runningAgent) serving() {
	r.t.Helper()
	var pods PodsResponse
	if code := r.get("/api/v1/pods", &pods); code != http.StatusOK || len(pods.Pods) < 10 {
		r.t.Fatalf("GET /api/v1/pods: %d, %d pods: the agent does not keep serving", code, len(pods.Pods))
	}
}

// settle stops the simulated node, waits until no transition is produced
// or streamed any more, then compares: the journal holds exactly the
// transitions the stream delivered (after the entries it held before,
// before), in order, none lost, none twice.
func (r *runningAgent) settle(before []journal.Entry) {
	r.t.Helper()
	r.node.Close() // the sources go down: a last few transitions, then quiet
	last, stable := -1, 0
	r.eventually(60*time.Second, "the transitions to settle", func() bool {
		r.mu.Lock()
		n := len(r.records)
		r.mu.Unlock()
		j := r.journal()
		if n == last && j.Health.Unwritten == 0 && j.Stats.LastSeq == uint64(len(before)+n) {
			stable++
		} else {
			last, stable = n, 0
		}
		return stable >= 10
	})
	r.stop()
	j, err := journal.Open(filepath.Clean(r.journalPath()), journal.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	defer j.Close()
	entries, err := j.Pending(0)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tail) > 0 {
		r.t.Errorf("the stream ended with %q", r.tail)
	}
	compareJournal(r.t, entries, before, r.records)
}

func (r *runningAgent) journalPath() string {
	var p string
	for _, l := range r.log.lines("podlife agent started") {
		var e struct{ Journal string }
		json.Unmarshal([]byte(l), &e)
		p = e.Journal
	}
	return p
}

// compareJournal checks that entries are the entries before, untouched,
// then the recorded transitions, in order, with contiguous sequences.
func compareJournal(t *testing.T, entries, before []journal.Entry, records []Record) {
	t.Helper()
	for i, e := range entries {
		if e.Seq != entries[0].Seq+uint64(i) {
			t.Fatalf("journal sequences not contiguous at %d: %d after %d", i, e.Seq, entries[i-1].Seq)
		}
	}
	if len(entries) != len(before)+len(records) {
		t.Errorf("journal has %d entries, want %d held before + %d streamed", len(entries), len(before), len(records))
	}
	for i := range before {
		if i >= len(entries) || !reflect.DeepEqual(entries[i], before[i]) {
			t.Fatalf("entry %d held before the fault changed or went missing", before[i].Seq)
		}
	}
	for i, rec := range records {
		k := len(before) + i
		if rec.Seq != uint64(i+1) {
			t.Fatalf("stream record %d has seq %d: the stream itself lost or repeated one", i, rec.Seq)
		}
		if k >= len(entries) {
			t.Fatalf("transitions %d.. of the stream (%d) are not in the journal", i+1, len(records))
		}
		if !reflect.DeepEqual(jsonRound(t, entries[k].Transition), jsonRound(t, rec.Transition)) {
			t.Fatalf("journal entry %d is not the stream's transition %d:\n journal %+v\n stream  %+v", entries[k].Seq, rec.Seq,
				entries[k].Transition, rec.Transition)
		}
	}
	t.Logf("journal: %d entries (%d from before the fault), all %d streamed transitions once and in order", len(entries),
		len(before), len(records))
}

func jsonRound(t *testing.T, tr lifecycle.Transition) lifecycle.Transition {
	b, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	var out lifecycle.Transition
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// seed writes a journal at path with n pending entries and returns them.
func seed(t *testing.T, path string, n int) []journal.Entry {
	t.Helper()
	j, err := journal.Open(path, journal.Options{Node: "fault"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var ts []lifecycle.Transition
	for i := range n {
		ts = append(ts, lifecycle.Transition{Kind: lifecycle.TransitionContainerRestarted, Namespace: "old", Pod: fmt.Sprint("p", i),
			UID: fmt.Sprint("old-", i), Container: "c", ObservedAt: time.Now().UTC().Add(time.Duration(i-n) * time.Second)})
	}
	es, err := j.Append(time.Now().UTC(), ts) // recent: not dropped as too old
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// downOneLine checks the journal is reported down, with a one-line error
// containing want, in /api/v1/journal and /metrics, and logged once.
func (r *runningAgent) downOneLine(want, logged string) {
	r.t.Helper()
	var h JournalHealth
	r.eventually(30*time.Second, "the journal to be reported down with unwritten transitions", func() bool {
		h = r.journal().Health
		return !h.Up && h.Unwritten > 0
	})
	if !strings.Contains(h.Error, want) || strings.Contains(h.Error, "\n") {
		r.t.Errorf("journal error %q: want one line containing %q", h.Error, want)
	}
	m := r.metricSamples("podlife_journal_")
	if m["podlife_journal_up"] != 0 || m["podlife_journal_errors_total"] < 1 || m["podlife_journal_unwritten"] < 1 {
		r.t.Errorf("metrics while down: %v", m)
	}
	r.serving()
	// Still down a moment later, more held, still one line in the log.
	time.Sleep(2 * time.Second)
	r.serving()
	if n := len(r.log.lines(logged)); n != 1 {
		r.t.Errorf("%d log lines %q for one outage, want 1:\n%s", n, logged, strings.Join(r.log.lines(logged), "\n"))
	}
	r.t.Logf("down: %s (unwritten %d, errors %d)", h.Error, h.Unwritten, h.Errors)
}

// upAgain waits for the journal to recover by itself and write what it held.
func (r *runningAgent) upAgain() {
	r.t.Helper()
	r.eventually(90*time.Second, "the journal to recover and write what it held", func() bool {
		h := r.journal().Health
		return h.Up && h.Unwritten == 0
	})
	if m := r.metricSamples("podlife_journal_"); m["podlife_journal_up"] != 1 || m["podlife_journal_unwritten"] != 0 || m["podlife_journal_lost_total"] != 0 {
		r.t.Errorf("metrics after recovery: %v", m)
	}
	if len(r.log.lines("journal writable again")) != 1 {
		r.t.Errorf("no single recovery line in the log:\n%s", r.log)
	}
}

// The journal's faults, each against the agent as `podlife agent` runs it
// (agent.Run, the simulated node with churn as its sources): the agent keeps
// serving, reports the journal down in one line (API, metrics, one log line)
// or says what it moved aside, recovers by itself, and the journal ends up
// holding every transition once, in order, after what it held before.
func TestJournalFaults(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"full disk", func(t *testing.T) {
			dir := mountTmpfs(t, "2m")
			path := filepath.Join(dir, "journal.db")
			before := seed(t, path, 5)
			r := runAgent(t, path)
			r.eventually(30*time.Second, "first transitions journaled", func() bool { return r.journal().Stats.LastSeq > 5 })
			filler := filepath.Join(dir, "filler")
			out, err := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").CombinedOutput()
			if !strings.Contains(string(out), "No space left on device") {
				t.Fatalf("dd did not fill the tmpfs: %v: %s", err, out)
			}
			r.downOneLine("no space left on device", "journal write failed")
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			r.upAgain()
			r.settle(before)
		}},
		{"read-only directory, no journal yet", func(t *testing.T) {
			dir := mountTmpfs(t, "64m")
			remount(t, dir, "ro")
			r := runAgent(t, filepath.Join(dir, "journal.db"))
			r.downOneLine("read-only file system", "journal cannot be opened")
			remount(t, dir, "rw")
			r.upAgain()
			r.settle(nil)
		}},
		{"read-only directory holding a journal", func(t *testing.T) {
			dir := mountTmpfs(t, "64m")
			path := filepath.Join(dir, "journal.db")
			before := seed(t, path, 7)
			remount(t, dir, "ro")
			r := runAgent(t, path)
			r.downOneLine("read-only file system", "journal cannot be opened")
			remount(t, dir, "rw")
			r.upAgain()
			r.settle(before)
		}},
		{"locked by another process", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			before := seed(t, path, 3)
			// bbolt's lock is per open file: this process's own handle
			// stands for another agent still running.
			other, err := journal.Open(path, journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			r := runAgent(t, path)
			r.downOneLine("locked by another process", "journal cannot be opened")
			other.Close()
			r.upAgain()
			r.settle(before)
		}},
		{"truncated bbolt file", func(t *testing.T) {
			dir := mountTmpfs(t, "64m")
			path := filepath.Join(dir, "journal.db")
			seed(t, path, 500)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			movedAside(t, path, ".corrupt-", "journal file is corrupt")
		}},
		{"journal of an unknown format version", func(t *testing.T) {
			dir := mountTmpfs(t, "64m")
			path := filepath.Join(dir, "journal.db")
			seed(t, path, 5)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte{0, 0, 0, 0, 0, 0, 0, 9})
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			movedAside(t, path, ".unknown-format-", "format version 9 (this build reads 1)")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}

// movedAside runs the agent on the unusable journal at path: it starts,
// says in one line what it moved where, keeps the file byte for byte, and
// journals every transition in a fresh journal.
func movedAside(t *testing.T, path, suffix, reason string) {
	t.Helper()
	bad, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := runAgent(t, path)
	r.eventually(30*time.Second, "first transitions journaled", func() bool { return r.journal().Stats.LastSeq > 0 })
	h := r.journal().Health
	if !h.Up || len(h.MovedAside) != 1 {
		t.Fatalf("journal health %+v: want up, one file moved aside", h)
	}
	m := h.MovedAside[0]
	if !strings.HasPrefix(m.Path, path+suffix) || !strings.Contains(m.Reason, reason) || strings.Contains(m.Reason, "\n") {
		t.Errorf("moved aside %+v: want %s%s..., one line containing %q", m, path, suffix, reason)
	}
	if kept, err := os.ReadFile(m.Path); err != nil || !bytes.Equal(kept, bad) {
		t.Fatalf("the bad file was not kept as it was: %v", err)
	}
	if n := len(r.log.lines("journal unusable: moved aside")); n != 1 {
		t.Errorf("%d log lines about moving the journal aside, want 1:\n%s", n, r.log)
	}
	r.serving()
	t.Logf("moved aside: %s: %s", m.Path, m.Reason)
	r.settle(nil)
	if _, err := os.Stat(m.Path); errors.Is(err, os.ErrNotExist) {
		t.Fatal("the file moved aside is gone")
	}
}
