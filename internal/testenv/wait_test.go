package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatal records the failure instead of
// ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) { r.failed = fmt.Sprint(args...) }

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	checks := 0
	took := EventuallyState(t, "the third check", time.Minute, func() (bool, any) {
		checks++
		return checks == 3, fmt.Sprint(checks)
	})
	if checks != 3 || took <= 0 {
		t.Fatalf("returned after %d checks (%s), want 3", checks, took)
	}
	calls := 0
	Eventually(t, "a true condition", time.Minute, func() bool { calls++; return true })
	if calls != 1 {
		t.Errorf("a condition true at once checked %d times, want 1", calls)
	}
}

// The pause follows what a check costs: a cheap check is repeated within
// milliseconds, a slow one at most every maxPause, and never past the
// deadline.
func TestPause(t *testing.T) {
	for _, tc := range []struct{ cost, left, want time.Duration }{
		{time.Microsecond, time.Minute, minPause},
		{2 * time.Millisecond, time.Minute, 40 * time.Millisecond},
		{time.Second, time.Minute, maxPause},
		{2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond},
	} {
		if got := pause(tc.cost, tc.left); got != tc.want {
			t.Errorf("pause(%s, %s) = %s, want %s", tc.cost, tc.left, got, tc.want)
		}
	}
}

// The condition is checked once more at the deadline: what holds by then
// is not reported as a timeout.
func TestEventuallyChecksAtTheDeadline(t *testing.T) {
	const limit = 20 * time.Millisecond
	start := time.Now()
	r := &recorder{TB: t}
	EventuallyState(r, "the deadline", limit, func() (bool, any) { return time.Since(start) >= limit, nil })
	if r.failed != "" {
		t.Errorf("a condition true at the deadline: %s", r.failed)
	}
}

func TestEventuallyReportsTheLastState(t *testing.T) {
	r := &recorder{TB: t}
	checks := 0
	EventuallyState(r, "a never-true condition", 30*time.Millisecond, func() (bool, any) {
		checks++
		return false, fmt.Sprintf("check %d", checks)
	})
	want := fmt.Sprintf("timed out after 30ms waiting for a never-true condition; last state: check %d", checks)
	if checks < 2 || r.failed != want {
		t.Fatalf("after %d checks: failure %q, want %q", checks, r.failed, want)
	}
	r = &recorder{TB: t}
	Eventually(r, "nothing", time.Millisecond, func() bool { return false })
	if r.failed != "timed out after 1ms waiting for nothing" {
		t.Errorf("failure %q", r.failed)
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exact", 5, "exact"},
		{"line one\nline two", 8, "…line two"},
		{"ab€cd", 4, "…cd"}, // never starts inside a character
	} {
		if got := Tail(tc.s, tc.n); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
	if got := Tail(strings.Repeat("x", 100), 10); got != "…"+strings.Repeat("x", 10) {
		t.Errorf("Tail of 100 bytes, 10: %q", got)
	}
}
