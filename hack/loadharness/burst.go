package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// burstPaths are what the clients of a burst ask for, round robin: the
// expensive API reads the agent bounds, a watch, and the scrape it never refuses.
var burstPaths = []string{"/api/v1/pods", "/api/v1/pods/shop/worker", "/api/v1/transitions", "/metrics",
	"/api/v1/transitions?watch=true"}

// burstRun is what one burst of concurrent clients saw.
type burstRun struct {
	status    map[int]int // HTTP status -> clients
	failed    []string    // clients without an HTTP answer (first few)
	nFailed   int
	latencies []time.Duration // every client's time to its answer
	health    []time.Duration // /healthz during the burst
	healthBad int             // /healthz probes without a 200
	goroutinesBefore, goroutinesAfter,
	rssBefore, rssAfter float64
}

// burst starts `podlife demo` (the simulated node and the agent in one
// process), then runs a burst of n concurrent clients against it runs times,
// each client on its own connection, while a prober asks /healthz every 20 ms.
// It prints each run and the medians; it judges nothing but "every client has
// an answer", which is the agent's promise under any load.
func burst(bin string, n, runs int) int {
	cmd := exec.Command(bin, "demo", "--listen-address", "127.0.0.1:0", "--pods", "250", "--log-level", "error")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadharness: podlife demo:", err)
		return 1
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	base, err := demoURL(out, 30*time.Second)
	if err == nil {
		err = waitReady(base, 30*time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadharness:", err)
		return 1
	}
	fmt.Printf("burst: %d concurrent clients (each its own connection) against `%s demo --pods 250`, %d runs; paths round robin: %s\n",
		n, bin, runs, strings.Join(burstPaths, " "))
	var all []burstRun
	for r := 1; r <= runs; r++ {
		time.Sleep(2 * time.Second) // let the previous run's connections close
		br := burstOnce(base, cmd.Process.Pid, n)
		all = append(all, br)
		fmt.Printf("run %d: %s\n", r, br)
	}
	fmt.Println(burstSummary(all))
	for _, br := range all {
		if br.nFailed > 0 {
			fmt.Fprintf(os.Stderr, "loadharness: %d clients had no answer, e.g. %s\n", br.nFailed, strings.Join(br.failed, "; "))
			return 1
		}
	}
	return 0
}

// burstOnce releases n clients at once and waits for all of them.
func burstOnce(base string, pid, n int) burstRun {
	br := burstRun{status: map[int]int{}}
	br.goroutinesBefore, br.rssBefore = agentGauges(base)
	ctx, stopProbe := context.WithCancel(context.Background())
	probed := make(chan struct{})
	go func() { defer close(probed); br.health, br.healthBad = probeHealth(ctx, base) }()
	start := make(chan struct{})
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Its own transport: a new connection, as separate clients would open.
			c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			<-start
			t0 := time.Now()
			code, err := get(c, base+burstPaths[i%len(burstPaths)])
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				br.nFailed++
				if len(br.failed) < 3 {
					br.failed = append(br.failed, err.Error())
				}
				return
			}
			br.status[code]++
			br.latencies = append(br.latencies, d)
		}()
	}
	close(start)
	wg.Wait()
	stopProbe()
	<-probed
	time.Sleep(2 * time.Second) // the agent's side of the connections winds down
	br.goroutinesAfter, br.rssAfter = agentGauges(base)
	return br
}

// get asks once and reads the whole answer; of a watch, only its status
// (a watch that was admitted streams until the client leaves).
func get(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if strings.Contains(url, "watch=true") {
		return resp.StatusCode, nil
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("%s: body: %w", url, err)
	}
	return resp.StatusCode, nil
}

// probeHealth asks /healthz every 20 ms until ctx ends.
func probeHealth(ctx context.Context, base string) (lat []time.Duration, bad int) {
	c := &http.Client{Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		t0 := time.Now()
		code, err := get(c, base+"/healthz")
		if err != nil || code != http.StatusOK {
			bad++
		} else {
			lat = append(lat, time.Since(t0))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return lat, bad
}

// agentGauges reads the agent's goroutines and RSS (MiB) from its /metrics.
func agentGauges(base string) (goroutines, rssMiB float64) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1, -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			goroutines = f
		case "process_resident_memory_bytes":
			rssMiB = f / (1 << 20)
		}
	}
	return goroutines, rssMiB
}

func (br burstRun) String() string {
	codes := []string{}
	for _, c := range slices.Sorted(maps.Keys(br.status)) {
		codes = append(codes, fmt.Sprintf("%d×%d", br.status[c], c))
	}
	return fmt.Sprintf("answers %s, no answer %d; latency p50 %s p99 %s max %s; /healthz %d answered (p50 %s, max %s), %d not; goroutines %.0f→%.0f, RSS %.1f→%.1f MiB",
		strings.Join(codes, " "), br.nFailed, pct(br.latencies, 50), pct(br.latencies, 99), pct(br.latencies, 100),
		len(br.health), pct(br.health, 50), pct(br.health, 100), br.healthBad,
		br.goroutinesBefore, br.goroutinesAfter, br.rssBefore, br.rssAfter)
}

// burstSummary is the median of every run's figures.
func burstSummary(runs []burstRun) string {
	med := func(f func(burstRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	ms := func(d string) float64 { v, _ := time.ParseDuration(d); return float64(v) / float64(time.Millisecond) }
	return fmt.Sprintf("medians over %d runs: 200 %.0f, 429 %.0f, no answer %.0f; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; /healthz answered %.0f, max %.1f ms; goroutines after %.0f, RSS after %.1f MiB",
		len(runs), med(func(r burstRun) float64 { return float64(r.status[200]) }),
		med(func(r burstRun) float64 { return float64(r.status[429]) }), med(func(r burstRun) float64 { return float64(r.nFailed) }),
		med(func(r burstRun) float64 { return ms(pct(r.latencies, 50)) }), med(func(r burstRun) float64 { return ms(pct(r.latencies, 99)) }),
		med(func(r burstRun) float64 { return ms(pct(r.latencies, 100)) }), med(func(r burstRun) float64 { return float64(len(r.health)) }),
		med(func(r burstRun) float64 { return ms(pct(r.health, 100)) }), med(func(r burstRun) float64 { return r.goroutinesAfter }),
		med(func(r burstRun) float64 { return r.rssAfter }))
}

// demoURL reads `podlife demo`'s banner until it names the agent's address.
func demoURL(out io.ReadCloser, limit time.Duration) (string, error) {
	return readURL(out, limit, func(line string) (string, bool) {
		url, ok := strings.CutSuffix(strings.TrimSpace(line), "/api/v1/pods")
		return url, ok && strings.HasPrefix(url, "http")
	})
}

// waitReady polls /readyz until it answers 200.
func waitReady(base string, limit time.Duration) error {
	c := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if code, err := get(c, base+"/readyz"); err == nil && code == http.StatusOK {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s/readyz: not ready within %s", base, limit)
}
