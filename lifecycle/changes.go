package lifecycle

import "sort"

// ChangeLog is a source's account of which pods it changed, generation by
// generation, so that a Correlator can look at only those pods (its
// one-change path) instead of every pod of the node. The zero value covers
// nothing: every pod is looked at.
//
// A source appends to its log and hands out copies of the header; an entry
// is never written again once appended, so a log handed out stays true.
type ChangeLog struct {
	// From is the oldest generation the log covers: for any generation g
	// with From <= g, the pods whose records differ between g and the
	// source's current generation are among the UIDs of the entries whose
	// Gen is above g. From 0 covers nothing.
	From    uint64
	Entries []Change
}

// Change names a pod (by UID) whose records a source changed on reaching
// generation Gen. Entries are in Gen order.
type Change struct {
	Gen uint64
	UID string
}

// maxChangeLog bounds a log: past it, the older half is dropped (From moves
// up). A correlation more than that many changes behind looks at every pod.
const maxChangeLog = 4096

// Note records that the pods uids changed on reaching generation gen (the
// source's new one, above every earlier entry's). A first note starts the
// log at the generation before.
func (l *ChangeLog) Note(gen uint64, uids ...string) {
	if l.From == 0 {
		l.From = gen - 1
	}
	if len(l.Entries)+len(uids) > maxChangeLog {
		l.forgetHalf()
	}
	for _, uid := range uids {
		l.Entries = append(l.Entries, Change{Gen: gen, UID: uid})
	}
}

// Lose records that any pod may have changed on reaching generation gen (a
// full listing): the log starts again from there.
func (l *ChangeLog) Lose(gen uint64) {
	l.From, l.Entries = gen, nil
}

// forgetHalf drops the older half of the entries, a generation's entries
// together.
func (l *ChangeLog) forgetHalf() {
	cut := len(l.Entries) / 2
	if cut == 0 {
		return
	}
	last := l.Entries[cut-1].Gen
	for cut < len(l.Entries) && l.Entries[cut].Gen == last {
		cut++
	}
	l.From = last
	l.Entries = append([]Change(nil), l.Entries[cut:]...)
}

// Since returns the changes after generation g up to generation now, and
// whether the log covers g (a g equal to now always is: nothing changed).
func (l ChangeLog) Since(g, now uint64) ([]Change, bool) {
	if g == now {
		return nil, g != 0
	}
	if l.From == 0 || g < l.From || g > now {
		return nil, false
	}
	i := sort.Search(len(l.Entries), func(i int) bool { return l.Entries[i].Gen > g })
	j := sort.Search(len(l.Entries), func(i int) bool { return l.Entries[i].Gen > now })
	return l.Entries[i:j], true
}
