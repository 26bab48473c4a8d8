// Command soak runs the real podlife agent binary for a long while (make
// soak: 10 minutes) against `podlife simnode` (a separate process) at 250
// pods with container churn, pods replaced under new UIDs, and each source
// down for 10 s once a minute, as a Prometheus would scrape it. It measures
// the agent from outside (/proc, /debug/pprof, the API) and judges:
//
//   - RSS is flat: the least-squares slope of VmRSS over the second half of
//     the run (after start-up, the history ring and the caches have filled)
//     is at most -rss-slope-max MiB/min;
//   - goroutines (/debug/pprof/goroutine?debug=1) and open file descriptors
//     (/proc/PID/fd) are the same at the start and at the end, both read at
//     the same point of the outage minute (both sources up for a while, no
//     scrape in flight), within -goroutine-tolerance and -fd-tolerance;
//   - every transition produced was journaled and delivered: once the
//     simulated node is stopped and the agent has settled, the agent's count
//     (podlife_transitions_total), the journal's last sequence (a fresh
//     journal, nothing delivered upstream: sequence N is the Nth transition)
//     and the transitions received on one watch stream held open from the
//     start (gapless: seq 1..M) are equal, with nothing held in memory, lost
//     or dropped for the watcher;
//   - each source went down and came back in every minute.
//
// Its last line is one result line:
//
//	soak: PASS rss-slope=+0.01MiB/min goroutines=30->30 fds=14->14 journal=9.1MiB transitions=N delivered=N
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

type config struct {
	bin                  string
	duration             time.Duration
	pods                 int
	churn, replace       float64
	outageEvery          time.Duration
	outageFor            time.Duration
	sample               time.Duration
	scrape               time.Duration
	rssSlopeMax          float64
	goroutineTolerance   int
	fdTolerance          int
	keep                 bool
	measureOffset        time.Duration
	warmup               time.Duration
	settleQuiet          time.Duration
	outagesMissedAllowed int
}

func run() int {
	var c config
	flag.StringVar(&c.bin, "bin", "bin/podlife", "the podlife binary")
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long the agent runs under load")
	flag.IntVar(&c.pods, "pods", 250, "simulated pods (4 containers each)")
	flag.Float64Var(&c.churn, "churn", 5, "container restarts per second")
	flag.Float64Var(&c.replace, "replace", 1, "pods replaced under a new UID per second (at 250 pods each lives about 4 minutes)")
	flag.DurationVar(&c.outageEvery, "outage-every", time.Minute, "each source goes down once in every period")
	flag.DurationVar(&c.outageFor, "outage-for", 10*time.Second, "for this long")
	flag.DurationVar(&c.sample, "sample", 5*time.Second, "how often RSS, goroutines and fds are read")
	flag.DurationVar(&c.scrape, "scrape", 15*time.Second, "how often /metrics, /api/v1/pods and /api/v1/journal are read")
	flag.Float64Var(&c.rssSlopeMax, "rss-slope-max", 0.25, "the largest RSS growth over the second half, MiB/min, still called flat")
	flag.IntVar(&c.goroutineTolerance, "goroutine-tolerance", 0, "goroutines the end may differ from the start by")
	flag.IntVar(&c.fdTolerance, "fd-tolerance", 0, "file descriptors the end may differ from the start by")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (journal, agent log)")
	flag.Parse()
	c.measureOffset = 5 * time.Second // into a period: both sources have been up since 2/3 of the last one + outage-for
	c.warmup = 30 * time.Second
	c.settleQuiet = 10 * time.Second
	c.outagesMissedAllowed = 1
	res, err := soak(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		fmt.Println("soak: FAIL " + oneLine(err.Error()))
		return 1
	}
	fmt.Println(res)
	if !strings.HasPrefix(res, "soak: PASS") {
		return 1
	}
	return 0
}

// proc is a child process the soak started; stop ends it by PID.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func start(name string, args []string, stdout io.Writer, stderr io.Writer) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(name), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop sends sig and waits up to limit for the exit, then kills.
func (p *proc) stop(sig syscall.Signal, limit time.Duration) (exited bool, err error) {
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		return false, p.err
	}
}

