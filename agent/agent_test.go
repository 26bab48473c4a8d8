package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeSources serve a fixed state, changeable by tests.
type fakeSources struct {
	mu sync.Mutex
	rt cri.State
	kl kubelet.State
	ch chan struct{}
}

func (f *fakeSources) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (f *fakeSources) Updates() <-chan struct{}      { return f.ch }

type rtFake struct{ *fakeSources }
type klFake struct{ *fakeSources }

func (r rtFake) State() cri.State     { r.mu.Lock(); defer r.mu.Unlock(); return r.rt }
func (k klFake) State() kubelet.State { k.mu.Lock(); defer k.mu.Unlock(); return k.kl }

// generatedAgent is an agent over the generated node of internal/fixtures,
// its options adjusted by opts, after its first correlation.
func generatedAgent(t *testing.T, opts ...func(*Options)) (*Agent, *fakeSources) {
	t.Helper()
	n := fixtures.Build()
	body, err := json.Marshal(n.Pods)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := kubelet.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: fixtures.Now, Latency: 3 * time.Millisecond}
	f := &fakeSources{ch: make(chan struct{}, 1)}
	f.kl = kubelet.State{Pods: pods, Health: up, Generation: 1}
	sbs := map[string]*lifecycle.Sandbox{}
	for _, sb := range n.Sandboxes.Items {
		v := cri.ConvertSandbox(sb)
		sbs[v.ID] = &v
		f.rt.Sandboxes = append(f.rt.Sandboxes, v)
	}
	st := map[string]*runtimeapi.ContainerStatus{}
	for _, s := range n.Statuses {
		st[s.Status.Id] = s.Status
	}
	for _, c := range n.Containers.Containers {
		v := cri.ConvertContainer(c, st[c.Id], sbs)
		f.rt.Containers = append(f.rt.Containers, &v)
	}
	f.rt.Health = up
	now := fixtures.Now
	o := Options{Node: "node-a", Runtime: rtFake{f}, Kubelet: klFake{f}, HistorySize: 100,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
	for _, f := range opts {
		f(&o)
	}
	a := New(o)
	if !a.Correlate(context.Background()) {
		t.Fatal("first correlation gave no transitions")
	}
	return a, f
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./agent -update)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestHTTPAPI(t *testing.T) {
	a, f := generatedAgent(t)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	get := func(path string, code int) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != code {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return b
	}
	var pods PodsResponse
	body := get("/api/v1/pods", 200)
	json.Unmarshal(body, &pods)
	if pods.Node != "node-a" || len(pods.Pods) != 10 || !pods.Sources["runtime"].Up {
		t.Fatalf("pods %+v", pods)
	}
	for _, field := range []string{`"generatedAt"`, `"stageReason"`, `"unknownCause"`, `"lastTransitionTime"`, `"restartCount"`,
		`"containerID"`, `"runtime":{`, `"attempt"`, `"mismatches"`, `"kind":"sidecar"`, `"exitCode":137`} {
		if !strings.Contains(string(body), field) && field != `"unknownCause"` {
			t.Errorf("/api/v1/pods lacks %s", field)
		}
	}
	var one PodResponse
	json.Unmarshal(get("/api/v1/pods/shop/worker-6f7c9-klmno", 200), &one)
	if one.Stage != lifecycle.StageFailing || len(one.History) != 1 || one.History[0].Kind != lifecycle.TransitionPodAdded {
		t.Fatalf("pod %+v", one)
	}
	if b := get("/api/v1/pods/shop/nope", 404); !strings.Contains(string(b), `"error":"pod shop/nope not found on node node-a"`) {
		t.Fatalf("404 body %s", b)
	}
	get("/api/v1/transitions?since=yesterday", 400)
	var recs []Record
	json.Unmarshal(get("/api/v1/transitions?since="+fixtures.Now.Format(time.RFC3339), 200), &recs)
	if len(recs) != 10 {
		t.Fatalf("%d transitions since the generated node's time, want 10 PodAdded", len(recs))
	}
	get("/healthz", 200)
	get("/readyz", 200)
	if m := get("/metrics", 200); !strings.Contains(string(m), `podlife_transitions_total{kind="PodAdded"} 10`) {
		t.Fatal("metrics lack the transition counter")
	}

	// watch: the API streams a new transition as NDJSON.
	resp, err := http.Get(srv.URL + "/api/v1/transitions?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) { // the watch is registered
		a.mu.RLock()
		n := len(a.watchers)
		a.mu.RUnlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watch never registered")
		}
	}
	f.mu.Lock()
	f.kl.Health = lifecycle.SourceHealth{Configured: true, Up: false, LastSuccess: fixtures.Now, LastError: "connection refused"}
	f.mu.Unlock()
	a.Correlate(context.Background())
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	if json.Unmarshal([]byte(line), &r); r.Kind != lifecycle.TransitionSourceDown || r.Source != "kubelet" || r.Seq != 11 {
		t.Fatalf("watched %s", line)
	}
}

