package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/cri/crilog"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/testenv"
)

// The crash black box against a real containerd and kubelet. The pods'
// containers are static pods of a standalone kubelet whose crash-loop
// back-off is capped at 1 s; "loop" exits only when the test tells it to
// (a file in a hostPath directory), so that every attempt is the test's.
const blackBoxPods = `
loop: |
  apiVersion: v1
  kind: Pod
  metadata: {name: loop, namespace: bb}
  spec:
    hostNetwork: true
    volumes: [{name: data, hostPath: {path: DATA, type: DirectoryOrCreate}}]
    containers:
    - name: app
      image: IMG
      imagePullPolicy: Never
      volumeMounts: [{name: data, mountPath: /data}]
      command: [sh, -c, 'n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; i=0; while [ $i -lt 60 ]; do echo "noise $n $i"; i=$((i+1)); done; echo "attempt $n TOKEN-$n"; while [ ! -e /data/go-$n ]; do sleep 0.1; done; exit 3']
oom: |
  apiVersion: v1
  kind: Pod
  metadata: {name: oom, namespace: bb}
  spec:
    hostNetwork: true
    restartPolicy: Never
    containers:
    - name: hog
      image: IMG
      imagePullPolicy: Never
      command: [sh, -c, "echo about to eat memory TOKEN; x=$(dd if=/dev/zero bs=1M count=256 2>/dev/null | tr '\\0' x); sleep 3600"]
      resources: {limits: {memory: 64Mi}}
mixed: |
  apiVersion: v1
  kind: Pod
  metadata: {name: mixed, namespace: bb}
  spec:
    hostNetwork: true
    restartPolicy: Never
    containers:
    - name: app
      image: IMG
      imagePullPolicy: Never
      command: [sh, -c, "printf 'out-1\\n'; printf 'err-1\\n' >&2; printf 'out-2 \\377\\376 not utf-8 \\033[31m\\n'; printf 'err-2 partial' >&2; printf 'no newline at the end'; exit 1"]
big: |
  apiVersion: v1
  kind: Pod
  metadata: {name: big, namespace: bb}
  spec:
    hostNetwork: true
    restartPolicy: Never
    containers:
    - name: app
      image: IMG
      imagePullPolicy: Never
      command: [sh, -c, "yes 0123456789012345678901234567890123456789012345678901234567890123456789012345678 | head -c 209715200; echo; echo LAST-LINE TOKEN; exit 2"]
`

func blackBoxManifests(t *testing.T, data, token string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var name string
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(blackBoxPods))
	flush := func() {
		if name != "" {
			out[name] = strings.NewReplacer("IMG", testenv.BusyboxImage, "DATA", data, "TOKEN", token).Replace(b.String())
		}
		b.Reset()
	}
	for sc.Scan() {
		l := sc.Text()
		if n, ok := strings.CutSuffix(l, ": |"); ok && !strings.HasPrefix(l, " ") {
			flush()
			name = n
			continue
		}
		b.WriteString(strings.TrimPrefix(l, "  ") + "\n")
	}
	flush()
	return out
}

func logsFrom(server, ns, pod, query string) (agent.LogsResponse, int) {
	var r agent.LogsResponse
	code := getJSONFrom(server+"/api/v1/pods/"+ns+"/"+pod+"/logs"+query, &r)
	return r, code
}

func lineTexts(b journal.BlackBox) []string {
	var out []string
	for _, l := range b.Lines {
		out = append(out, l.Text)
	}
	return out
}

// kubeletLogs is what the kubelet itself still serves of a container
// (GET /containerLogs, as kubectl logs reads it), previous or current.
func kubeletLogs(t *testing.T, k *testenv.Kubelet, pod, container string, previous bool) string {
	t.Helper()
	resp, err := k.HTTPClient(t).Get(fmt.Sprintf("%s/containerLogs/bb/%s/%s?previous=%v", k.HTTPSURL, pod, container, previous))
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b)
}

