// Command soak runs the real podlife agent binary for a long while (make
// soak: 10 minutes) against `podlife simnode` (a separate process) at 250
// pods with container churn, pods replaced under new UIDs, and each source
// down for 10 s once a minute, as a Prometheus would scrape it. It measures
// the agent from outside (/proc, /debug/pprof, the API) and judges:
//
//   - memory is flat over the second half of the run (after start-up, once
//     the history ring has filled and every pod has been replaced, about 4
//     minutes at 250 pods and one replacement a second): the least-squares
//     slope of the RSS is at most -rss-slope-max MiB/min, and that of the live
//     heap (HeapAlloc right after two GCs forced every 15 s through
//     /debug/pprof/heap?gc=1: the second empties sync.Pool's victim cache, which
//     may hold a 10 MB encoder buffer of the last /api/v1/journal) at most
//     -heap-slope-max. The RSS judged is VmRSS
//     less the resident pages of the journal's mapping (/proc/PID/smaps):
//     bbolt maps its file, the pages an append or a read touches stay resident
//     (clean, reclaimable page cache), and with no API server to deliver to,
//     the soak's journal only grows; that part is reported beside it;
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
	heapSlopeMax         float64
	heapEvery            time.Duration
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
	flag.Float64Var(&c.rssSlopeMax, "rss-slope-max", 0.5, "the largest RSS growth (less the journal's mapping) over the second half, MiB/min, still called flat")
	flag.Float64Var(&c.heapSlopeMax, "heap-slope-max", 0.2, "the largest live-heap growth over the second half, MiB/min, still called flat")
	flag.DurationVar(&c.heapEvery, "heap-every", 15*time.Second, "how often the live heap is read (forcing a GC)")
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
	journalRSS          float64       // MiB of the journal's mapping resident
	heap                float64       // MiB live after a forced GC (0: not read this time)
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
		if k, v, ok := strings.Cut(l, "="); ok && len(endpoints) < 3 {
			endpoints[k] = v
			if len(endpoints) == 3 { // cri-endpoint, kubelet-url, kubelet-pods-api-socket
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
		"--kubelet-url", endpoints["kubelet-url"], "--kubelet-pods-api-socket", endpoints["kubelet-pods-api-socket"],
		"--insecure-listen-address", "127.0.0.1:0", "--secure-listen-address=",
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
		if s.journalRSS, err = mappingRSS(pid, journalPath); err != nil {
			return s, err
		}
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
			best.at, best.rss, best.anon, best.file, best.journalRSS = s.at, s.rss, s.anon, s.file, s.journalRSS
			best.transitions, best.stream = s.transitions, s.stream
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
	var nextHeap time.Duration
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
		if s.at >= nextHeap {
			nextHeap = s.at + c.heapEvery
			if s.heap, err = liveHeap(client, base); err != nil {
				return "", err
			}
		}
		samples = append(samples, s)
		if s.at >= nextLog {
			nextLog += time.Minute
			fmt.Fprintf(os.Stderr, "soak: %5s rss %.1f MiB (anon %.1f, file %.1f, of which the journal %.1f) goroutines %d fds %d "+
				"transitions %d streamed %d\n", s.at.Round(time.Second), s.rss, s.anon, s.file, s.journalRSS, s.goroutines, s.fds,
				s.transitions, s.stream)
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
	half := c.duration / 2
	slope, n := trend(samples, half, func(s sample) (float64, bool) { return s.rss - s.journalRSS, true })
	heapSlope, nh := trend(samples, half, func(s sample) (float64, bool) { return s.heap, s.heap > 0 })
	vmSlope, _ := trend(samples, half, func(s sample) (float64, bool) { return s.rss, true })
	jSlope, _ := trend(samples, half, func(s sample) (float64, bool) { return s.journalRSS, true })
	switch {
	case n < 10 || nh < 5:
		fails = append(fails, fmt.Sprintf("only %d RSS and %d heap samples in the second half", n, nh))
	case slope > c.rssSlopeMax:
		fails = append(fails, fmt.Sprintf("RSS (less the journal's mapping) grows %.3f MiB/min over the second half (limit %.3f)",
			slope, c.rssSlopeMax))
	}
	if heapSlope > c.heapSlopeMax {
		fails = append(fails, fmt.Sprintf("the live heap grows %.3f MiB/min over the second half (limit %.3f)", heapSlope, c.heapSlopeMax))
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
	rssMin, rssMax, heapMin, heapMax := math.Inf(1), 0.0, math.Inf(1), 0.0
	for _, s := range samples {
		if s.at >= half {
			rssMin, rssMax = math.Min(rssMin, s.rss-s.journalRSS), math.Max(rssMax, s.rss-s.journalRSS)
			if s.heap > 0 {
				heapMin, heapMax = math.Min(heapMin, s.heap), math.Max(heapMax, s.heap)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "soak: second half (from %s, %d samples): rss less the journal's mapping %.1f..%.1f MiB, slope %+.3f MiB/min "+
		"(limit %.2f); live heap %.1f..%.1f MiB, slope %+.3f MiB/min (%d readings, limit %.2f); VmRSS slope %+.3f, the journal's "+
		"mapping %+.3f MiB/min (%.1f MiB resident at the end, the file %s)\n", half, n, rssMin, rssMax, slope, c.rssSlopeMax, heapMin,
		heapMax, heapSlope, nh, c.heapSlopeMax, vmSlope, jSlope, endM.journalRSS, mib(fi.Size()))
	fmt.Fprintf(os.Stderr, "soak: VmRSS %.1f MiB at %s (journal mapping %.1f), %.1f MiB at %s (journal mapping %.1f)\n",
		startM.rss, startM.at.Round(time.Second), startM.journalRSS, endM.rss, endM.at.Round(time.Second), endM.journalRSS)
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

// trend is the least-squares slope over time, per minute, of what value
// reads from the samples taken from `from` on (those it has a value for),
// and how many there were.
func trend(samples []sample, from time.Duration, value func(sample) (float64, bool)) (float64, int) {
	var xs, ys []float64
	for _, s := range samples {
		if v, ok := value(s); ok && s.at >= from {
			xs, ys = append(xs, s.at.Minutes()), append(ys, v)
		}
	}
	return slope(xs, ys), len(xs)
}

// mappingRSS sums the resident pages of pid's mappings of path, in MiB.
func mappingRSS(pid int, path string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	var kb float64
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"): // a mapping's header
			in = len(f) >= 6 && f[5] == path
		case in && len(f) >= 2 && f[0] == "Rss:":
			v, _ := strconv.ParseFloat(f[1], 64)
			kb += v
		}
	}
	return kb / 1024, nil
}

var heapAlloc = regexp.MustCompile(`(?m)^# HeapAlloc = (\d+)$`)

// liveHeap forces two GCs in the agent (/debug/pprof/heap?gc=1: the first
// moves sync.Pool's contents to its victim cache, the second frees them) and
// reads HeapAlloc right after, in MiB: what is live.
func liveHeap(c *http.Client, base string) (float64, error) {
	if _, err := get(c, base+"/debug/pprof/heap?gc=1"); err != nil {
		return 0, err
	}
	b, err := get(c, base+"/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, err
	}
	m := heapAlloc.FindSubmatch(b)
	if m == nil {
		return 0, errors.New("heap profile without HeapAlloc")
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return v / (1 << 20), err
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