// lines sends every line of r to f.
func lines(r io.Reader, f func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f(sc.Text())
	}
}

// sample is one reading of the agent from outside.
type sample struct {
	at                  time.Duration // since the simulated node started
	rss, anon, file     float64       // MiB
	goroutines, fds     int
	transitions, stream int
}

func soak(c config) (string, error) {
	dir, err := os.MkdirTemp("", "podlife-soak-")
	if err != nil {
		return "", err
	}
	if c.keep {
		fmt.Fprintln(os.Stderr, "soak: work directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return "", err
	}

	// The simulated node, a process of its own.
	simOut, simW := io.Pipe()
	sim, err := start(bin, []string{"simnode", "--dir", dir, "--pods", fmt.Sprint(c.pods), "--churn", fmt.Sprint(c.churn),
		"--replace", fmt.Sprint(c.replace), "--outage-every", c.outageEvery.String(), "--outage-for", c.outageFor.String()},
		simW, os.Stderr)
	if err != nil {
		return "", err
	}
	simStart := time.Now()
	defer sim.stop(syscall.SIGKILL, 5*time.Second)
	endpoints := map[string]string{}
	endpointsc := make(chan struct{})
	go lines(simOut, func(l string) {
		if k, v, ok := strings.Cut(l, "="); ok && len(endpoints) < 2 {
			endpoints[k] = v
			if len(endpoints) == 2 {
				close(endpointsc)
			}
		}
	})
	select {
	case <-endpointsc:
	case <-time.After(30 * time.Second):
		return "", errors.New("podlife simnode printed no endpoints")
	}

	// The agent: a fresh journal, pprof, no upstream.
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	journalPath := filepath.Join(dir, "journal.db")
	agentOut, agentW := io.Pipe()
	ag, err := start(bin, []string{"agent", "--node-name", "soak", "--cri-endpoint", endpoints["cri-endpoint"],
		"--kubelet-url", endpoints["kubelet-url"], "--insecure-listen-address", "127.0.0.1:0", "--secure-listen-address=",
		"--upstream", "off", "--journal-path", journalPath, "--history-size", "5000", "--pprof", "--log-level", "warn"},
		agentW, logf)
	if err != nil {
		return "", err
	}
	defer ag.stop(syscall.SIGKILL, 5*time.Second)
	urlc := make(chan string, 1)
	go lines(agentOut, func(l string) {
		if u, ok := strings.CutPrefix(l, "podlife agent listening on "); ok {
			select {
			case urlc <- u:
			default:
			}
		}
	})
	var base string
	select {
	case base = <-urlc:
	case <-ag.done:
		return "", fmt.Errorf("the agent exited: %v (log %s)", ag.err, logf.Name())
	case <-time.After(30 * time.Second):
		return "", errors.New("the agent reported no address")
	}
	pid := ag.cmd.Process.Pid
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	fmt.Fprintf(os.Stderr, "soak: agent pid %d at %s, simnode pid %d: %d pods, %g restarts/s, %g pods replaced/s, "+
		"each source down %s every %s; %s\n", pid, base, sim.cmd.Process.Pid, c.pods, c.churn, c.replace, c.outageFor,
		c.outageEvery, c.duration)

	// One watch stream, held open from the start.
	w := &watcher{}
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	if err := w.open(wctx, base); err != nil {
		return "", err
	}

	// Scrapes, as Prometheus and a user would; paused while measuring.
	var scrapeMu sync.Mutex
	stopScrape := make(chan struct{})
	scraped := make(chan struct{})
	go func() {
		defer close(scraped)
		t := time.NewTicker(c.scrape)
		defer t.Stop()
		for {
			select {
			case <-stopScrape:
				return
			case <-t.C:
			}
			scrapeMu.Lock()
			for _, p := range []string{"/metrics", "/api/v1/pods", "/api/v1/journal", "/api/v1/pods/load/load-0007"} {
				if resp, err := client.Get(base + p); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
			scrapeMu.Unlock()
		}
	}()

	read := func() (sample, error) {
		s := sample{at: time.Since(simStart)}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return s, fmt.Errorf("the agent is gone: %w", err)
		}
		s.rss, s.anon, s.file = statusMiB(st, "VmRSS"), statusMiB(st, "RssAnon"), statusMiB(st, "RssFile")
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return s, err
		}
		s.fds = len(fds)
		if s.goroutines, err = goroutines(client, base); err != nil {
			return s, err
		}
		if s.transitions, err = transitionsTotal(client, base); err != nil {
			return s, err
		}
		s.stream = w.count()
		return s, nil
	}
	// measure reads goroutines and fds at a quiet moment: no scrape in
	// flight, the lowest of three readings a second apart (a connection
	// closing may take a moment to be gone).
	measure := func() (sample, error) {
		scrapeMu.Lock()
		defer scrapeMu.Unlock()
		var best sample
		for i := range 3 {
			time.Sleep(time.Second)
			s, err := read()
			if err != nil {
				return s, err
			}
			if i == 0 || s.goroutines < best.goroutines {
				best.goroutines = s.goroutines
			}
			if i == 0 || s.fds < best.fds {
				best.fds = s.fds
			}
			best.at, best.rss, best.anon, best.file, best.transitions, best.stream = s.at, s.rss, s.anon, s.file, s.transitions, s.stream
		}
		return best, nil
	}

	// The first and the last measuring points: offset into a period, after
	// warm-up, and into the last period the run reaches.
	period := c.outageEvery
	first := ceilTo(c.warmup, period) + c.measureOffset
	last := (c.duration/period)*period + c.measureOffset
	if last <= first {
		return "", fmt.Errorf("a run of %s has no two measuring points %s into a period after %s of warm-up", c.duration,
			c.measureOffset, c.warmup)
	}
	var samples []sample
	var startM, endM sample
	var downsAtEnd map[string]int
	tick := time.NewTicker(c.sample)
	defer tick.Stop()
	nextLog := time.Minute
	for measured := 0; measured < 2; {
		now := time.Since(simStart)
		switch {
		case measured == 0 && now >= first:
			if startM, err = measure(); err != nil {
				return "", err
			}
			measured++
			fmt.Fprintf(os.Stderr, "soak: start at %s: goroutines %d, fds %d, rss %.1f MiB\n", startM.at.Round(time.Second),
				startM.goroutines, startM.fds, startM.rss)
			continue
		case measured == 1 && now >= last:
			if endM, err = measure(); err != nil {
				return "", err
			}
			measured++
			downsAtEnd = w.downs() // before stopping the simulated node adds one
			fmt.Fprintf(os.Stderr, "soak: end at %s: goroutines %d, fds %d, rss %.1f MiB\n", endM.at.Round(time.Second),
				endM.goroutines, endM.fds, endM.rss)
			continue
		}
		select {
		case <-ag.done:
			return "", fmt.Errorf("the agent exited during the soak: %v (log %s)", ag.err, logf.Name())
		case <-tick.C:
		}
		s, err := read()
		if err != nil {
			return "", err
		}
		samples = append(samples, s)
		if s.at >= nextLog {
			nextLog += time.Minute
			fmt.Fprintf(os.Stderr, "soak: %5s rss %.1f MiB (anon %.1f, file %.1f) goroutines %d fds %d transitions %d streamed %d\n",
				s.at.Round(time.Second), s.rss, s.anon, s.file, s.goroutines, s.fds, s.transitions, s.stream)
		}
	}
	close(stopScrape)
	<-scraped

	// Settle: stop the simulated node (both sources go down), wait until
	// nothing moves, then count.
	if _, err := sim.stop(syscall.SIGTERM, 10*time.Second); err != nil && !isSignalExit(err) {
		fmt.Fprintln(os.Stderr, "soak: simnode:", err)
	}
	var produced, delivered int
	var js journalState
	quietSince := time.Now()
	for lastProduced := -1; ; time.Sleep(time.Second) {
		if produced, err = transitionsTotal(client, base); err != nil {
			return "", err
		}
		if js, err = readJournal(client, base); err != nil {
			return "", err
		}
		delivered = w.count()
		if produced != lastProduced || delivered != produced || js.Stats.LastSeq != uint64(produced) || js.Health.Unwritten != 0 {
			lastProduced, quietSince = produced, time.Now()
		}
		if time.Since(quietSince) >= c.settleQuiet {
			break
		}
		if time.Since(quietSince) > 2*time.Minute {
			break // report what it is
		}
	}
	dropped, err := metricValue(client, base, "podlife_watch_dropped_total")
	if err != nil {
		return "", err
	}
	exited, aerr := ag.stop(syscall.SIGTERM, 30*time.Second)
	wcancel()
	fi, err := os.Stat(journalPath)
	if err != nil {
		return "", err
	}

	// Judge.
	var fails []string
	slope, n := rssSlope(samples, c.duration/2)
	if n < 10 {
		fails = append(fails, fmt.Sprintf("only %d RSS samples in the second half", n))
	} else if slope > c.rssSlopeMax {
		fails = append(fails, fmt.Sprintf("RSS grows %.3f MiB/min over the second half (limit %.3f)", slope, c.rssSlopeMax))
	}
	if d := endM.goroutines - startM.goroutines; abs(d) > c.goroutineTolerance {
		fails = append(fails, fmt.Sprintf("goroutines %d -> %d", startM.goroutines, endM.goroutines))
	}
	if d := endM.fds - startM.fds; abs(d) > c.fdTolerance {
		fails = append(fails, fmt.Sprintf("fds %d -> %d", startM.fds, endM.fds))
	}
	gaps, other := w.problems()
	switch {
	case gaps != "":
		fails = append(fails, "the stream: "+gaps)
	case len(other) > 0:
		fails = append(fails, fmt.Sprintf("the stream carried %q", other))
	}
	if produced != delivered || js.Stats.LastSeq != uint64(produced) {
		fails = append(fails, fmt.Sprintf("produced %d, journaled %d, delivered %d", produced, js.Stats.LastSeq, delivered))
	}
	if js.Health.Unwritten != 0 || js.Health.Lost != 0 || !js.Health.Up || dropped != 0 {
		fails = append(fails, fmt.Sprintf("journal health %+v, watch dropped %g", js.Health, dropped))
	}
	outages := c.duration / period
	downs := downsAtEnd
	for _, src := range []string{"kubelet", "runtime"} {
		if int64(downs[src]) < int64(outages)-int64(c.outagesMissedAllowed) {
			fails = append(fails, fmt.Sprintf("%s went down %d times in %d periods", src, downs[src], outages))
		}
	}
	if !exited || aerr != nil {
		fails = append(fails, fmt.Sprintf("the agent did not stop cleanly on SIGTERM: exited %v, %v", exited, aerr))
	}
	rssMin, rssMax := math.Inf(1), 0.0
	for _, s := range samples {
		rssMin, rssMax = math.Min(rssMin, s.rss), math.Max(rssMax, s.rss)
	}
	fmt.Fprintf(os.Stderr, "soak: rss %.1f MiB at %s, %.1f MiB at %s, min %.1f max %.1f; slope over the second half %+.3f MiB/min "+
		"(%d samples, limit %.2f)\n", startM.rss, startM.at.Round(time.Second), endM.rss, endM.at.Round(time.Second), rssMin, rssMax,
		slope, n, c.rssSlopeMax)
	fmt.Fprintf(os.Stderr, "soak: outages seen: kubelet %d, runtime %d (in %d periods); journal %d entries pending, %s on disk; "+
		"transitions produced %d, journaled %d, delivered on the watch %d, dropped %g\n", downs["kubelet"], downs["runtime"],
		outages, js.Stats.Pending, mib(fi.Size()), produced, js.Stats.LastSeq, delivered, dropped)
	verdict := "PASS"
	if len(fails) > 0 {
		verdict = "FAIL"
		for _, f := range fails {
			fmt.Fprintln(os.Stderr, "soak: FAIL:", f)
		}
	}
	return fmt.Sprintf("soak: %s rss-slope=%+.3fMiB/min goroutines=%d->%d fds=%d->%d journal=%s transitions=%d delivered=%d",
		verdict, slope, startM.goroutines, endM.goroutines, startM.fds, endM.fds, mib(fi.Size()), produced, delivered), nil
}

