package main

import (
	"strings"
	"testing"
	"time"
)

// The header names the date and the commit measured, -dirty when tracked
// files differ from it.
func TestHeaderNamesDateAndCommit(t *testing.T) {
	for status, want := range map[string]string{
		"":                                "5340342",
		" M BENCHMARKS.md\n":              "5340342", // the report, rewritten by the previous run
		" M hack/loadharness/main.go\n":   "5340342-dirty",
		" M BENCHMARKS.md\nA  Makefile\n": "5340342-dirty",
	} {
		if got := commitLabel("5340342", status, "BENCHMARKS.md"); got != want {
			t.Errorf("status %q: %q, want %q", status, got, want)
		}
	}
	h := header("2 CPUs", time.Date(2026, 12, 8, 9, 30, 0, 0, time.UTC), "5340342-dirty", []string{"loadharness", "-runs", "5"})
	for _, want := range []string{"Date: 2026-12-08 09:30 UTC  \n", "Commit: 5340342-dirty  \n", "`go run ./hack/loadharness -runs 5`"} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %q:\n%s", want, h)
		}
	}
}

// A rewrite keeps what follows the marker in the previous report, once,
// and writes the marker into a report that had none.
func TestRewriteKeepsWhatFollowsTheMarker(t *testing.T) {
	byHand := "\n## Fleet (2026-12-07)\n\nmeasured by hand\n"
	first := "# podlife benchmarks\n\nold figures\n" + keptTail("# an old report without the marker\n")
	if strings.Count(first, keptMarker) != 1 || strings.Contains(first, "an old report") {
		t.Fatalf("first rewrite:\n%s", first)
	}
	first += byHand
	second := "# podlife benchmarks\n\nnew figures\n" + keptTail(first)
	if strings.Contains(second, "old figures") || strings.Count(second, keptMarker) != 1 || !strings.HasSuffix(second, keptMarker+"\n"+byHand) {
		t.Errorf("second rewrite:\n%s", second)
	}
}
