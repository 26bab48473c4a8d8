// Command loadharness measures the real podlife agent binary from outside
// against a simulated node (podlife simnode, a separate process) at several
// pod counts and churn rates, the runtime streamed or polled, the kubelet
// followed through its Pods API watch or polled on /pods: CPU per wall
// second, steady and peak RSS, /metrics and /api/v1/pods response times, and
// detection latency (a container restart in the simulated runtime to its
// transition on /api/v1/transitions?watch=true). It repeats every scenario,
// quotes medians, and writes a markdown report together with the medians of
// the Go benchmarks in bench.out. With -burst N it instead releases N
// concurrent clients at once against `podlife demo` (see burst.go).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type scenario struct {
	pods   int
	churn  float64
	stream bool
	// kubelet is how the agent reads the simulated kubelet: "pods-api" (its
	// WatchPods stream) or "pods-http" (polling /pods).
	kubelet string
	// box: "" no journal; boxOn a journal and the crash black box reading
	// each ended attempt's log file (simnode --logs-dir); boxOff the same
	// journal and log files, capture off (--blackbox-lines=0).
	box string
}

// Crash black box settings of a scenario (scenario.box).
const (
	boxOn  = "journal, black box on"
	boxOff = "journal, black box off"
)

type result struct {
	cpuPct, rssSteadyMiB, rssPeakMiB, metricsMs, podsMs float64
	latencies                                           []time.Duration
}

// The agent's kubelet modes (kubelet.ModePodsAPI, kubelet.ModePodsHTTP).
const (
	podsAPI  = "pods-api"
	podsHTTP = "pods-http"
)

func main() { os.Exit(run()) }

func run() int {
	bin := flag.String("bin", "bin/podlife", "the podlife binary")
	runs := flag.Int("runs", 5, "repetitions of every scenario")
	dur := flag.Duration("duration", 10*time.Second, "measurement window per run")
	out := flag.String("out", "BENCHMARKS.md", "report file")
	benchFile := flag.String("bench", "bench.out", "go test -bench output to summarise")
	cmpFile := flag.String("benchcmp", "bench-cmp.md", "the Go benchmarks against the previous commit's (hack/benchcmp.sh), a markdown section to include")
	quick := flag.Bool("quick", false, "only 250 pods (for a fast look)")
	realOnly := flag.Bool("real-node-only", false, "only print the real-node section from -bench")
	benchOnly := flag.Bool("bench-only", false, "only print the Go benchmarks' and the real node's sections from -bench (a report's sections when the Go benchmarks ran after the harness)")
	compare := flag.Bool("kubelet-compare", false, "only the kubelet's watch (pods-api) against its /pods polled (pods-http), 110 and 250 pods, idle and 10 restarts/s")
	uiPods := flag.Int("ui", 0, "instead of the scenarios: the web page's cost with this many pods (first render, bytes, the agent's CPU with a page open)")
	blackBox := flag.Bool("blackbox", false, "only the crash black box's cost: 250 pods, idle and 10 restarts/s, a journal, capture on and off")
	burstClients := flag.Int("burst", 0, "instead of the scenarios: a burst of this many concurrent clients against `podlife demo`, -runs times")
	flag.Parse()
	if *uiPods > 0 {
		return uiCost(*bin, *uiPods, 1000, *runs, 60*time.Second)
	}
	if *burstClients > 0 {
		return burst(*bin, *burstClients, *runs)
	}
	if *realOnly || *benchOnly {
		if *benchOnly {
			fmt.Print(benchTable(*benchFile))
		}
		fmt.Print(realNode(*benchFile))
		return 0
	}
	scenarios := matrix(*quick, *blackBox, *compare)
	fmt.Fprintf(os.Stderr, "loadharness: %d scenarios × %d runs × %s: about %s (an estimate)\n", len(scenarios), *runs, *dur, estimate(len(scenarios), *runs, *dur))
	results := map[scenario][]result{}
	for r := 1; r <= *runs; r++ {
		for _, sc := range scenarios {
			res, err := measure(*bin, sc, *dur)
			if err != nil {
				fmt.Fprintf(os.Stderr, "loadharness: %+v: %v\n", sc, err)
				return 1
			}
			fmt.Fprintf(os.Stderr, "run %d pods=%d churn=%g stream=%v kubelet=%s %s: cpu %.2f%% rss %.1f/%.1f MiB metrics %.1fms pods %.1fms latency n=%d p50 %s\n",
				r, sc.pods, sc.churn, sc.stream, sc.kubelet, sc.box, res.cpuPct, res.rssSteadyMiB, res.rssPeakMiB, res.metricsMs, res.podsMs,
				len(res.latencies), pct(res.latencies, 50))
			results[sc] = append(results[sc], res)
		}
	}
	old, _ := os.ReadFile(*out) // absent the first time: nothing to keep
	report := header(machine(), time.Now(), commit(*out), os.Args) + render(scenarios, results, *runs, *dur, *benchFile) +
		benchCompare(*cmpFile) + realNode(*benchFile) + keptTail(string(old))
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "loadharness:", err)
		return 1
	}
	fmt.Print(report)
	return 0
}