func TestReadyzBeforeSync(t *testing.T) {
	f := &fakeSources{ch: make(chan struct{})}
	a := New(Options{Node: "n", Runtime: rtFake{f}, Kubelet: klFake{f}})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d before any source answered", resp.StatusCode)
	}
	if a.Correlate(context.Background()) {
		t.Fatal("correlated before the sources were asked")
	}
}

func TestHistoryIsBounded(t *testing.T) {
	a, _ := generatedAgent(t)
	a.opts.HistorySize = 3
	var trs []lifecycle.Transition
	for i := 0; i < 5; i++ {
		trs = append(trs, lifecycle.Transition{Kind: lifecycle.TransitionStageStuck, UID: "u", Pod: "p"})
	}
	a.record(trs)
	if h := a.Since(time.Time{}); len(h) != 3 || h[2].Seq != 15 {
		t.Fatalf("history %d, last %+v", len(h), h[len(h)-1])
	}
	if p := a.PodHistory("u"); len(p) != 3 {
		t.Fatalf("pod history %d", len(p))
	}
	// One at a time past the bound: always exactly the last ones, in order,
	// in an array that never grows past the bound and its eighth.
	a.opts.HistorySize = 16
	for i := 0; i < 50; i++ {
		a.record(trs[:1])
		want := min(16, 3+i+1) // the 3 kept above, then each new one
		for _, h := range [][]Record{a.Since(time.Time{}), a.PodHistory("u")} {
			if len(h) != want || h[len(h)-1].Seq != a.seq || h[0].Seq != a.seq-uint64(want)+1 {
				t.Fatalf("after %d more: %d records, seq %d to %d; want %d ending at %d", i+1, len(h), h[0].Seq, h[len(h)-1].Seq, want, a.seq)
			}
		}
		if len(a.history) > 16+2 {
			t.Fatalf("the history array holds %d records for a bound of 16", len(a.history))
		}
	}
}

// GET /api/v1/pods encodes exactly what json.Marshal does, and after one
// container changed encodes only its pod again.
func TestPodsJSONReusesUnchangedViews(t *testing.T) {
	a, f := generatedAgent(t)
	check := func(pods []*lifecycle.PodView) {
		t.Helper()
		want, err := json.Marshal(pods)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.views.render(pods); !bytes.Equal(got, want) {
			t.Fatalf("rendered pods differ from json.Marshal:\n%s\n%s", got, want)
		}
	}
	check(a.Snapshot().Pods)
	before := map[string]*byte{}
	for uid, e := range a.views.byUID {
		before[uid] = &e.data[0]
	}
	f.mu.Lock()
	f.rt.Containers = slices.Clone(f.rt.Containers)
	i := slices.IndexFunc(f.rt.Containers, func(c *lifecycle.Container) bool { return c.State == lifecycle.RuntimeRunning })
	changed := *f.rt.Containers[i] // a change is a new record: the old one is shared
	f.rt.Containers[i] = &changed
	changed.State, changed.ExitCode, changed.FinishedAt = lifecycle.RuntimeExited, 9, fixtures.Now
	f.rt.Generation++
	f.mu.Unlock()
	if !a.Correlate(context.Background()) {
		t.Fatal("the change gave no transitions")
	}
	pods := a.Snapshot().Pods
	check(pods)
	for _, p := range pods {
		reused := before[p.UID] == &a.views.byUID[p.UID].data[0]
		if reused == (p.UID == changed.PodUID) {
			t.Errorf("pod %s (changed: %v) reused: %v", p.Key(), p.UID == changed.PodUID, reused)
		}
	}
	check([]*lifecycle.PodView{})
}

