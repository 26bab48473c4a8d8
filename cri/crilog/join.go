package crilog

import "bytes"

// tailer joins the entries it is fed, newest first, into the last lines
// within its limits.
//
// Read backwards, each stream's entries come end first: an F or a P with no
// later entry of its stream ends a line; the P entries after it (before it
// in the file) are that line's earlier fragments, until the stream's
// previous F, which ends the line before and so shows that the line after
// it started right after it. Each stream has at most one line still open.
type tailer struct {
	lim       Limits
	budget    int     // bytes of text that may still be kept
	kept      []asm   // the kept lines, newest end first
	open      [2]int  // per stream: the index in kept of its line still open, or -1
	seen      [2]bool // per stream: an entry of it has been read
	truncated bool
	unparsed  int
}

// asm is a line being assembled from its fragments.
type asm struct {
	line  Line
	frags [][]byte // newest first, copies
}

func newTailer(lim Limits) *tailer {
	return &tailer{lim: lim, budget: lim.Bytes, open: [2]int{-1, -1}}
}

// accepting: more lines may be kept.
func (t *tailer) accepting() bool {
	return len(t.kept) < t.lim.Lines && t.budget > 0
}

// satisfied: no more lines may be kept and every kept line is complete or cut.
func (t *tailer) satisfied() bool {
	return !t.accepting() && t.open[0] < 0 && t.open[1] < 0
}

func streamIndex(s string) int {
	if s == Stderr {
		return 1
	}
	return 0
}

// feed takes the next line back in the log.
func (t *tailer) feed(b []byte) {
	ts, stream, partial, text, err := ParseLine(b)
	if err != nil {
		t.unparsed++
		if i := t.newLine(Line{}); i >= 0 {
			t.take(i, b)
		}
		return
	}
	s := streamIndex(stream)
	if partial && t.seen[s] {
		// An earlier fragment of the stream's line after it.
		i := t.open[s]
		if i < 0 {
			t.truncated = true // a line not kept, or one cut already
			return
		}
		if t.budget > 0 || len(text) == 0 {
			t.kept[i].line.Time = ts // the line's first kept fragment so far
		}
		if t.take(i, text) {
			t.open[s] = -1
		}
		return
	}
	// An F, or the stream's last entry: the end of a line. The stream's
	// open line, if any, starts after it: complete.
	t.seen[s] = true
	t.open[s] = -1
	i := t.newLine(Line{Time: ts, Stream: stream, Partial: partial})
	if i >= 0 && !t.take(i, text) {
		t.open[s] = i
	}
}

// newLine keeps l as the next line back if lines may still be kept, and
// returns its index in kept, or -1 (the result is then Truncated).
func (t *tailer) newLine(l Line) int {
	if !t.accepting() {
		t.truncated = true
		return -1
	}
	t.kept = append(t.kept, asm{line: l})
	return len(t.kept) - 1
}

// take adds text in front of kept line i, within the byte budget, and
// reports whether the budget cut it (the line is then complete as kept).
func (t *tailer) take(i int, text []byte) (cut bool) {
	a := &t.kept[i]
	if len(text) > t.budget {
		text = text[len(text)-t.budget:]
		a.line.Cut, t.truncated, cut = true, true, true
	}
	t.budget -= len(text)
	a.frags = append(a.frags, bytes.Clone(text))
	return cut
}

// headless takes the last bytes of a line whose start the read cap kept
// from being read: kept (Cut, Stream "") only when it is the last line of
// the log, as it is then sure to end the last line; otherwise it may be a
// fragment of any stream's line, and is left out.
func (t *tailer) headless(b []byte) {
	t.truncated = true
	if len(t.kept) > 0 {
		return
	}
	if i := t.newLine(Line{}); i >= 0 {
		t.take(i, b)
		t.kept[i].line.Cut = true
	}
}

// finish ends the read: if older was not read (older entries exist that
// were not read) the lines still open may have earlier fragments there and
// are Cut; otherwise they started at the start of the log.
func (t *tailer) finish(older bool) {
	if !older {
		return
	}
	t.truncated = true
	for s, i := range t.open {
		if i >= 0 {
			t.kept[i].line.Cut = true
			t.open[s] = -1
		}
	}
}

// lines returns the kept lines, oldest first, their fragments joined.
func (t *tailer) lines() []Line {
	if len(t.kept) == 0 {
		return nil
	}
	out := make([]Line, len(t.kept))
	for i := range t.kept {
		a := &t.kept[i]
		if len(a.frags) == 1 {
			a.line.Text = a.frags[0]
		} else {
			n := 0
			for _, f := range a.frags {
				n += len(f)
			}
			text := make([]byte, 0, n)
			for j := len(a.frags) - 1; j >= 0; j-- {
				text = append(text, a.frags[j]...)
			}
			a.line.Text = text
		}
		if a.line.Text == nil {
			a.line.Text = []byte{}
		}
		out[len(t.kept)-1-i] = a.line
	}
	return out
}