// listeningURL reads the agent's stdout until it reports the address it
// bound, and then drains the rest.
func listeningURL(out io.ReadCloser, limit time.Duration) (string, error) {
	return readURL(out, limit, func(line string) (string, bool) {
		return strings.CutPrefix(line, "podlife agent listening on ")
	})
}

// readURL reads out line by line until match finds the URL in a line, and
// then drains the rest.
func readURL(out io.ReadCloser, limit time.Duration, match func(string) (string, bool)) (string, error) {
	found := make(chan string, 1)
	go func() {
		defer out.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if url, ok := match(sc.Text()); ok {
				found <- url
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case url := <-found:
		return url, nil
	case <-time.After(limit):
		return "", fmt.Errorf("no address on the process's output within %s", limit)
	}
}

// startSim starts `podlife simnode` (args) and returns the endpoints it
// prints (cri-endpoint, kubelet-url, kubelet-pods-api-socket) and its stop.
func startSim(bin string, args ...string) (map[string]string, func(), error) {
	sim := exec.Command(bin, args...)
	sim.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := sim.StdoutPipe()
	if err := sim.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { sim.Process.Kill(); sim.Wait() }
	endpoints := map[string]string{}
	sc := bufio.NewScanner(out)
	for len(endpoints) < 3 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		endpoints[k] = v
	}
	go io.Copy(io.Discard, out)
	return endpoints, stop, nil
}

// startAgentProc starts `podlife agent` (args, with an insecure listener on
// 127.0.0.1:0) and returns it, the base URL it reports and its stop. The
// agent binds a free port itself and says which (no port freed and then
// reused, which another process could take in between).
func startAgentProc(bin string, args ...string) (*exec.Cmd, string, func(), error) {
	agent := exec.Command(bin, args...)
	agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, in, err := os.Pipe()
	if err != nil {
		return nil, "", nil, fmt.Errorf("agent stdout: %w", err)
	}
	agent.Stdout = in
	err = agent.Start()
	in.Close()
	if err != nil {
		out.Close()
		return nil, "", nil, err
	}
	stop := func() { agent.Process.Kill(); agent.Wait() }
	base, err := listeningURL(out, 20*time.Second)
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	return agent, base, stop, nil
}

