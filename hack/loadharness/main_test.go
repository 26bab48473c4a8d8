package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The report takes the Go benchmarks' medians and the real-node
// benchmark's figures and log from go test -bench -v output.
func TestReportFromBenchOutput(t *testing.T) {
	out := `pkg: github.com/podlife/podlife/lifecycle
BenchmarkCorrelate-2   	 100	  700 ns/op	  10 B/op	 1 allocs/op
BenchmarkCorrelate-2   	 100	  900 ns/op	  30 B/op	 3 allocs/op
BenchmarkCorrelate-2   	 100	  800 ns/op	  20 B/op	 2 allocs/op
pkg: github.com/podlife/podlife/cmd/podlife
=== RUN   BenchmarkRealNode
    realnode_bench_test.go:293: real node: 110 static pods
        detection p50 ms
          podlife 280.3
BenchmarkRealNode-2  	 1	 52.04 byhand-cpu-%	 47.58 cost-ratio
PASS
`
	path := filepath.Join(t.TempDir(), "bench.out")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	table := benchTable(path)
	if !strings.Contains(table, "| lifecycle BenchmarkCorrelate-2 | 800 | 20 | 2 |") || strings.Contains(table, "RealNode") {
		t.Errorf("benchmark table:\n%s", table)
	}
	real := realNode(path)
	for _, want := range []string{"| byhand-cpu-% | 52.04 |", "| cost-ratio | 47.58 |", "real node: 110 static pods\n", "\n  podlife 280.3\n"} {
		if !strings.Contains(real, want) {
			t.Errorf("real-node section lacks %q:\n%s", want, real)
		}
	}
	if strings.Contains(real, "ns/op") {
		t.Errorf("real-node section shows ns/op:\n%s", real)
	}
}

// The agent's CPU is the scheduler's run time of all its threads, in
// seconds; a task directory that cannot be read as such is not taken.
func TestSchedSeconds(t *testing.T) {
	dir := t.TempDir()
	write := func(task, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, task), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, task, "schedstat"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("100", "1500000000 2000 30\n")
	write("101", "250000000 10 3\n")
	if s, ok := schedSeconds(dir); !ok || s != 1.75 {
		t.Errorf("schedSeconds = %v, %v; want 1.75, true", s, ok)
	}
	write("102", "garbage\n")
	if s, ok := schedSeconds(dir); ok {
		t.Errorf("schedSeconds with an unreadable task = %v, true; want false", s)
	}
	if _, ok := schedSeconds(filepath.Join(dir, "none")); ok {
		t.Error("schedSeconds of a missing directory: ok")
	}
	// This process's own threads: the figure grows while it runs.
	self, deadline := cpuSeconds(os.Getpid()), time.Now().Add(time.Minute)
	for x := 0; cpuSeconds(os.Getpid()) <= self; x++ {
		if time.Now().After(deadline) {
			t.Fatalf("a minute of a busy loop and this process's CPU is still %v s", self)
		}
		_ = strings.Repeat("x", x%64)
	}
}
