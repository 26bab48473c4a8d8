package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/testenv"
)

// startDemo starts `podlife demo` on a free loopback port and returns the
// page's URL it prints. Cleanup kills it by PID.
func startDemo(t *testing.T, bin string) (ui string) {
	t.Helper()
	sc := startPrinting(t, bin, "demo", "--listen-address", "127.0.0.1:0")
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasSuffix(f[0], "/ui/") {
			go func() {
				for sc.Scan() {
				}
			}()
			return f[0]
		}
	}
	t.Fatalf("podlife demo printed no page URL")
	return ""
}

// artifactDir is where the browser tests write their screenshots:
// $PODLIFE_ARTIFACTS (make screenshots sets it to docs/screenshots), else a
// directory that outlives the test, named in its log.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("PODLIFE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "podlife-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshot writes the page as PNG to the artifact directory.
func screenshot(t *testing.T, b *testenv.Browser, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

// pageRows are the pods the node page lists (namespace/name), sorted.
func pageRows(t *testing.T, b *testenv.Browser) []string {
	rows := testenv.Eval[[]string](t, b, `[...document.querySelectorAll('#pods tbody tr')].map(r => r.dataset.pod)`)
	slices.Sort(rows)
	return rows
}

// apiRows are the pods the agent's API lists (namespace/name), sorted.
func apiRows(t *testing.T, base string) []string {
	var r agent.PodsResponse
	if code := getJSONFrom(base+"/api/v1/pods", &r); code != http.StatusOK {
		t.Fatalf("GET /api/v1/pods: %d", code)
	}
	var out []string
	for _, p := range r.Pods {
		out = append(out, p.Namespace+"/"+p.Name)
	}
	slices.Sort(out)
	return out
}

// nextExit follows the agent's transitions watch until the runtime reports
// container of pod ns/name exited, and returns that transition.
func nextExit(t *testing.T, base, ns, name, container string) agent.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard: the demo's crash loop exits every few seconds
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/transitions?watch=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var r agent.Record
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("watching for %s/%s's next exit: %v", ns, name, err)
		}
		if r.Namespace == ns && r.Pod == name && r.Container == container && r.Source == "runtime" && r.To == "EXITED" {
			return r
		}
	}
}