// rssSlope is the least-squares slope of RSS over time, in MiB/min, of the
// samples taken from `from` on, and how many there were.
func rssSlope(samples []sample, from time.Duration) (float64, int) {
	var xs, ys []float64
	for _, s := range samples {
		if s.at >= from {
			xs, ys = append(xs, s.at.Minutes()), append(ys, s.rss)
		}
	}
	return slope(xs, ys), len(xs)
}

// slope is the least-squares slope of ys over xs (0 with fewer than two
// distinct xs).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func ceilTo(d, p time.Duration) time.Duration { return (d + p - 1) / p * p }

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}

// statusMiB reads a "Key:  N kB" line of /proc/PID/status, in MiB.
func statusMiB(status []byte, key string) float64 {
	for _, l := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v / 1024
			}
		}
	}
	return 0
}

var goroutineTotal = regexp.MustCompile(`^goroutine profile: total (\d+)`)

// goroutines reads the agent's goroutine count from its profile. The request
// itself runs in one goroutine, the same at every reading.
func goroutines(c *http.Client, base string) (int, error) {
	b, err := get(c, base+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	m := goroutineTotal.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("goroutine profile: %.100q", b)
	}
	return strconv.Atoi(string(m[1]))
}

func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %.200s", url, resp.StatusCode, b)
	}
	return b, nil
}