// measure runs one scenario once.
func measure(bin string, sc scenario, dur time.Duration) (result, error) {
	var res result
	dir, err := os.MkdirTemp("", "podlife-load-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	logsDir := filepath.Join(dir, "pods")
	simArgs := []string{"simnode", "--pods", fmt.Sprint(sc.pods), "--churn", fmt.Sprint(sc.churn), "--dir", dir}
	if sc.box != "" {
		simArgs = append(simArgs, "--logs-dir", logsDir)
	}
	endpoints, stopSim, err := startSim(bin, simArgs...)
	if err != nil {
		return res, err
	}
	defer stopSim()
	socket := endpoints["kubelet-pods-api-socket"]
	if sc.kubelet == podsHTTP {
		socket = ""
	}
	args := []string{"agent", "--node-name", "load", "--cri-endpoint", endpoints["cri-endpoint"],
		"--kubelet-url", endpoints["kubelet-url"], "--kubelet-pods-api-socket=" + socket,
		"--insecure-listen-address", "127.0.0.1:0", "--upstream", "off",
		"--cri-stream=" + strconv.FormatBool(sc.stream), "--poll-interval", "1s", "--log-level", "error", "--stuck-threshold", "0"}
	if sc.box != "" {
		args = append(args, "--journal-path", filepath.Join(dir, "journal.db"), "--pod-logs-dir", logsDir)
	}
	if sc.box == boxOff {
		args = append(args, "--blackbox-lines=0")
	}
	agent, base, stopAgent, err := startAgentProc(bin, args...)
	if err != nil {
		return res, err
	}
	defer stopAgent()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("agent not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // warm up: first listing, first correlation
	if mode := kubeletMode(client, base); mode != sc.kubelet {
		return res, fmt.Errorf("the agent reads the kubelet in mode %q, want %q", mode, sc.kubelet)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	go watch(ctx, base, func(d time.Duration) { mu.Lock(); res.latencies = append(res.latencies, d); mu.Unlock() })
	pid := agent.Process.Pid
	t0, w0 := cpuSeconds(pid), time.Now()
	// Phase 1: cost, with nothing but /proc reads and the watch stream.
	var rss []float64
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(500 * time.Millisecond)
		rss = append(rss, rssMiB(pid))
	}
	t1, w1 := cpuSeconds(pid), time.Now()
	cancel()
	// Phase 2: response times, ten requests each, spaced like scrapes.
	var metricsT, podsT []float64
	for i := 0; i < 10; i++ {
		metricsT = append(metricsT, timeGet(client, base+"/metrics"))
		podsT = append(podsT, timeGet(client, base+"/api/v1/pods"))
		time.Sleep(200 * time.Millisecond)
	}
	if err := checkBlackBox(client, base, sc); err != nil {
		return res, err
	}
	res.cpuPct = (t1 - t0) / w1.Sub(w0).Seconds() * 100
	res.rssSteadyMiB = median(rss)
	res.rssPeakMiB = peakRSS(pid)
	res.metricsMs, res.podsMs = median(metricsT), median(podsT)
	mu.Lock()
	defer mu.Unlock()
	res.latencies = append([]time.Duration(nil), res.latencies...)
	return res, nil
}

// checkBlackBox makes sure a scenario measured what it says: with the black
// box on and restarts, attempts were captured, and none found unreadable.
func checkBlackBox(c *http.Client, base string, sc scenario) error {
	if sc.box != boxOn || sc.churn == 0 {
		return nil
	}
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := string(b)
	if !strings.Contains(m, `podlife_blackbox_captures_total{result="unreadable"} 0`) ||
		strings.Contains(m, `podlife_blackbox_captures_total{result="captured"} 0`) || !strings.Contains(m, `podlife_blackbox_captures_total{result="captured"}`) {
		return fmt.Errorf("black box on, but not capturing the simulated logs:\n%s", grep(m, "podlife_blackbox_captures_total{"))
	}
	return nil
}

// grep returns the lines of s that hold sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// kubeletMode is the agent's kubelet source mode (sources.kubelet.mode).
func kubeletMode(c *http.Client, base string) string {
	resp, err := c.Get(base + "/api/v1/pods")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var r struct {
		Sources map[string]struct{ Mode string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err.Error()
	}
	return r.Sources["kubelet"].Mode
}

// watch reads the transition stream and reports, for every restart the
// simulated runtime made, the time from the restart to its arrival here.
func watch(ctx context.Context, base string, observe func(time.Duration)) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/transitions?watch=true", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		now := time.Now()
		var t struct {
			Kind, Source, To string
			HappenedAt       time.Time `json:"happenedAt"`
		}
		if json.Unmarshal(sc.Bytes(), &t) != nil {
			continue
		}
		if t.Kind == "ContainerStateChanged" && t.Source == "runtime" && t.To == "RUNNING" && !t.HappenedAt.IsZero() {
			observe(now.Sub(t.HappenedAt))
		}
	}
}

// cpuSeconds is the CPU time pid's threads have run, as the scheduler
// measured it (the first field of each /proc/<pid>/task/*/schedstat, in
// nanoseconds). /proc/<pid>/stat's utime and stime are samples at the
// 100 Hz tick instead: in a 10 s window a 2 % process is about 20 ticks,
// so a window read from them moves by half a percent from sampling alone.
// Without schedstat (a kernel without CONFIG_SCHED_INFO), the ticks.
func cpuSeconds(pid int) float64 {
	if s, ok := schedSeconds(fmt.Sprintf("/proc/%d/task", pid)); ok {
		return s
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // CLK_TCK on Linux
}

// schedSeconds sums the run time of the tasks under dir (a /proc/<pid>/task).
// A thread that has exited is not counted: Go keeps its threads.
func schedSeconds(dir string) (float64, bool) {
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var ns float64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		f := strings.Fields(string(b))
		if err != nil || len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, false
		}
		ns += v
	}
	return ns / 1e9, true
}

