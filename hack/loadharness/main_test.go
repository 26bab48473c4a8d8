package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
