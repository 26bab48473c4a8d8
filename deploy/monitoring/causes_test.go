package monitoring

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// The causes the README's table and the PodlifePodsUnknown alert explain are
// exactly lifecycle.Causes: a cause added to the rules and not documented,
// or documented and gone, fails here.
func TestCausesDocumented(t *testing.T) {
	want := make([]string, len(lifecycle.Causes))
	for i, c := range lifecycle.Causes {
		want[i] = string(c)
	}
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "**Causes, each with `unknownSince`**")
	end := strings.Index(readme[max(start, 0):], "**Graces.**")
	if start < 0 || end < 0 {
		t.Fatal("README: no section **Causes, each with `unknownSince`** followed by **Graces.**")
	}
	var table []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\|").FindAllStringSubmatch(readme[start:start+end], -1) {
		table = append(table, m[1])
	}
	if !slices.Equal(table, want) {
		t.Errorf("README's cause table names, in order,\n%v\nlifecycle.Causes, in precedence order, are\n%v", table, want)
	}
	for _, c := range want {
		if !strings.Contains(readme[start:start+end], lifecycle.CauseMeaning(lifecycle.Cause(c))) {
			t.Errorf("README's row for %s does not say its meaning %q", c, lifecycle.CauseMeaning(lifecycle.Cause(c)))
		}
	}

	var desc string
	for _, g := range readRules(t, rulesFile).Groups {
		for _, r := range g.Rules {
			if r.Alert == "PodlifePodsUnknown" {
				desc = r.Annotations["description"]
			}
		}
	}
	var alert []string
	for _, m := range regexp.MustCompile(`eq \$labels\.cause "([a-z-]+)"`).FindAllStringSubmatch(desc, -1) {
		alert = append(alert, m[1])
	}
	if !slices.Equal(alert, want) {
		t.Errorf("PodlifePodsUnknown explains, in order,\n%v\nlifecycle.Causes are\n%v", alert, want)
	}
}