func status(pid int, key string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return v / 1024
		}
	}
	return 0
}

func rssMiB(pid int) float64  { return status(pid, "VmRSS") }
func peakRSS(pid int) float64 { return status(pid, "VmHWM") }

func timeGet(c *http.Client, url string) float64 {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return float64(time.Since(start).Microseconds()) / 1000
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func pct(d []time.Duration, p int) string {
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(100 * time.Microsecond).String()
}

func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	var uts syscall.Utsname
	syscall.Uname(&uts)
	rel := make([]byte, 0, 65)
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s, %s", runtime.NumCPU(), model, rel, runtime.Version())
}

func render(scenarios []scenario, results map[scenario][]result, runs int, dur time.Duration, benchFile string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Load harness: the real agent binary against `podlife simnode` (a separate process)\n\n")
	fmt.Fprintf(&b, "Each row: median over %d runs of %s each, measured from outside the agent (/proc, HTTP); CPU is the scheduler's run time of the agent's threads over the window (`/proc/<pid>/task/*/schedstat`; before 2026-12-07 19:00 it was 100 Hz ticks of `/proc/<pid>/stat`, half a percent of sampling noise in a 10 s window). Pods have 4 containers; churn = container restarts per second in the simulated runtime; runtime: CRI event stream or relist; kubelet: its Pods API watch (`pods-api`, Kubernetes 1.37) or `/pods` polled every second (`pods-http`); detection latency = restart in the simulated runtime to its transition on `/api/v1/transitions?watch=true`, percentiles over all runs' samples. Poll interval 1 s.\n\n", runs, dur)
	b.WriteString("| pods | churn/s | runtime | kubelet | CPU % of a core | RSS steady MiB | RSS peak MiB | /metrics ms | /api/v1/pods ms | detection p50 | detection p99 | samples |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		rs := results[sc]
		col := func(f func(result) float64) float64 {
			var xs []float64
			for _, r := range rs {
				xs = append(xs, f(r))
			}
			return median(xs)
		}
		var lat []time.Duration
		for _, r := range rs {
			lat = append(lat, r.latencies...)
		}
		mode := "stream"
		if !sc.stream {
			mode = "poll"
		}
		kubelet := sc.kubelet
		if sc.box != "" {
			kubelet += "; " + sc.box
		}
		fmt.Fprintf(&b, "| %d | %g | %s | %s | %.2f | %.1f | %.1f | %.1f | %.1f | %s | %s | %d |\n", sc.pods, sc.churn, mode, kubelet,
			col(func(r result) float64 { return r.cpuPct }), col(func(r result) float64 { return r.rssSteadyMiB }),
			col(func(r result) float64 { return r.rssPeakMiB }), col(func(r result) float64 { return r.metricsMs }),
			col(func(r result) float64 { return r.podsMs }), pct(lat, 50), pct(lat, 99), len(lat))
	}
	b.WriteString("\n## Go benchmarks (medians of `-count 5`)\n\n")
	b.WriteString(benchTable(benchFile))
	return b.String()
}

