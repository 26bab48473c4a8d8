package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// header is the report's beginning: the machine, the date and the commit
// measured, so that a figure can be traced to the code it came from.
func header(machine string, now time.Time, commit string, args []string) string {
	return fmt.Sprintf("# podlife benchmarks\n\nMachine: %s  \nDate: %s  \nCommit: %s  \nCommand: `make bench` (Go benchmarks `-count 5 -benchmem` here and at the previous commit, then `%s`)\n\n",
		machine, now.UTC().Format("2006-01-02 15:04 MST"), commit, strings.Join(append([]string{"go run ./hack/loadharness"}, args[1:]...), " "))
}

// commit names the commit measured: `git rev-parse --short HEAD`, with
// -dirty if tracked files differ from it. The report itself (out) is left
// out of that check: the previous run rewrote it, and this run will again.
func commit(out string) string {
	rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (git rev-parse: " + err.Error() + ")"
	}
	short := strings.TrimSpace(string(rev))
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return short + " (git rev-parse --show-toplevel: " + err.Error() + ")"
	}
	status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return short + " (git status: " + err.Error() + ")"
	}
	abs, _ := filepath.Abs(out)
	rel, _ := filepath.Rel(strings.TrimSpace(string(top)), abs)
	return commitLabel(short, string(status), filepath.ToSlash(rel))
}

// commitLabel is rev (git rev-parse --short) with -dirty when status (git
// status --porcelain: "XY path" a line, paths from the top of the tree)
// lists a change to any file but ignore.
func commitLabel(rev, status, ignore string) string {
	for _, line := range strings.Split(status, "\n") {
		if len(line) > 3 && line[3:] != ignore {
			return rev + "-dirty"
		}
	}
	return rev
}

// benchCompare is hack/benchcmp.sh's markdown section (benchstat of the Go
// benchmarks at the previous commit against this one's), as it wrote it.
func benchCompare(path string) string {
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return "\n## Go benchmarks against the previous commit\n\n(no " + path + ": `make bench` writes it with hack/benchcmp.sh)\n"
	}
	return "\n" + strings.TrimSpace(string(b)) + "\n"
}

// keptMarker ends what make bench writes; what follows it in the report is
// kept from one run to the next (measurements made by hand, dated).
const keptMarker = "<!-- make bench rewrites everything above this line and keeps everything below it: measurements by hand, each dated. -->"

// keptTail is the part of the previous report that a rewrite keeps: from
// keptMarker on, or the marker alone if the previous report had none.
func keptTail(old string) string {
	if i := strings.Index(old, keptMarker); i >= 0 {
		return "\n" + old[i:]
	}
	return "\n" + keptMarker + "\n"
}