// GET /api/v1/pods serves the new view of a pod whose only change between
// snapshots is its stage reason, or its unknown cause: the per-pod encoding
// cache must not take it for the view it encoded before.
func TestPodsBodyFollowsReasonAndCause(t *testing.T) {
	tests := []struct {
		field  string
		change func(*lifecycle.PodView)
		got    func(*lifecycle.PodView) string
		want   string
	}{
		{"stageReason", func(p *lifecycle.PodView) { p.StageReason = "a reason no pod had" },
			func(p *lifecycle.PodView) string { return p.StageReason }, "a reason no pod had"},
		{"unknownCause", func(p *lifecycle.PodView) { p.UnknownCause = "a-cause-no-pod-had" },
			func(p *lifecycle.PodView) string { return string(p.UnknownCause) }, "a-cause-no-pod-had"},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			a, _ := generatedAgent(t)
			srv := httptest.NewServer(a.Handler())
			defer srv.Close()
			get := func() (PodsResponse, []byte) {
				t.Helper()
				resp, err := http.Get(srv.URL + "/api/v1/pods")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				var r PodsResponse
				if err == nil {
					err = json.Unmarshal(b, &r)
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /api/v1/pods: %d %v", resp.StatusCode, err)
				}
				return r, b
			}
			_, before := get()
			// The next snapshot has the same views but one, whose only change is tc.field.
			const i = 3
			a.mu.Lock()
			next := *a.snap
			next.Pods = slices.Clone(next.Pods)
			changed := *next.Pods[i] // views are never modified: a new one
			tc.change(&changed)
			next.Pods[i] = &changed
			a.snap = &next
			a.mu.Unlock()
			got, after := get()
			if bytes.Equal(before, after) || len(got.Pods) != len(next.Pods) || tc.got(got.Pods[i]) != tc.want {
				t.Fatalf("after %s of pod %s changed, /api/v1/pods serves %s=%q, want %q (body changed: %v)",
					tc.field, next.Pods[i].Key(), tc.field, tc.got(got.Pods[i]), tc.want, !bytes.Equal(before, after))
			}
			want, err := json.Marshal(next.Pods)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(after, want) {
				t.Fatal("/api/v1/pods differs from json.Marshal of the snapshot's pods")
			}
		})
	}
}

// A kubelet that lists a pod for a moment without its containers' statuses
// (it restarted, or its Pods API gave way to /pods) and then with the same
// ones: the container's "running since T" is recorded once however often
// that happens (lifecycle.Reported).
func TestKubeletRelistingIsNotNews(t *testing.T) {
	a, f := generatedAgent(t)
	var pod int = -1
	for i, p := range f.kl.Pods {
		if len(p.Containers) > 0 && p.Containers[0].State.Kind == lifecycle.StateRunning && !p.Containers[0].State.StartedAt.IsZero() {
			pod = i
			break
		}
	}
	if pod < 0 {
		t.Fatal("no pod with a running container in the fixture")
	}
	full := f.kl.Pods[pod].Containers
	name, started := full[0].Name, full[0].State.StartedAt
	set := func(cs []lifecycle.ContainerStatus) {
		f.mu.Lock()
		pods := slices.Clone(f.kl.Pods)
		changed := *pods[pod] // a record is never modified: a new one
		changed.Containers = cs
		pods[pod] = &changed
		f.kl.Pods, f.kl.Generation = pods, f.kl.Generation+1
		f.mu.Unlock()
		a.Correlate(context.Background())
	}
	for range 3 {
		set(nil)
		set(full)
	}
	n := 0
	for _, r := range a.Since(time.Time{}) {
		if r.Container == name && r.Source == lifecycle.SourceKubelet && r.To == string(lifecycle.StateRunning) && r.HappenedAt.Equal(started) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%q running since %s recorded %d times over 3 relistings, want once", name, started, n)
	}
}