// TestUIDemo drives the page in headless Chromium against `podlife demo`:
// the node page lists every pod the API lists, with no console error and no
// request outside the agent; an exit during the test appears on the node
// page and on the pod's timeline without a reload; keyboard alone reaches a
// pod's timeline and a transition's detail; screenshots of both pages.
func TestUIDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("a real browser (Debian's chromium) and the demo: not in -short")
	}
	bin := buildPodlife(t)
	ui := startDemo(t, bin)
	base := strings.TrimSuffix(ui, "/ui/")
	b := testenv.StartBrowser(t)
	t.Logf("%s against %s", testenv.BrowserVersion(), ui)

	start := time.Now()
	b.Do(t, time.Minute, chromedp.Navigate(ui), chromedp.WaitVisible(`#pods tbody tr`))
	t.Logf("node page: first row shown %s after navigating", time.Since(start).Round(time.Millisecond))
	testenv.Eval[int](t, b, `window.podlifeTestMarker = 1`) // gone if the page reloads
	testenv.Eventually(t, "the node page listing every pod the API lists", time.Minute, func() bool {
		return slices.Equal(pageRows(t, b), apiRows(t, base))
	})

	t.Run("an exit appears on the node page without a reload", func(t *testing.T) {
		restarts := func() int {
			return testenv.Eval[int](t, b, `Number(document.querySelector('tr[data-pod="shop/worker"] td:nth-child(5)')?.textContent ?? -1)`)
		}
		before := restarts()
		exit := nextExit(t, base, "shop", "worker", "worker")
		seen := time.Now()
		testenv.Eventually(t, "the node page following the transitions watch past the exit", time.Minute, func() bool {
			return testenv.Eval[float64](t, b, `Number(document.body.dataset.lastSeq || 0)`) >= float64(exit.Seq)
		})
		onPage := time.Since(seen)
		// The exit is a restart: the API's count goes past what the page
		// showed before it, and the page follows.
		want := 0
		testenv.Eventually(t, "the API counting shop/worker's restart", time.Minute, func() bool {
			var api agent.PodResponse
			getJSONFrom(base+"/api/v1/pods/shop/worker", &api)
			want = 0
			for _, c := range api.Containers {
				want += int(c.RestartCount)
			}
			return want > before
		})
		testenv.Eventually(t, "shop/worker's row showing the restart", time.Minute, func() bool { return restarts() >= want })
		t.Logf("exit #%d (the runtime's, seen by the test's own watch) on the node page %s later; restarts %d -> %d (the kubelet's count, after its lag) %s later",
			exit.Seq, onPage.Round(time.Millisecond), before, want, time.Since(seen).Round(time.Millisecond))
		if testenv.Eval[int](t, b, `window.podlifeTestMarker || 0`) != 1 {
			t.Error("the page reloaded")
		}
	})
	screenshot(t, b, "node.png")

	t.Run("a dark theme when the system asks for one", func(t *testing.T) {
		light := testenv.Eval[string](t, b, `getComputedStyle(document.body).backgroundColor`)
		dark := func(on string) {
			ctx, cancel := context.WithTimeout(b.Ctx, time.Minute)
			defer cancel()
			if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: on}}}); err != nil {
				t.Fatal(err)
			}
		}
		dark("dark")
		defer dark("light")
		if got := testenv.Eval[string](t, b, `getComputedStyle(document.body).backgroundColor`); got == light {
			t.Errorf("background %s in both themes", got)
		}
		screenshot(t, b, "node-dark.png")
	})

	t.Run("keyboard alone reaches a pod's timeline and a transition", func(t *testing.T) {
		b.Do(t, time.Minute, chromedp.Navigate(ui), chromedp.WaitVisible(`tr[data-pod="shop/worker"]`))
		focused := ""
		for i := 0; i < 80 && focused != "#/pod/shop/worker"; i++ {
			b.Do(t, time.Minute, chromedp.KeyEvent(kb.Tab))
			focused = testenv.Eval[string](t, b, `document.activeElement.getAttribute('href') || ''`)
		}
		if focused != "#/pod/shop/worker" {
			t.Fatalf("Tab never reached shop/worker's link")
		}
		b.Do(t, time.Minute, chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`#timeline svg circle.mark`))
		if h := testenv.Eval[string](t, b, `location.hash`); h != "#/pod/shop/worker" {
			t.Fatalf("after Enter: %s", h)
		}
		for i := 0; i < 40 && testenv.Eval[string](t, b, `document.activeElement.getAttribute('data-seq') || ''`) == ""; i++ {
			b.Do(t, time.Minute, chromedp.KeyEvent(kb.Tab))
		}
		b.Do(t, time.Minute, chromedp.KeyEvent(kb.Enter))
		if got := testenv.Eval[string](t, b, `document.querySelector('#detail h3').textContent`); !strings.HasPrefix(got, "Transition #") {
			t.Errorf("the detail after Enter on a mark: %q", got)
		}
	})

	t.Run("an attempt's detail; zoom and pan stay within the history", func(t *testing.T) {
		b.Do(t, time.Minute, chromedp.WaitVisible(`#timeline rect.bar.failed`))
		testenv.Eval[bool](t, b, `document.querySelector('#timeline rect.bar.failed').focus() || true`)
		b.Do(t, time.Minute, chromedp.KeyEvent(kb.Enter))
		if n := testenv.Eval[int](t, b, `document.querySelectorAll('#detail dd time').length`); n != 2 {
			t.Errorf("an ended attempt's detail shows %d times (started, finished), want 2: %q", n,
				testenv.Eval[string](t, b, `document.querySelector('#detail').textContent`))
		}
		for range 40 {
			b.Do(t, time.Minute, chromedp.Click(`#zoom-out`), chromedp.Click(`#pan-right`))
		}
		b.Do(t, time.Minute, chromedp.Click(`#zoom-in`), chromedp.Click(`#pan-left`), chromedp.Click(`#fit`))
		if n := testenv.Eval[int](t, b, `document.querySelectorAll('#timeline .axis line').length`); n == 0 || n > 12 {
			t.Errorf("after zooming out and panning: %d axis ticks", n)
		}
	})

	t.Run("an exit appears on the pod's timeline without a reload", func(t *testing.T) {
		exit := nextExit(t, base, "shop", "worker", "worker")
		seen := time.Now()
		testenv.Eventually(t, "the exit's mark on the timeline", time.Minute, func() bool {
			return testenv.Eval[bool](t, b, `!!document.querySelector('#timeline circle[data-seq="`+strconv.FormatUint(exit.Seq, 10)+`"]')`)
		})
		t.Logf("exit #%d on shop/worker's timeline %s after the test saw it", exit.Seq, time.Since(seen).Round(time.Millisecond))
	})
	screenshot(t, b, "pod.png")

	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("console errors: %q", errs)
	}
	for _, u := range b.Requests() {
		if !strings.HasPrefix(u, base+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("a request outside the agent: %s", u)
		}
	}
	t.Logf("%d requests, all to %s", len(b.Requests()), base)
}
