package testenv

import (
	"fmt"
	"testing"
	"time"
	"unicode/utf8"
)

// Pauses between two checks of a condition: costFactor times what the last
// check took, so that waiting spends at most about 1/costFactor of its time
// checking, within [minPause, maxPause]. An in-memory check is repeated every
// few milliseconds; an HTTP round trip or a command every tens of
// milliseconds up to maxPause.
const (
	minPause   = 5 * time.Millisecond
	maxPause   = 250 * time.Millisecond
	costFactor = 20
)

// Eventually waits until ok reports true, checking it as often as is cheap
// (see EventuallyState), and fails t when limit passes first. A test waits
// with it for the event it checks rather than sleeping.
func Eventually(t testing.TB, what string, limit time.Duration, ok func() bool) {
	t.Helper()
	EventuallyState(t, what, limit, func() (bool, any) { return ok(), nil })
}

// EventuallyState waits until cond reports true and returns how long that
// took. cond also returns the state it observed (nil for none): when limit
// passes first, t fails with what it waited for and the last state, printed
// with %+v (only then, so a fmt.Stringer can be costly). cond is
// checked at once, then after pauses that follow what a check costs (a few
// milliseconds for an in-memory check, up to 250 ms for a slow one). It must
// be called from the test's goroutine (it may call t.Fatal).
func EventuallyState(t testing.TB, what string, limit time.Duration, cond func() (bool, any)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(limit)
	for {
		checked := time.Now()
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		now := time.Now()
		if !now.Before(deadline) {
			msg := fmt.Sprintf("timed out after %s waiting for %s", limit, what)
			if state != nil {
				msg += fmt.Sprintf("; last state: %+v", state)
			}
			t.Fatal(msg)
			return time.Since(start) // where t.Fatal does not end the goroutine
		}
		time.Sleep(pause(now.Sub(checked), deadline.Sub(now)))
	}
}

// pause is how long to wait before checking again after a check that took
// cost, with left until the deadline.
func pause(cost, left time.Duration) time.Duration {
	return min(max(costFactor*cost, minPause), maxPause, left)
}

// Tail returns the end of a log (or any long text) for a failure message:
// its last n bytes, starting on a whole character and marked with a leading
// "…" when anything was cut.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}
