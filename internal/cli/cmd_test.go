package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// fakeAgent serves the agent's API paths the commands read, and records the
// paths asked.
func fakeAgent(t *testing.T) (url string, asked func() []string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	view := func(ns, name string) lifecycle.PodView {
		return lifecycle.PodView{Namespace: ns, Name: name, Stage: lifecycle.StageServing, StageReason: "Serving: 0/0 containers ready"}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.PodsResponse{Node: "n1", Pods: []*lifecycle.PodView{new(view("a", "p")), new(view("b", "q"))}})
	})
	mux.HandleFunc("GET /api/v1/pods/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.PodResponse{PodView: view(r.PathValue("ns"), r.PathValue("name"))})
	})
	mux.HandleFunc("GET /api/v1/transitions", func(w http.ResponseWriter, r *http.Request) {
		for i, ns := range []string{"a", "b"} {
			json.NewEncoder(w).Encode(api.Record{Seq: uint64(i + 1), Transition: lifecycle.Transition{
				Kind: lifecycle.TransitionPodAdded, Namespace: ns, Pod: "p", ObservedAt: time.Now()}})
		}
	})
	mux.HandleFunc("GET /api/v1/journal", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(api.JournalResponse{Health: api.JournalHealth{Up: true}})
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		p := paths
		paths = nil
		return p
	}
}

// Each command reads what it says from the agent and prints it; a command
// line it cannot run is a usage error, --help is pflag.ErrHelp (exit code 0).
func TestCommands(t *testing.T) {
	server, asked := fakeAgent(t)
	run := map[string]func(context.Context, []string, *bytes.Buffer) error{
		"pods":     func(ctx context.Context, a []string, b *bytes.Buffer) error { return RunPods(ctx, a, b) },
		"describe": func(ctx context.Context, a []string, b *bytes.Buffer) error { return RunDescribe(ctx, a, b) },
		"watch":    func(ctx context.Context, a []string, b *bytes.Buffer) error { return RunWatch(ctx, a, b) },
		"journal":  func(ctx context.Context, a []string, b *bytes.Buffer) error { return RunJournal(ctx, a, b) },
		"logs":     func(ctx context.Context, a []string, b *bytes.Buffer) error { return RunLogs(ctx, a, b) },
	}
	tests := []struct {
		args []string
		path string // the paths asked, space-separated ("": none)
		out  string // in the output
		pods int    // how many pods it shows (0: not checked)
		err  string // the error's start ("": none)
	}{
		{[]string{"pods"}, "/api/v1/pods", "a          p     Serving", 2, ""},
		{[]string{"pods", "-n", "b", "-o", "json"}, "/api/v1/pods", `"namespace": "b",` + "\n" + `      "name": "q"`, 1, ""},
		{[]string{"describe", "x", "-n", "a"}, "/api/v1/pods/a/x /api/v1/pods/a/x/logs", "Name:          x\nNamespace:     a\n", 0, ""},
		{[]string{"describe", "a/y", "-o", "yaml"}, "/api/v1/pods/a/y", "namespace: a\n", 0, ""},
		{[]string{"journal"}, "/api/v1/journal", "health: up;", 0, ""},
		{[]string{"pods", "-o", "xml"}, "", "", 0, `usage: -o "xml": want json or yaml`},
		{[]string{"describe", "x"}, "", "", 0, "usage: describe NAMESPACE/POD (or describe POD -n NAMESPACE)"},
		{[]string{"watch", "--direct"}, "", "", 0, "usage: watch follows an agent's transitions; --direct reads the sources once"},
		{[]string{"pods", "--context", "c"}, "", "", 0, "usage: --context goes with --node NODE"},
		{[]string{"logs", "a/x", "--all", "--attempt", "1"}, "", "", 0, "usage: --attempt N or --all: give one"},
		{[]string{"logs", "x"}, "", "", 0, "usage: logs NAMESPACE/POD (or logs POD -n NAMESPACE)"},
		{[]string{"logs", "a/x", "--direct"}, "", "", 0, "usage: logs reads the agent's crash black box"},
		{[]string{"journal", "--bogus"}, "", "", 0, "usage: unknown flag: --bogus"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			asked()
			var out bytes.Buffer
			err := run[tc.args[0]](context.Background(), append(tc.args[1:], "--server", server), &out)
			paths := asked()
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (!errors.Is(err, ErrUsage) || !strings.HasPrefix(err.Error(), tc.err)):
				t.Fatalf("error %v, want a usage error %q", err, tc.err)
			case !strings.Contains(out.String(), tc.out):
				t.Fatalf("output:\n%s\nwant in it:\n%s", out.String(), tc.out)
			case tc.pods > 0 && strings.Count(out.String(), "0/0 containers ready") != tc.pods:
				t.Fatalf("output:\n%s\nwant %d pods", out.String(), tc.pods)
			case tc.path != "" && strings.Join(paths, " ") != tc.path:
				t.Fatalf("asked %v, want %s", paths, tc.path)
			case tc.path == "" && len(paths) != 0:
				t.Fatalf("asked %v, want nothing asked", paths)
			}
		})
	}
	for _, cmd := range []string{"pods", "describe", "watch", "journal"} {
		var out bytes.Buffer
		if err := run[cmd](context.Background(), []string{"--help"}, &out); !errors.Is(err, pflag.ErrHelp) {
			t.Errorf("%s --help: %v, want pflag.ErrHelp", cmd, err)
		}
	}
}

