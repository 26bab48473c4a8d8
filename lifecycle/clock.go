package lifecycle

import "time"

// The Correlator reuses a pod's view while the pod's inputs are unchanged, so
// a view that changes with the clock alone must say when it does. The
// methods below are the only readers of Input.Now while a view is built
// (TestOnlyTheClockReadsNow): each answers a question about the time and
// notes, with due, when its answer next changes.

// due notes that the view being built changes by itself at t.
func (e *env) due(t time.Time) {
	if t.After(e.in.Now) && (e.until.IsZero() || t.Before(e.until)) {
		e.until = t
	}
}

// before reports whether it is not yet t.
func (e *env) before(t time.Time) bool {
	if e.in.Now.Before(t) {
		e.due(t)
		return true
	}
	return false
}

// after reports whether t is past.
func (e *env) after(t time.Time) bool {
	return !e.before(t.Add(time.Nanosecond))
}

// elapsed is the time since t, rounded to step as the view shows it.
func (e *env) elapsed(t time.Time, step time.Duration) time.Duration {
	d := e.in.Now.Sub(t).Round(step)
	if d >= 0 {
		e.due(t.Add(d + step/2)) // Round rounds halves away from zero
	}
	return d
}

// firstSeen records now as when something was first seen, unless it was.
func (e *env) firstSeen(at *time.Time) {
	if at.IsZero() {
		*at = e.in.Now
	}
}