// benchTable summarises go test -bench output: the median of each column.
func benchTable(path string) string {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return "(no " + path + ": run `make bench`)\n"
	}
	defer f.Close()
	type cols map[string][]float64
	rows := map[string]cols{}
	var order []string
	pkg := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "pkg: ") {
			pkg = strings.TrimPrefix(line, "pkg: github.com/podlife/podlife/")
		}
		if !strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, realNodeBench) {
			continue
		}
		fs := strings.Fields(line)
		name := pkg + " " + fs[0]
		if rows[name] == nil {
			rows[name] = cols{}
			order = append(order, name)
		}
		for i := 2; i+1 < len(fs); i += 2 {
			v, err := strconv.ParseFloat(fs[i], 64)
			if err == nil {
				rows[name][fs[i+1]] = append(rows[name][fs[i+1]], v)
			}
		}
	}
	var b strings.Builder
	b.WriteString("| benchmark | ns/op | B/op | allocs/op | other |\n|---|---|---|---|---|\n")
	for _, name := range order {
		c := rows[name]
		other := []string{}
		for unit, xs := range c {
			if unit != "ns/op" && unit != "B/op" && unit != "allocs/op" {
				other = append(other, fmt.Sprintf("%.0f %s", median(xs), unit))
			}
		}
		slices.Sort(other)
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %s |\n", name, median(c["ns/op"]), median(c["B/op"]), median(c["allocs/op"]), strings.Join(other, ", "))
	}
	return b.String()
}

// realNodeBench is the benchmark of the real containerd + kubelet node.
const realNodeBench = "BenchmarkRealNode"

// realNode renders BenchmarkRealNode's figures and its log (-v) from bench.out.
func realNode(path string) string {
	data, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return ""
	}
	var metrics, log []string
	inLog := false // the benchmark's b.Logf report, up to its result line
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, realNodeBench+"-"): // its result line (it reports no ns/op)
			inLog = false
			metrics = nil
			fs := strings.Fields(line)
			for i := 2; i+1 < len(fs); i += 2 {
				if fs[i+1] != "ns/op" {
					metrics = append(metrics, fmt.Sprintf("| %s | %s |", fs[i+1], fs[i]))
				}
			}
		case strings.HasPrefix(trimmed, "realnode_bench_test.go:"):
			inLog, log = true, nil
			_, text, _ := strings.Cut(trimmed, ": ")
			log = append(log, text)
		case inLog && trimmed != "":
			log = append(log, strings.TrimPrefix(line, "        "))
		}
	}
	if len(metrics) == 0 {
		return "\n## Real node\n\n(no BenchmarkRealNode in " + path + ": run `make bench` as root)\n"
	}
	var b strings.Builder
	b.WriteString("\n## Real node: the agent against a real containerd + runc and a real kubelet\n\n")
	b.WriteString("`go test -run '^$' -bench RealNode -benchtime 1x -v ./cmd/podlife` (one run; medians over its windows):\n\n")
	b.WriteString("| figure | value |\n|---|---|\n")
	b.WriteString(strings.Join(metrics, "\n") + "\n")
	if len(log) > 0 {
		b.WriteString("\n```\n" + strings.Join(log, "\n") + "\n```\n")
	}
	return b.String()
}
