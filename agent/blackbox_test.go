package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podlife/podlife/cri/crilog"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// boxNode is a runtime with exited containers whose log files a test writes.
type boxNode struct {
	dir string // pod logs root
	f   *fakeSources
}

func newBoxNode(t *testing.T) *boxNode {
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: time.Now()}
	f := &fakeSources{ch: make(chan struct{}, 1)}
	f.rt.Health, f.kl = up, kubelet.State{Health: up}
	return &boxNode{dir: t.TempDir(), f: f}
}

// exit adds an exited attempt of container name of pod ns/p whose log file
// (relative, as the kubelet's, under the pod's log directory) holds log.
func (n *boxNode) exit(t *testing.T, ns, p, name string, attempt uint32, code int32, reason, log string) {
	t.Helper()
	rel := filepath.Join(name, strconv.Itoa(int(attempt))+".log")
	if log != "" {
		path := filepath.Join(n.dir, ns+"_"+p+"_uid-"+p, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Date(2026, 12, 6, 10, 0, int(attempt), 0, time.UTC)
	n.f.mu.Lock()
	n.f.rt.Containers = append(n.f.rt.Containers, &lifecycle.Container{ID: p + "-" + name + "-" + strconv.Itoa(int(attempt)), PodUID: "uid-" + p,
		PodName: p, PodNamespace: ns, Name: name, Attempt: attempt, State: lifecycle.RuntimeExited, StartedAt: start,
		FinishedAt: start.Add(500 * time.Millisecond), ExitCode: code, Reason: reason, LogPath: rel})
	n.f.mu.Unlock()
	select {
	case n.f.ch <- struct{}{}:
	default:
	}
}

// run starts an agent on the node with the journal at path; stop ends it.
func (n *boxNode) run(t *testing.T, path string) (a *Agent, srv *httptest.Server, stop func()) {
	t.Helper()
	o := Options{Node: "node-a", Runtime: rtFake{n.f}, Kubelet: klFake{n.f}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenJournal: func() (*journal.Journal, *journal.MovedAside, error) {
			return journal.OpenOrMoveAside(path, journal.Options{}, time.Now())
		},
		BlackBox: BlackBoxOptions{Tail: crilog.Limits{Lines: 3, Bytes: 1024}, Keep: journal.BoxLimits{PerContainer: 10, MaxBytes: 1 << 20},
			PodLogsDir: n.dir}}
	a = New(o)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	srv = httptest.NewServer(a.Handler())
	return a, srv, func() { srv.Close(); cancel(); wg.Wait(); a.Close() }
}

func logsOf(t *testing.T, srv *httptest.Server, path string) (LogsResponse, int) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r LogsResponse
	json.NewDecoder(resp.Body).Decode(&r)
	return r, resp.StatusCode
}

// Every exit the runtime shows is captured once: its last lines within the
// limits, its exit code and reason; a log file that is gone still records
// the exit, with why; a restarted agent captures what exited since, and not
// again what it had.
func TestBlackBoxCapturesEveryExitOnce(t *testing.T) {
	n := newBoxNode(t)
	path := filepath.Join(t.TempDir(), "journal.db")
	n.exit(t, "ns", "web", "app", 0, 3, "Error", "2026-12-06T10:00:00.1Z stdout F one\n2026-12-06T10:00:00.2Z stderr F two\n"+
		"2026-12-06T10:00:00.3Z stdout P thr\n2026-12-06T10:00:00.4Z stdout F ee\n2026-12-06T10:00:00.5Z stdout F four \xff\n")
	n.exit(t, "ns", "web", "side", 0, 137, "OOMKilled", "")
	n.exit(t, "ns", "web", "live", 0, 0, "", "2026-12-06T10:00:00.1Z stdout F still running\n")
	n.f.rt.Containers[2].State = lifecycle.RuntimeRunning // not an exit: never captured
	_, srv, stop := n.run(t, path)
	var r LogsResponse
	testenv.Eventually(t, "both attempts of ns/web captured", 10*time.Second, func() bool {
		r, _ = logsOf(t, srv, "/api/v1/pods/ns/web/logs")
		return len(r.Attempts) == 2
	})
	app, side := r.Attempts[0], r.Attempts[1]
	var texts []string
	for _, l := range app.Lines {
		texts = append(texts, l.Stream+":"+l.Text)
	}
	if got := strings.Join(texts, "|"); got != `stderr:two|stdout:three|stdout:four \xff` || !app.Truncated || app.ExitCode != 3 || app.Reason != "Error" {
		t.Errorf("app attempt 0: lines %q truncated=%v exit %d %s; want the last 3 lines, partials joined, invalid UTF-8 escaped, exit 3 Error",
			got, app.Truncated, app.ExitCode, app.Reason)
	}
	if raw := string(app.Lines[2].Raw); raw != "four \xff" {
		t.Errorf("raw bytes of an invalid UTF-8 line = %q, want them as written", raw)
	}
	if side.Reason != "OOMKilled" || side.ExitCode != 137 || len(side.Lines) != 0 || !strings.Contains(side.CaptureError, "is gone") {
		t.Errorf("side: %+v, want the OOMKilled exit kept with why it has no lines", side)
	}
	if only, _ := logsOf(t, srv, "/api/v1/pods/ns/web/logs?container=side&attempt=0"); len(only.Attempts) != 1 || only.Attempts[0].Container != "side" {
		t.Errorf("?container=side&attempt=0: %+v", only.Attempts)
	}
	for q, code := range map[string]int{"/api/v1/pods/ns/web/logs?attempt=x": 400, "/api/v1/pods/ns/web/logs?container=A_B": 400,
		"/api/v1/pods/NS/web/logs": 400, "/api/v1/pods/ns/gone/logs": 200} {
		if _, got := logsOf(t, srv, q); got != code {
			t.Errorf("GET %s: %d, want %d", q, got, code)
		}
	}
	stop()

	n.exit(t, "ns", "web", "app", 1, 1, "Error", "2026-12-06T10:00:01.1Z stdout F after the restart\n")
	a, srv, stop := n.run(t, path)
	defer stop()
	testenv.Eventually(t, "the attempt that exited while the agent was down captured", 10*time.Second, func() bool {
		r, _ = logsOf(t, srv, "/api/v1/pods/ns/web/logs?container=app")
		return len(r.Attempts) == 2
	})
	if r.Attempts[0].Attempt != 0 || r.Attempts[1].Attempt != 1 || r.Attempts[1].Lines[0].Text != "after the restart" {
		t.Errorf("after a restart: %+v", r.Attempts)
	}
	all, _ := logsOf(t, srv, "/api/v1/pods/ns/web/logs")
	if len(all.Attempts) != 3 {
		t.Errorf("after a restart the black box holds %d attempts, want 3 (nothing captured twice)", len(all.Attempts))
	}
	captured, unreadable := a.box.captures.WithLabelValues(blackBoxCaptureResultOK).n.Load(), a.box.captures.WithLabelValues(blackBoxCaptureResultNoFile).n.Load()
	if captured != 1 || unreadable != 0 {
		t.Errorf("the restarted agent captured %d and found %d unreadable, want 1 and 0: what the journal held is not read again", captured, unreadable)
	}
}

// lastLines finds the attempt an exit transition ended: the runtime's exact
// finishedAt, the kubelet's to the second, the latest finished by the time
// of a transition that names no time; an attempt not captured yet is not
// kept, so its Event waits (upstream.ReporterConfig.LogLines).
func TestBlackBoxLastLinesOfATransition(t *testing.T) {
	n := newBoxNode(t)
	n.exit(t, "ns", "web", "app", 0, 3, "Error", "2026-12-06T10:00:00.1Z stdout F zero\n")
	n.exit(t, "ns", "web", "app", 1, 3, "Error", "2026-12-06T10:00:01.1Z stdout F one-a\n2026-12-06T10:00:01.2Z stderr F one-b\n")
	a, srv, stop := n.run(t, filepath.Join(t.TempDir(), "journal.db"))
	defer stop()
	testenv.Eventually(t, "both attempts captured", 10*time.Second, func() bool {
		r, _ := logsOf(t, srv, "/api/v1/pods/ns/web/logs")
		return len(r.Attempts) == 2
	})
	fin := func(attempt int) time.Time { return time.Date(2026, 12, 6, 10, 0, attempt, 500_000_000, time.UTC) }
	tr := func(uid string, happened, observed time.Time) lifecycle.Transition {
		return lifecycle.Transition{Namespace: "ns", Pod: "web", UID: uid, Container: "app", HappenedAt: happened, ObservedAt: observed}
	}
	for _, tc := range []struct {
		name string
		t    lifecycle.Transition
		want string
		kept bool
	}{
		{"runtime: exact finishedAt", tr("uid-web", fin(0), fin(9)), "zero", true},
		{"kubelet: to the second", tr("uid-web", fin(1).Truncate(time.Second), fin(9)), "one-a|one-b", true},
		{"no time: the latest by then", tr("uid-web", time.Time{}, fin(1)), "one-a|one-b", true},
		{"no time, observed before any finished", tr("uid-web", time.Time{}, fin(0).Add(-time.Second)), "", false},
		{"an attempt not captured yet", tr("uid-web", fin(2), fin(9)), "", false},
		{"another incarnation of the pod", tr("uid-other", fin(0), fin(9)), "", false},
	} {
		lines, kept := a.box.lastLines(tc.t)
		if got := strings.Join(lines, "|"); got != tc.want || kept != tc.kept {
			t.Errorf("%s: lines %q, kept %v; want %q, %v", tc.name, got, kept, tc.want, tc.kept)
		}
	}
}

// A log file missing at the exit, in a pod log directory that exists, is
// read once more (the kubelet's rotation renames it and, for an exited
// container, back); in a directory that is missing it is not waited for.
func TestBlackBoxRereadsAFileMissingInARotation(t *testing.T) {
	n := newBoxNode(t)
	b := newBlackBox(BlackBoxOptions{Tail: crilog.Limits{Lines: 3, Bytes: 1024}, PodLogsDir: n.dir}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	dir := filepath.Join(n.dir, "ns_web_uid-web", "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	retries := 0
	b.beforeRetry = func() { // the kubelet renames the file back
		retries++
		os.WriteFile(filepath.Join(dir, "0.log"), []byte("2026-12-06T10:00:00.1Z stdout F back\n"), 0o644)
	}
	c := lifecycle.Container{ID: "c0", PodUID: "uid-web", PodName: "web", PodNamespace: "ns", Name: "app", LogPath: "app/0.log",
		State: lifecycle.RuntimeExited}
	if box := b.capture(&c); box.CaptureError != "" || len(box.Lines) != 1 || box.Lines[0].Text != "back" || retries != 1 {
		t.Errorf("file back after the rotation: %+v, %d retries", box, retries)
	}
	gone := lifecycle.Container{ID: "c1", PodUID: "uid-gone", PodName: "gone", PodNamespace: "ns", Name: "app", LogPath: "app/0.log",
		State: lifecycle.RuntimeExited}
	if box := b.capture(&gone); !strings.Contains(box.CaptureError, "is gone") || retries != 1 {
		t.Errorf("pod log directory missing: %+v, %d retries (want none)", box, retries)
	}
}

// GET /api/v1/pods is gzipped for a client that asks (a browser always
// does): the same answer, compressed once per snapshot.
func TestPodsGzipped(t *testing.T) {
	n := newBoxNode(t)
	_, srv, stop := n.run(t, filepath.Join(t.TempDir(), "journal.db"))
	defer stop()
	raw := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(enc string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/pods", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	var plain PodsResponse
	if resp, b := get(""); resp.Header.Get("Content-Encoding") != "" || json.Unmarshal(b, &plain) != nil || plain.Node != "node-a" {
		t.Fatalf("without Accept-Encoding: %q, %s", resp.Header.Get("Content-Encoding"), b)
	}
	resp, b := get("gzip, deflate, br")
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if resp.Header.Get("Content-Encoding") != "gzip" || err != nil {
		t.Fatalf("Accept-Encoding gzip: Content-Encoding %q, %v", resp.Header.Get("Content-Encoding"), err)
	}
	var unzipped PodsResponse
	if err := json.NewDecoder(zr).Decode(&unzipped); err != nil || unzipped.Node != "node-a" || unzipped.Pods == nil ||
		!unzipped.BlackBox || resp.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
		t.Errorf("gzipped answer: %+v, %v (Content-Length %s of %d)", unzipped, err, resp.Header.Get("Content-Length"), len(b))
	}
}