func TestCrashBlackBox(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (containerd, kubelet): not in -short")
	}
	bin := buildPodlife(t)
	ctd := testenv.StartContainerd(t)
	ctd.ImportImages(t)
	k := testenv.StartKubeletRestartingFast(t, ctd, "podlife-bb")
	var raw [6]byte
	rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	data := t.TempDir()
	manifests := blackBoxManifests(t, data, token)
	k.AddStaticPod(t, "loop", manifests["loop"])
	journalPath := filepath.Join(t.TempDir(), "journal.db")
	logPath := filepath.Join(t.TempDir(), "agent.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log tail:\n%s", testenv.Tail(string(b), 3000))
		}
	})
	args := []string{"--node-name", "podlife-bb", "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL,
		"--poll-interval", "500ms", "--upstream", "off", "--journal-path", journalPath, "--stuck-threshold", "0",
		"--pod-logs-dir", filepath.Join(k.Dir, "logs")}
	ag := startAgent(t, bin, logPath, args...)
	outer := t // an agent started in a subtest must outlive it
	loop := "loop-podlife-bb"

	// attempts waits until the loop's black box holds n attempts, and returns them.
	attempts := func(server string, n int) []journal.BlackBox {
		var r agent.LogsResponse
		testenv.Eventually(t, fmt.Sprintf("%d attempts of bb/%s in the black box", n, loop), 60*time.Second, func() bool {
			r, _ = logsFrom(server, "bb", loop, "?container=app")
			return len(r.Attempts) >= n
		})
		return r.Attempts
	}
	exit := func(n int) {
		if err := os.WriteFile(filepath.Join(data, "go-"+strconv.Itoa(n)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 4; n++ {
		exit(n)
		attempts(ag.URL, n)
	}
	t.Run("every attempt of a crash loop, where the kubelet keeps the last ones", func(t *testing.T) {
		got := attempts(ag.URL, 4)
		for i, b := range got {
			want := fmt.Sprintf("attempt %d %s-%d", i+1, token, i+1)
			texts := lineTexts(b)
			if b.ExitCode != 3 || b.Reason != "Error" || len(texts) == 0 || texts[len(texts)-1] != want || len(texts) != 50 || !b.Truncated {
				t.Errorf("attempt %d: exit %d %s, %d lines ending %q, truncated %v; want exit 3 Error, the last 50 lines ending %q",
					i+1, b.ExitCode, b.Reason, len(texts), texts[max(len(texts)-1, 0):], b.Truncated, want)
			}
			// Not finishedAt >= startedAt: containerd stamps startedAt after
			// the start call returns, so an attempt that exits at once (its
			// go-file already there) can finish "before" it started (seen:
			// 0.6 ms, under -race).
			if b.Attempt != uint32(i) || b.FinishedAt.IsZero() || b.StartedAt.IsZero() {
				t.Errorf("attempt %d: CRI attempt %d, %s to %s", i+1, b.Attempt, b.StartedAt, b.FinishedAt)
			}
		}
		out, err := exec.Command(bin, "logs", "bb/"+loop, "--all", "--server", ag.URL).CombinedOutput()
		if err != nil || strings.Count(string(out), "== app attempt") != len(got) || !strings.Contains(string(out), "exit 3 Error") {
			t.Errorf("podlife logs --all: %v\n%s", err, out)
		}
		t.Logf("podlife logs bb/%s --all keeps %d attempts, last lines:\n%s", loop, len(got), lastLines(string(out)))
		t.Logf("the kubelet's /containerLogs (kubectl logs) for the same container:\n  previous: %s\n  current:  %s",
			lastLine(kubeletLogs(t, k, loop, "app", true)), lastLine(kubeletLogs(t, k, loop, "app", false)))
		out, err = exec.Command(bin, "describe", "bb/"+loop, "--server", ag.URL).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Attempts (crash black box") || !strings.Contains(string(out), fmt.Sprintf("attempt 4 %s-4", token)) {
			t.Errorf("describe shows no attempts: %v\n%s", err, out)
		}
	})
	t.Run("an agent restarted between exits loses nothing and keeps nothing twice", func(t *testing.T) {
		ag.Process.Signal(syscall.SIGTERM)
		if err := ag.wait(); err != nil {
			t.Fatalf("agent exit: %v", err)
		}
		exit(5) // while the agent is down
		testenv.Eventually(t, "the kubelet restarted the loop a fifth time", 60*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(data, "n"))
			return strings.TrimSpace(string(b)) == "6"
		})
		ag = startAgent(outer, bin, logPath, args...)
		exit(6)
		got := attempts(ag.URL, 6)
		var seen []string
		for _, b := range got {
			seen = append(seen, fmt.Sprintf("%d:%s", b.Attempt, b.ContainerID))
		}
		ids := slices.Clone(seen)
		sort.Strings(ids)
		if len(got) != 6 || len(slices.Compact(ids)) != 6 {
			t.Fatalf("after a restart: attempts %v, want 6 distinct", seen)
		}
		for i, b := range got {
			if texts := lineTexts(b); texts[len(texts)-1] != fmt.Sprintf("attempt %d %s-%d", i+1, token, i+1) {
				t.Errorf("attempt %d ends %q", i+1, texts[len(texts)-1])
			}
		}
	})
	t.Run("exit to black box: 20 more exits, and the per-container bound", func(t *testing.T) {
		var lat []time.Duration
		for n := 7; n <= 26; n++ {
			exit(n)
			var r agent.LogsResponse
			testenv.Eventually(t, fmt.Sprintf("attempt %d captured", n), 60*time.Second, func() bool {
				r, _ = logsFrom(ag.URL, "bb", loop, fmt.Sprintf("?container=app&attempt=%d", n-1))
				return len(r.Attempts) == 1
			})
			b := r.Attempts[0]
			lat = append(lat, b.CapturedAt.Sub(b.FinishedAt))
		}
		slices.Sort(lat)
		t.Logf("exit (runtime finishedAt) to captured in the journal, %d exits: p50 %s, p99 %s, max %s", len(lat),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		got := attempts(ag.URL, agent.DefaultBlackBoxAttempts)
		if len(got) != agent.DefaultBlackBoxAttempts || got[0].Attempt != 16 || got[len(got)-1].Attempt != 25 {
			t.Errorf("after 26 attempts the black box keeps %d, attempts %d..%d; want the last %d", len(got), got[0].Attempt,
				got[len(got)-1].Attempt, agent.DefaultBlackBoxAttempts)
		}
		resp, err := http.Get(ag.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// The restarted agent evicted attempts 6..15 (it kept 0..5 from before).
		if want := `podlife_blackbox_evictions_total{bound="attempts"} 16`; !strings.Contains(string(m), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, grepLines(string(m), "podlife_blackbox"))
		}
	})
	t.Run("OOMKilled, partial lines, both streams and invalid UTF-8 as written", func(t *testing.T) {
		k.AddStaticPod(t, "oom", manifests["oom"])
		k.AddStaticPod(t, "mixed", manifests["mixed"])
		var oom, mixed agent.LogsResponse
		testenv.Eventually(t, "the OOM kill and the mixed output captured", 90*time.Second, func() bool {
			oom, _ = logsFrom(ag.URL, "bb", "oom-podlife-bb", "")
			mixed, _ = logsFrom(ag.URL, "bb", "mixed-podlife-bb", "")
			return len(oom.Attempts) > 0 && len(mixed.Attempts) > 0
		})
		o := oom.Attempts[0]
		if o.Reason != "OOMKilled" || o.ExitCode != 137 || !slices.Contains(lineTexts(o), "about to eat memory "+token) {
			t.Errorf("OOM: exit %d %s, lines %q", o.ExitCode, o.Reason, lineTexts(o))
		}
		m := mixed.Attempts[0]
		written := parseAsWritten(t, m.LogPath)
		var got []string
		for _, l := range m.Lines {
			raw := l.Text
			if l.Raw != nil {
				raw = string(l.Raw)
			}
			got = append(got, fmt.Sprintf("%s %v %q", l.Stream, l.Partial, raw))
		}
		if strings.Join(got, "\n") != strings.Join(written, "\n") {
			t.Errorf("the black box:\n%s\nthe log file as containerd wrote it:\n%s", strings.Join(got, "\n"), strings.Join(written, "\n"))
		}
		for _, l := range m.Lines {
			if strings.IndexByte(l.Text, 0x1b) >= 0 || strings.IndexByte(l.Text, 0xff) >= 0 {
				t.Errorf("line shown unescaped: %q", l.Text)
			}
		}
		t.Logf("mixed output kept as written:\n%s", strings.Join(got, "\n"))
	})
	t.Run("200 MiB of logs: the capture reads a bounded amount", func(t *testing.T) {
		before := procStatus(t, ag.Process.Pid)
		k.AddStaticPod(t, "big", manifests["big"])
		var r agent.LogsResponse
		testenv.Eventually(t, "the big writer's exit captured", 180*time.Second, func() bool {
			r, _ = logsFrom(ag.URL, "bb", "big-podlife-bb", "")
			return len(r.Attempts) > 0
		})
		b := r.Attempts[0]
		after := procStatus(t, ag.Process.Pid)
		texts := lineTexts(b)
		if b.ExitCode != 2 || len(texts) == 0 || texts[len(texts)-1] != "LAST-LINE "+token {
			t.Errorf("big: exit %d, last lines %q", b.ExitCode, texts[max(len(texts)-3, 0):])
		}
		if limit := crilog.ReadCap(crilog.Limits{Lines: agent.DefaultBlackBoxLines, Bytes: agent.DefaultBlackBoxBytes}); b.ReadBytes > limit || b.ReadBytes <= 0 {
			t.Errorf("the capture read %d bytes, want at most %d", b.ReadBytes, limit)
		}
		size := int64(0)
		if fi, err := os.Stat(b.LogPath); err == nil {
			size = fi.Size()
		}
		t.Logf("200 MiB written (log file now %d bytes, the kubelet rotates at 10 MiB): capture read %d bytes, %d lines, "+
			"captured %s after the exit; agent RSS %s -> %s, peak %s", size, b.ReadBytes, len(texts),
			b.CapturedAt.Sub(b.FinishedAt).Round(time.Millisecond), before["VmRSS"], after["VmRSS"], after["VmHWM"])
	})
	t.Run("many crash-looping pods: the total size cap holds", func(t *testing.T) { checkBoxSizeCap(t, bin, ctd.Endpoint, k) })
}

// checkBoxSizeCap: 8 crash-looping pods, each attempt writing ~2 KiB, under
// a second agent (its own journal) that keeps at most 3 attempts per
// container and 32 KiB in all: once it has evicted by size, what it stores
// is within the cap and no container has more than 3 attempts.
func checkBoxSizeCap(t *testing.T, bin, criEndpoint string, k *testenv.Kubelet) {
	const pods, maxBytes, perContainer = 8, 32 << 10, 3
	logPath := filepath.Join(t.TempDir(), "agent.log")
	ag := startAgent(t, bin, logPath, "--node-name", "podlife-bb", "--cri-endpoint", criEndpoint, "--kubelet-url", k.ReadOnlyURL,
		"--poll-interval", "500ms", "--upstream", "off", "--journal-path", filepath.Join(t.TempDir(), "journal.db"),
		"--stuck-threshold", "0", "--pod-logs-dir", filepath.Join(k.Dir, "logs"),
		"--blackbox-max-bytes", strconv.Itoa(maxBytes), "--blackbox-attempts", strconv.Itoa(perContainer))
	for i := range pods {
		name := fmt.Sprintf("churn%d", i)
		k.AddStaticPod(t, name, strings.NewReplacer("NAME", name, "IMG", testenv.BusyboxImage).Replace(`apiVersion: v1
kind: Pod
metadata: {name: NAME, namespace: bb}
spec:
  hostNetwork: true
  containers:
  - name: app
    image: IMG
    imagePullPolicy: Never
    command: [sh, -c, 'i=0; while [ $i -lt 40 ]; do echo "NAME line $i of an attempt that will exit 1 soon, padding padding"; i=$((i+1)); done; exit 1']
`))
		defer os.Remove(filepath.Join(k.ManifestDir, name+".yaml"))
	}
	metric := func(m, name string) float64 {
		for _, l := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				return f
			}
		}
		return -1
	}
	var m string
	testenv.Eventually(t, "the second agent evicting attempts by total size", 180*time.Second, func() bool {
		resp, err := http.Get(ag.URL + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m = string(b)
		return metric(m, `podlife_blackbox_evictions_total{bound="size"}`) > 0
	})
	if stored := metric(m, "podlife_blackbox_bytes"); stored > maxBytes || stored <= 0 {
		t.Errorf("podlife_blackbox_bytes %v, want within the cap %d", stored, maxBytes)
	}
	total := 0
	for i := range pods {
		name := fmt.Sprintf("churn%d-podlife-bb", i)
		r, _ := logsFrom(ag.URL, "bb", name, "?container=app")
		total += len(r.Attempts)
		if len(r.Attempts) > perContainer {
			t.Errorf("%s: %d attempts kept, want at most %d", name, len(r.Attempts), perContainer)
		}
	}
	t.Logf("%d crash-looping pods: %s; %d attempts kept in %v bytes (cap %d)", pods,
		strings.ReplaceAll(grepLines(m, "podlife_blackbox_evictions_total{"), "\n", ", "), total, metric(m, "podlife_blackbox_bytes"), maxBytes)
}