// watch prints each transition of the stream (of one namespace with -n), one
// a line, until the agent ends it.
func TestWatchCommand(t *testing.T) {
	server, _ := fakeAgent(t)
	var out bytes.Buffer
	err := RunWatch(context.Background(), []string{"-n", "b", "--server", server}, &out)
	if err == nil || !strings.Contains(err.Error(), "ended the watch") {
		t.Fatalf("%v, want the end of the stream said", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "  PodAdded b/p") {
		t.Fatalf("%q, want the one transition of namespace b", out.String())
	}
}

// TestAttemptSummary: how an attempt's header reads, including one that
// exited as it started (containerd stamps startedAt after the start call, so
// finishedAt can come first: never a negative run time).
func TestAttemptSummary(t *testing.T) {
	at := time.Date(2026, 12, 6, 20, 44, 16, 0, time.UTC)
	for _, tc := range []struct {
		b    journal.BlackBox
		want string
	}{
		{journal.BlackBox{StartedAt: at, FinishedAt: at.Add(1500 * time.Millisecond), ExitCode: 3, Reason: "Error"},
			"started 2026-12-06T20:44:16Z, finished 2026-12-06T20:44:17Z, ran 1.5s, exit 3 Error"},
		{journal.BlackBox{StartedAt: at.Add(23 * time.Millisecond), FinishedAt: at, ExitCode: 137, Reason: "OOMKilled"},
			"started 2026-12-06T20:44:16Z, finished 2026-12-06T20:44:16Z, ran 0s, exit 137 OOMKilled"},
		{journal.BlackBox{FinishedAt: at, ExitCode: 1},
			"started -, finished 2026-12-06T20:44:16Z, exit 1"},
	} {
		if got := attemptSummary(&tc.b); got != tc.want {
			t.Errorf("attemptSummary(%+v) = %q, want %q", tc.b, got, tc.want)
		}
	}
}

// podlife ui serves on loopback, forwards reads to the agent, refuses
// another host name (DNS rebinding) and writes, and stops with its context.
func TestUICommand(t *testing.T) {
	agentURL, asked := fakeAgent(t)
	if err := RunUI(context.Background(), []string{"--server", agentURL, "--listen-address", "0.0.0.0:0"}, io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("--listen-address 0.0.0.0:0: %v, want a usage error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- RunUI(ctx, []string{"--server", agentURL}, w); w.Close() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("podlife ui printed %q: %v", line, err)
	}
	go io.Copy(io.Discard, out)
	page := strings.Fields(line)[2] // podlife ui: URL shows ...
	if !strings.HasPrefix(page, "http://127.0.0.1:") || !strings.HasSuffix(page, "/ui/") {
		t.Fatalf("podlife ui printed %q", line)
	}
	base := strings.TrimSuffix(page, "/ui/")
	get := func(method, host string) int {
		req, _ := http.NewRequest(method, base+"/api/v1/pods", nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(http.MethodGet, ""); code != 200 || !slices.Contains(asked(), "/api/v1/pods") {
		t.Errorf("GET /api/v1/pods through podlife ui: %d", code)
	}
	if code := get(http.MethodGet, "attacker.example:80"); code != http.StatusForbidden || len(asked()) != 0 {
		t.Errorf("another host name: %d, want 403 and nothing forwarded", code)
	}
	if code := get(http.MethodPost, ""); code != http.StatusMethodNotAllowed || len(asked()) != 0 {
		t.Errorf("POST: %d, want 405 and nothing forwarded", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("podlife ui after Ctrl-C: %v", err)
	}
}

// The forwarder passes only the page and the agent's API, by clean paths.
func TestUIForwardable(t *testing.T) {
	for p, want := range map[string]bool{"/ui/": true, "/ui/app.js": true, "/api/v1/pods": true, "/api/v1/pods/ns/web/logs": true,
		"/ui/../api/v1/pods": false, "/api/v1/../../secrets": false, "/api/v1//pods": false, "/api/v1/pods/%2e%2e/x": false,
		"/api/v1/pods/a%2Fb/c": false, "/metrics": false, "/debug/pprof/": false, "/apis/x": false} {
		if got := forwardable(p); got != want {
			t.Errorf("forwardable(%q) = %v, want %v", p, got, want)
		}
	}
}

// An agent's answer with a null pod is a clear error, not a crash of the
// CLI that prints it.
func TestPodsRefusesANullPod(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"node":"n1","pods":[{"namespace":"a","name":"p"},null]}`))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClientWith(srv.URL, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pods(context.Background()); err == nil || !strings.Contains(err.Error(), "pod 1 of 2 is null") {
		t.Fatalf("Pods with a null pod: %v, want pod 1 of 2 is null", err)
	}
}
