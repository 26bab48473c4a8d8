package crilog

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// t0 is the time of the first entry the tests write.
var t0 = time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)

// at is t0 plus i milliseconds.
func at(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }

// entry is one line of the CRI log format as containerd writes it
// (containerd internal/cri/io/logger.go, writeLineBuffer: time.RFC3339Nano,
// stream, tag and text, each header followed by one space, then '\n').
func entry(ts time.Time, stream, tag, text string) string {
	return ts.Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + text + "\n"
}

// criLog writes what containerd's redirectLogs (internal/cri/io/logger.go)
// makes of content written to one stream: each '\n'-ended line ("\r\n"
// dropped as well) as an F entry, a line longer than maxLen as P entries
// of exactly maxLen bytes and the rest, and what is left after the last
// '\n' as a last P entry. ts gives the time of the n-th entry.
func criLog(buf *bytes.Buffer, stream string, content []byte, maxLen int, ts func(n int) time.Time) {
	n := 0
	write := func(tag string, text []byte) {
		buf.WriteString(ts(n).Format(time.RFC3339Nano))
		buf.WriteString(" " + stream + " " + tag + " ")
		buf.Write(text)
		buf.WriteByte('\n')
		n++
	}
	for len(content) > 0 {
		line, rest, nl := bytes.Cut(content, []byte{'\n'})
		content = rest
		if nl {
			line = bytes.TrimSuffix(line, []byte{'\r'})
		}
		for maxLen > 0 && len(line) > maxLen {
			write("P", line[:maxLen])
			line = line[maxLen:]
		}
		if nl {
			write("F", line)
		} else {
			write("P", line)
		}
	}
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// physLines splits a file's content into its lines as Tail sees them: at
// '\n', the empty rest after a final '\n' being no line.
func physLines(content []byte) [][]byte {
	if len(content) == 0 {
		return nil
	}
	ls := bytes.Split(content, []byte{'\n'})
	if len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// refJoin is the reference the tests hold Tail to: the log's lines read
// forwards, in full, joined per stream, ordered by where each line ends
// (a line still open at the end, Partial, where its last P is).
func refJoin(phys [][]byte) []Line {
	type posLine struct {
		Line
		end int
	}
	var out []posLine
	var open [2]*posLine
	for pos, p := range phys {
		ts, stream, partial, text, err := ParseLine(p)
		if err != nil {
			out = append(out, posLine{Line{Text: bytes.Clone(p)}, pos})
			continue
		}
		s := streamIndex(stream)
		if open[s] == nil {
			open[s] = &posLine{Line: Line{Time: ts, Stream: stream, Text: []byte{}}}
		}
		open[s].Text = append(open[s].Text, text...)
		open[s].end = pos
		if !partial {
			out = append(out, *open[s])
			open[s] = nil
		}
	}
	for _, o := range open {
		if o != nil {
			o.Partial = true
			out = append(out, *o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].end < out[j].end })
	lines := make([]Line, len(out))
	for i, o := range out {
		lines[i] = o.Line
	}
	return lines
}
