package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// uiChromium is Debian's Chromium (make tools installs it).
const uiChromium = "/usr/bin/chromium"

// uiCost measures the web page against the real agent on a simulated node of
// pods pods whose history holds at least transitions transitions (a burst of
// churn, then quiet): the time from navigation to the node page listing
// every pod, in a fresh tab each of runs times (median); the bytes that
// took; and the agent's CPU over window, idle, without a page and with one
// open.
func uiCost(bin string, pods, transitions, runs int, window time.Duration) int {
	dir, err := os.MkdirTemp("", "podlife-ui-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	churnFor := 5 * time.Second
	rate := float64(transitions) / churnFor.Seconds() / 2 // a restart makes at least 2 transitions
	endpoints, stopSim, err := startSim(bin, "simnode", "--pods", fmt.Sprint(pods), "--churn", fmt.Sprint(rate),
		"--churn-for", churnFor.String(), "--dir", dir)
	if err != nil {
		return fail(err)
	}
	defer stopSim()
	agent, base, stopAgent, err := startAgentProc(bin, "agent", "--node-name", "ui", "--cri-endpoint", endpoints["cri-endpoint"],
		"--kubelet-url", endpoints["kubelet-url"], "--kubelet-pods-api-socket="+endpoints["kubelet-pods-api-socket"],
		"--insecure-listen-address", "127.0.0.1:0", "--upstream", "off", "--log-level", "error", "--stuck-threshold", "0")
	if err != nil {
		return fail(err)
	}
	defer stopAgent()
	// The burst of churn, then quiet: the history full, nothing changing.
	n := 0
	for deadline := time.Now().Add(time.Minute); n < transitions && time.Now().Before(deadline); time.Sleep(time.Second) {
		var recs []json.RawMessage
		if getJSON(base+"/api/v1/transitions", &recs) == nil {
			n = len(recs)
		}
	}
	time.Sleep(churnFor + 3*time.Second) // past the burst and the kubelet's lag

	ctx, cancel := uiBrowser()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		return fail(err)
	}
	var firsts, walls []float64 // the page's own mark from navigation start; the wall clock around the DevTools calls
	var bytes float64
	for r := 0; r < runs; r++ {
		tab, closeTab := chromedp.NewContext(ctx)
		start := time.Now()
		err := chromedp.Do(tab, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(`#pods tbody tr`))
		if err == nil {
			_, err = chromedp.Run(tab, chromedp.Poll[bool](fmt.Sprintf(`document.querySelectorAll('#pods tbody tr').length >= %d`, pods)))
		}
		if err != nil {
			closeTab()
			return fail(fmt.Errorf("render: %w", err))
		}
		wall := float64(time.Since(start).Microseconds()) / 1000
		mark, err := chromedp.Run(tab, chromedp.Evaluate[float64](`performance.getEntriesByName('podlife:first-render')[0].startTime`))
		if err != nil {
			closeTab()
			return fail(fmt.Errorf("the page's first-render mark: %w", err))
		}
		firsts = append(firsts, mark)
		walls = append(walls, wall)
		b, _ := chromedp.Run(tab, chromedp.Evaluate[float64](`performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0)`))
		bytes = b
		closeTab()
	}
	idle := agentCPU(agent.Process.Pid, window)
	tab, closeTab := chromedp.NewContext(ctx)
	defer closeTab()
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(`#pods tbody tr`)); err != nil {
		return fail(err)
	}
	time.Sleep(2 * time.Second) // the page's first requests
	open := agentCPU(agent.Process.Pid, window)
	slices.Sort(firsts)
	slices.Sort(walls)
	fmt.Printf("web page, %d pods, %d transitions in the agent's history (%s):\n", pods, n, uiVersion())
	fmt.Printf("  first render (navigation start to every pod listed, the page's performance mark), %d fresh tabs: median %.0f ms (min %.0f, max %.0f);\n"+
		"  as the harness sees it (navigate, then DevTools polls for the rows): median %.0f ms\n",
		runs, median(firsts), firsts[0], firsts[len(firsts)-1], median(walls))
	fmt.Printf("  transferred for it: %.0f bytes (document, CSS, script, /api/v1/pods)\n", bytes)
	fmt.Printf("  agent CPU over %s, idle: %.3f %% of a core without a page, %.3f %% with one open (+%.3f)\n",
		window, idle, open, open-idle)
	return 0
}

// uiBrowser starts headless Chromium with nothing that reaches out on its own.
func uiBrowser() (context.Context, context.CancelFunc) {
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(uiChromium), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	ctx, cancel := chromedp.NewContext(actx)
	return ctx, func() { cancel(); cancelAlloc() }
}

// agentCPU is pid's CPU over window, in % of a core.
func agentCPU(pid int, window time.Duration) float64 {
	t0, w0 := cpuSeconds(pid), time.Now()
	time.Sleep(window)
	return (cpuSeconds(pid) - t0) / time.Since(w0).Seconds() * 100
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func uiVersion() string {
	out, err := exec.Command(uiChromium, "--version").Output()
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(out))
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "loadharness -ui:", err)
	return 1
}
