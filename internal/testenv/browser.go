package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's Chromium (package chromium; make tools installs it).
const ChromiumPath = "/usr/bin/chromium"

// Browser is headless Chromium driven over the DevTools protocol
// (chromedp), with every console error, uncaught exception, error of the
// browser log and request of its page recorded.
type Browser struct {
	Ctx context.Context

	mu       sync.Mutex
	errors   []string
	requests []string
}

// StartBrowser starts headless Chromium with a fresh profile and nothing
// that reaches out on its own (no background networking, component updates
// or sync: this machine has no network beyond loopback). t.Cleanup stops it
// by PID.
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("headless browser tests need Debian's chromium (make tools installs it): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(ChromiumPath), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true)}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &Browser{Ctx: ctx}
	stop := func() { cancel(); cancelAlloc() }
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		stop()
		t.Fatalf("start %s: %v", ChromiumPath, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == "assert" {
				b.add(&b.errors, string(m.Type)+": "+m.Text+" "+m.URL)
			}
		}
	})
	wg.Go(func() {
		for ev, err := range chromedp.Events(ctx, network.RequestWillBeSent) {
			if err != nil {
				return
			}
			b.add(&b.requests, ev.Request.URL)
		}
	})
	pid := chromedp.FromContext(ctx).Browser.Process().Pid
	t.Cleanup(func() {
		stop()
		wg.Wait()
		if p, err := os.FindProcess(pid); err == nil {
			p.Kill() // normally gone already: chromedp stops it with the context
		}
	})
	return b
}

func (b *Browser) add(to *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*to = append(*to, s)
}

// Errors returns the console errors, exceptions and error log entries seen.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Requests returns the URLs the page requested, in order.
func (b *Browser) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// Do runs actions with a hang guard of limit.
func (b *Browser) Do(t testing.TB, limit time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, limit)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v (errors seen: %q)", err, b.Errors())
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// into T.
func Eval[T any](t testing.TB, b *Browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, time.Minute) // a hang guard
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("browser: evaluate %s: %v (errors seen: %q)", expr, err, b.Errors())
	}
	return v
}

// BrowserVersion is what the browser the tests drive says it is.
func BrowserVersion() string {
	out, err := exec.Command(ChromiumPath, "--version").Output()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}