// parseAsWritten reads a CRI log file the plain way, every line forwards,
// to compare with what the black box kept: a stream's P fragments joined to
// its next F; a line sits where it ends; a stream's last entry, if a P,
// ends a partial line.
func parseAsWritten(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the log file, as written: %v", err)
	}
	var entries [][]string
	last := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) < 3 {
			t.Fatalf("not a CRI log line: %q", l)
		}
		if len(f) == 3 {
			f = append(f, "")
		}
		last[f[1]] = len(entries)
		entries = append(entries, f)
	}
	var out []string
	pending := map[string]string{}
	for i, f := range entries {
		stream, partial := f[1], f[2] == "P"
		pending[stream] += f[3]
		if !partial || last[stream] == i {
			out = append(out, fmt.Sprintf("%s %v %q", stream, partial, pending[stream]))
			delete(pending, stream)
		}
	}
	return out
}

var statusLine = regexp.MustCompile(`^(Vm\w+):\s+(.*)$`)

// procStatus reads the Vm* lines of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := statusLine.FindStringSubmatch(l); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndex(s, "\n")+1:]
}

func lastLines(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "==") || strings.Contains(l, " attempt ") {
			keep = append(keep, "  "+l)
		}
	}
	return strings.Join(keep, "\n")
}
