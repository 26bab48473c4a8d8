package journal

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func box(ns, pod, ctr string, attempt int, text string) BlackBox {
	return BlackBox{Namespace: ns, Pod: pod, UID: "uid-" + pod, Container: ctr, ContainerID: fmt.Sprintf("%s-%s-%d", pod, ctr, attempt),
		Attempt: uint32(attempt), FinishedAt: t0.Add(time.Duration(attempt) * time.Second), ExitCode: 3, Reason: "Error",
		Lines: []BoxLine{{Time: t0, Stream: "stdout", Text: text}}, CapturedAt: t0}
}

func attempts(bs []BlackBox) (out []string) {
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s/%d", b.Container, b.Attempt))
	}
	return out
}

func TestBlackBoxesKeptAcrossReopenOnceEach(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	j := open(t, path, Options{})
	lim := BoxLimits{PerContainer: 10, MaxBytes: 1 << 20}
	if _, err := j.PutBlackBoxes([]BlackBox{box("a", "p", "c", 0, "zero"), box("a", "p", "b", 0, "b0"), box("a", "p2", "c", 0, "other pod")}, lim); err != nil {
		t.Fatal(err)
	}
	// The same attempt again (a restarted agent sees the exit anew): kept once.
	if _, err := j.PutBlackBoxes([]BlackBox{box("a", "p", "c", 0, "zero again"), box("a", "p", "c", 1, "one")}, lim); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j = open(t, path, Options{})
	got, err := j.BlackBoxes("a", "p", "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b/0", "c/0", "c/1"}; !slices.Equal(attempts(got), want) {
		t.Fatalf("boxes of a/p = %v, want %v", attempts(got), want)
	}
	if got[1].Lines[0].Text != "zero" {
		t.Errorf("a box put twice was replaced: %q", got[1].Lines[0].Text)
	}
	only, _ := j.BlackBoxes("a", "p", "c")
	if want := []string{"c/0", "c/1"}; !slices.Equal(attempts(only), want) {
		t.Errorf("boxes of a/p container c = %v, want %v", attempts(only), want)
	}
	for _, c := range []struct {
		id   string
		want bool
	}{{"p-c-1", true}, {"p-b-0", false}, {"nope", false}} {
		if has, err := j.HasBlackBox("a", "p", "c", c.id); err != nil || has != c.want {
			t.Errorf("HasBlackBox(a/p c %s) = %v, %v; want %v", c.id, has, err, c.want)
		}
	}
	if s, _ := j.BlackBoxStats(); s.Boxes != 4 || s.Bytes <= 0 {
		t.Errorf("stats = %+v, want 4 boxes", s)
	}
}

func TestBlackBoxBoundsEvictOldestFirst(t *testing.T) {
	j := open(t, filepath.Join(t.TempDir(), "j.db"), Options{})
	var ev Evicted
	for i := range 5 {
		e, err := j.PutBlackBoxes([]BlackBox{box("a", "p", "c", i, "x")}, BoxLimits{PerContainer: 3, MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		ev.PerContainer += e.PerContainer
		ev.Size += e.Size
	}
	got, _ := j.BlackBoxes("a", "p", "c")
	if want := []string{"c/2", "c/3", "c/4"}; !slices.Equal(attempts(got), want) || ev.PerContainer != 2 || ev.Size != 0 {
		t.Fatalf("per container 3: kept %v, evicted %+v; want %v and 2 per container", attempts(got), ev, want)
	}
	// The size bound evicts the oldest captured, across pods, never the new one.
	big := strings.Repeat("y", 4000)
	one, _ := j.PutBlackBoxes([]BlackBox{box("b", "q", "c", 0, big)}, BoxLimits{PerContainer: 3, MaxBytes: 1 << 20})
	s, _ := j.BlackBoxStats()
	e, err := j.PutBlackBoxes([]BlackBox{box("b", "q", "c", 1, big)}, BoxLimits{PerContainer: 3, MaxBytes: s.Bytes + 100})
	if err != nil || one != (Evicted{}) {
		t.Fatal(err, one)
	}
	after, _ := j.BlackBoxStats()
	if e.Size != 4 || after.Boxes != 1 || after.Bytes > s.Bytes+100 {
		t.Fatalf("size bound: evicted %+v, left %+v (bound %d): want the 4 older boxes gone and only b/q c/1 left", e, after, s.Bytes+100)
	}
	left, _ := j.BlackBoxes("b", "q", "")
	if want := []string{"c/1"}; !slices.Equal(attempts(left), want) {
		t.Errorf("left %v, want %v", attempts(left), want)
	}
	// One box larger than the bound is kept all the same (it is the newest).
	if e, _ := j.PutBlackBoxes([]BlackBox{box("b", "q", "c", 2, big)}, BoxLimits{PerContainer: 3, MaxBytes: 10}); e.Size != 1 {
		t.Errorf("evicted %+v, want the older box only", e)
	}
	if s, _ := j.BlackBoxStats(); s.Boxes != 1 {
		t.Errorf("stats %+v: the newest box must stay", s)
	}
}