// metricValue sums a metric's samples on /metrics.
func metricValue(c *http.Client, base, name string) (float64, error) {
	b, err := get(c, base+"/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, name+" ") && !strings.HasPrefix(l, name+"{") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q", name, l)
		}
		sum += v
	}
	return sum, nil
}

func transitionsTotal(c *http.Client, base string) (int, error) {
	v, err := metricValue(c, base, "podlife_transitions_total")
	return int(v), err
}

// journalState is what the soak reads of GET /api/v1/journal.
type journalState struct {
	Stats struct {
		Pending int    `json:"pending"`
		LastSeq uint64 `json:"lastSeq"`
	} `json:"stats"`
	Health struct {
		Up        bool   `json:"up"`
		Error     string `json:"error"`
		Unwritten int    `json:"unwritten"`
		Lost      uint64 `json:"lost"`
	} `json:"health"`
}

func readJournal(c *http.Client, base string) (journalState, error) {
	var js journalState
	b, err := get(c, base+"/api/v1/journal")
	if err != nil {
		return js, err
	}
	return js, json.Unmarshal(b, &js)
}

// watcher holds one transition stream open and checks it is gapless.
type watcher struct {
	mu     sync.Mutex
	n      int
	last   uint64
	gap    string
	other  []string
	downBy map[string]int
}

func (w *watcher) open(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/transitions?watch=true&since=1970-01-01T00:00:00Z", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	w.downBy = map[string]int{}
	go func() {
		defer resp.Body.Close()
		lines(resp.Body, func(l string) {
			var r struct {
				Seq    uint64 `json:"seq"`
				Kind   string `json:"kind"`
				Source string `json:"source"`
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			if json.Unmarshal([]byte(l), &r) != nil || r.Seq == 0 {
				if strings.TrimSpace(l) != "" {
					w.other = append(w.other, l)
				}
				return
			}
			if r.Seq != w.last+1 && w.gap == "" {
				w.gap = fmt.Sprintf("seq %d after %d", r.Seq, w.last)
			}
			w.last = r.Seq
			w.n++
			if r.Kind == "SourceDown" {
				w.downBy[r.Source]++
			}
		})
	}()
	return nil
}

func (w *watcher) count() int { w.mu.Lock(); defer w.mu.Unlock(); return w.n }

func (w *watcher) problems() (string, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gap, append([]string(nil), w.other...)
}

func (w *watcher) downs() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.downBy {
		out[k] = v
	}
	return out
}
