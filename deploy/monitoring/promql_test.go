package monitoring

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/podlife/podlife/internal/testenv"
)

// promqlKeywords are PromQL words that are neither metrics nor functions.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true, "by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true,
	// Aggregation operators, which may be followed by by/without rather
	// than "(".
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
	"limitk": true, "limit_ratio": true,
}

// labelListWords are followed by a parenthesized list of label names.
var labelListWords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression selects, and an
// error for what the scanner cannot read (an unterminated string, brace or
// bracket). It is a scanner, not a parser (the main module does not depend on
// Prometheus' parser; promtool checks the syntax): it skips string literals,
// label matchers {...}, ranges [...], label lists after by/without/on/
// ignoring/group_left/group_right, numbers and durations, keywords, and
// identifiers followed by "(" (functions and aggregations). What remains are
// metric names, and __name__="..." matchers name metrics too.
func metricNames(expr string) ([]string, error) {
	names := map[string]bool{}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
		return i
	}
	// closing returns the index after the delimiter that closes the one at
	// i, skipping strings inside.
	closing := func(i int, open, close byte) (int, error) {
		depth := 0
		for j := i; j < len(expr); j++ {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				end, err := stringEnd(expr, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unterminated %q at offset %d in %q", open, i, expr)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := stringEnd(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			end, err := closing(i, '{', '}')
			if err != nil {
				return nil, err
			}
			for _, m := range nameMatcher.FindAllStringSubmatch(expr[i:end], -1) {
				names[m[1]] = true
			}
			i = end
		case c == '[':
			end, err := closing(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = end
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++ // a number or a duration such as 5m or 1h30m
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case labelListWords[strings.ToLower(word)]:
				if next < len(expr) && expr[next] == '(' {
					end, err := closing(next, '(', ')')
					if err != nil {
						return nil, err
					}
					j = end
				}
			case promqlKeywords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(':
				// a function or an aggregation
			default:
				names[word] = true
			}
			i = j
		default:
			i++
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

var nameMatcher = regexp.MustCompile(`__name__\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)

// stringEnd returns the index after the string literal that starts at i.
func stringEnd(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string at offset %d in %q", i, s)
}

// exported is what podlife's /metrics exports, by family name, with each
// family's type ("gauge", "counter", "histogram", ...).
type exported map[string]string

// has reports whether a series name belongs to an exported family: the name
// itself, or a histogram's _bucket, _sum or _count.
func (e exported) has(name string) bool {
	if _, ok := e[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && (e[base] == "histogram" || e[base] == "summary") {
			return true
		}
	}
	return false
}

// parseExposition reads the families of a text exposition: its # TYPE
// lines, and the names of samples without one (untyped).
func parseExposition(text string) exported {
	e := exported{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !e.has(name) {
			e[name] = "untyped"
		}
	}
	return e
}

// goldenExported is the families of golden files of agent/testdata.
func goldenExported(files ...string) (exported, error) {
	var text []byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "agent", "testdata", f))
		if err != nil {
			return nil, fmt.Errorf("read the metrics golden file: %w", err)
		}
		text = append(text, b...)
	}
	return parseExposition(string(text)), nil
}

// Go source of the agent's registry: the families it registers by name.
var (
	goMetricName = regexp.MustCompile(`Name:\s*"(podlife_[a-z0-9_]+)"`)
	goHistogram  = regexp.MustCompile(`Histogram(?:Vec)?\(prometheus\.HistogramOpts\{Name:\s*"(podlife_[a-z0-9_]+)"`)
	goDesc       = regexp.MustCompile(`\bdesc\("([a-z0-9_]+)"`)
)

// staticExported is podlife's exported families without running it: the
// pod and node families of agent/testdata/metrics.golden and
// metrics-ksm.golden (what exposition.go writes, by default and with
// --pod-metrics=ksm-compatible), the registry's families named in agent/*.go (counters, gauges,
// histograms, desc("...") collectors), and the Go and process collectors'
// process_* families that the dashboard uses. TestLiveMetrics checks it
// against a running agent's /metrics.
func staticExported() (exported, error) {
	root := testenv.RepoRoot()
	e, err := goldenExported("metrics.golden", "metrics-ksm.golden")
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(root, "agent", "*.go"))
	if err != nil {
		return nil, fmt.Errorf("list agent sources: %w", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		for _, m := range goMetricName.FindAllStringSubmatch(string(src), -1) {
			if _, ok := e[m[1]]; !ok {
				e[m[1]] = "counter-or-gauge"
			}
		}
		for _, m := range goHistogram.FindAllStringSubmatch(string(src), -1) {
			e[m[1]] = "histogram"
		}
		for _, m := range goDesc.FindAllStringSubmatch(string(src), -1) {
			if _, ok := e["podlife_"+m[1]]; !ok {
				e["podlife_"+m[1]] = "counter-or-gauge"
			}
		}
	}
	// client_golang's process collector (collectors.NewProcessCollector).
	for _, n := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"} {
		e[n] = "gauge"
	}
	return e, nil
}
