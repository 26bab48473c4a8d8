package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// want is an expected line: stream, text, partial, cut, and the index of
// the entry whose time the line has (at(ti)).
type want struct {
	stream, text string
	partial, cut bool
	ti           int
}

// check compares got with w, and the times (unless ti < 0).
func check(t *testing.T, got []Line, w ...want) {
	t.Helper()
	if len(got) != len(w) {
		t.Fatalf("%d lines, want %d: %s", len(got), len(w), dump(got))
	}
	for i, g := range got {
		e := w[i]
		if g.Stream != e.stream || string(g.Text) != e.text || g.Partial != e.partial || g.Cut != e.cut {
			t.Fatalf("line %d = {%q %q partial=%v cut=%v}, want {%q %q partial=%v cut=%v}\nall: %s",
				i, g.Stream, g.Text, g.Partial, g.Cut, e.stream, e.text, e.partial, e.cut, dump(got))
		}
		if e.ti >= 0 && !g.Time.Equal(at(e.ti)) {
			t.Fatalf("line %d time %v, want %v", i, g.Time, at(e.ti))
		}
	}
}

func dump(ls []Line) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "\n  {%s %q partial=%v cut=%v %s}", l.Stream, l.Text, l.Partial, l.Cut, l.Time.Format(time.RFC3339Nano))
	}
	return b.String()
}

var big = Limits{Lines: 50, Bytes: 8 << 10}

func TestTailJoinsPartials(t *testing.T) {
	path := writeFile(t, t.TempDir(), "0.log", []byte(
		entry(at(0), "stdout", "F", "before")+
			entry(at(1), "stdout", "P", "aaa ")+
			entry(at(2), "stdout", "P", "bbb ")+
			entry(at(3), "stdout", "F", "ccc")+
			entry(at(4), "stdout", "F", "after")))
	res, err := Tail(path, big)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines,
		want{"stdout", "before", false, false, 0},
		want{"stdout", "aaa bbb ccc", false, false, 1}, // the first fragment's time
		want{"stdout", "after", false, false, 4})
	if res.Truncated || res.Unparsed != 0 || len(res.Files) != 1 || res.Files[0] != path {
		t.Fatalf("result %+v", res)
	}
}

// TestTailInterleavedStreams: stdout and stderr fragments interleave in
// one file (containerd runs one redirectLogs goroutine per stream into the
// same file, internal/cri/io/logger.go); each stream joins its own, and the
// lines come in the order they end.
func TestTailInterleavedStreams(t *testing.T) {
	content := entry(at(0), "stdout", "P", "o1-") +
		entry(at(1), "stderr", "P", "e1-") +
		entry(at(2), "stdout", "P", "o2-") +
		entry(at(3), "stderr", "F", "e2") +
		entry(at(4), "stderr", "F", "e3") +
		entry(at(5), "stdout", "F", "o3") +
		entry(at(6), "stderr", "P", "e4-") +
		entry(at(7), "stdout", "F", "o4") +
		entry(at(8), "stderr", "F", "e5")
	path := writeFile(t, t.TempDir(), "0.log", []byte(content))
	res, err := Tail(path, big)
	if err != nil {
		t.Fatal(err)
	}
	w := []want{
		{"stderr", "e1-e2", false, false, 1},
		{"stderr", "e3", false, false, 4},
		{"stdout", "o1-o2-o3", false, false, 0},
		{"stdout", "o4", false, false, 7},
		{"stderr", "e4-e5", false, false, 6},
	}
	check(t, res.Lines, w...)
	if res.Truncated {
		t.Fatal("Truncated with every line kept")
	}
	// The last two lines: stderr's e4-e5 needs its P from before o4.
	res, err = Tail(path, Limits{Lines: 2, Bytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines, w[3:]...)
	if !res.Truncated {
		t.Fatal("not Truncated with 3 lines left out")
	}
	// Three: o1-o2-o3 is kept whole although e3, e1-e2 end after its start.
	res, _ = Tail(path, Limits{Lines: 3, Bytes: 100})
	check(t, res.Lines, w[2:]...)
}

// TestTailBytesExact: the container's bytes are kept as written (invalid
// UTF-8, NUL, escapes, a carriage return), and Display makes them safe.
func TestTailBytesExact(t *testing.T) {
	text := "bad \xff\xfe\x00 \x1b[31mred\r end \xe6\x97"
	path := writeFile(t, t.TempDir(), "0.log", []byte(
		entry(at(0), "stderr", "P", text[:7])+entry(at(1), "stderr", "F", text[7:])))
	res, err := Tail(path, big)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines, want{"stderr", text, false, false, 0})
	if d := Display(res.Lines[0].Text); d != `bad \xff\xfe\x00 \x1b[31mred\x0d end \xe6\x97` {
		t.Fatalf("Display %q", d)
	}
}

// TestTailTrailingPartial: containerd writes a last P when a stream ends
// mid-line (redirectLogs: "readLine only returns error when the message
// doesn't end with a newline, in that case it should be treated as a
// partial line"); that line is Partial even when the other stream wrote
// after it.
func TestTailTrailingPartial(t *testing.T) {
	var b bytes.Buffer
	criLog(&b, "stdout", []byte("ok\npanic: half a li"), 0, at)
	b.WriteString(entry(at(9), "stderr", "F", "later on stderr"))
	path := writeFile(t, t.TempDir(), "0.log", b.Bytes())
	res, err := Tail(path, big)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines,
		want{"stdout", "ok", false, false, 0},
		want{"stdout", "panic: half a li", true, false, 1},
		want{"stderr", "later on stderr", false, false, 9})

	// A long last line cut into P fragments and never ended.
	b.Reset()
	criLog(&b, "stdout", []byte("0123456789abcdefghij"), 8, at)
	path = writeFile(t, t.TempDir(), "0.log", b.Bytes())
	res, _ = Tail(path, big)
	check(t, res.Lines, want{"stdout", "0123456789abcdefghij", true, false, 0})
}

func TestTailLineLimit(t *testing.T) {
	var content string
	for i := range 10 {
		content += entry(at(i), "stdout", "F", fmt.Sprintf("line %d", i))
	}
	path := writeFile(t, t.TempDir(), "0.log", []byte(content))
	res, err := Tail(path, Limits{Lines: 3, Bytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines,
		want{"stdout", "line 7", false, false, 7},
		want{"stdout", "line 8", false, false, 8},
		want{"stdout", "line 9", false, false, 9})
	if !res.Truncated {
		t.Fatal("not Truncated")
	}
	// Exactly the number of lines there are: nothing left out.
	res, _ = Tail(path, Limits{Lines: 10, Bytes: 1000})
	if len(res.Lines) != 10 || res.Truncated || res.Read != int64(len(content)) {
		t.Fatalf("%d lines, Truncated %v, Read %d of %d", len(res.Lines), res.Truncated, res.Read, len(content))
	}
}

func TestTailByteLimit(t *testing.T) {
	content := entry(at(0), "stdout", "F", "aaaa") +
		entry(at(1), "stdout", "F", "bbbb") +
		entry(at(2), "stdout", "F", "cccc")
	path := writeFile(t, t.TempDir(), "0.log", []byte(content))
	res, err := Tail(path, Limits{Lines: 50, Bytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines,
		want{"stdout", "aa", false, true, 0},
		want{"stdout", "bbbb", false, false, 1},
		want{"stdout", "cccc", false, false, 2})
	if !res.Truncated {
		t.Fatal("not Truncated")
	}
	// Exactly the bytes there are: nothing cut.
	res, _ = Tail(path, Limits{Lines: 50, Bytes: 12})
	check(t, res.Lines,
		want{"stdout", "aaaa", false, false, 0},
		want{"stdout", "bbbb", false, false, 1},
		want{"stdout", "cccc", false, false, 2})
	if res.Truncated {
		t.Fatal("Truncated")
	}
	// The budget spent exactly by the last line: its start must still be
	// looked for (a P before it would be a cut).
	res, _ = Tail(path, Limits{Lines: 50, Bytes: 4})
	check(t, res.Lines, want{"stdout", "cccc", false, false, 2})
	content2 := entry(at(0), "stdout", "P", "xx") + entry(at(1), "stdout", "F", "cccc")
	path = writeFile(t, t.TempDir(), "0.log", []byte(content2))
	res, _ = Tail(path, Limits{Lines: 50, Bytes: 4})
	check(t, res.Lines, want{"stdout", "cccc", false, true, 1})
}

// TestTailGiantLine: one line of 1 MiB that containerd cut into 16 KiB P
// fragments (its default max_container_log_line_size) keeps its last Bytes,
// and Tail reads little more than the fragments those are in.
func TestTailGiantLine(t *testing.T) {
	text := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	text = append(text, "THE END"...)
	var b bytes.Buffer
	b.WriteString(entry(at(0), "stdout", "F", "before"))
	criLog(&b, "stdout", append(bytes.Clone(text), '\n'), 16<<10, func(n int) time.Time { return at(1 + n) })
	path := writeFile(t, t.TempDir(), "0.log", b.Bytes())
	lim := Limits{Lines: 50, Bytes: 1000}
	res, err := Tail(path, lim)
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB + 7 bytes = 64 fragments of 16 KiB and an F of 7: the last 1000
	// bytes are in the F and the 64th P, whose time the line has.
	check(t, res.Lines, want{"stdout", string(text[len(text)-1000:]), false, true, 64})
	if !res.Truncated || res.Read > ReadCap(lim) || res.Read > 40<<10 {
		t.Fatalf("Truncated %v, Read %d (cap %d)", res.Truncated, res.Read, ReadCap(lim))
	}
}

// TestTailReadCap: a file of one endless line (a P entry never ended, or
// junk without a newline) is read no further than the cap; its last Bytes
// are kept, Cut, as a line of no stream.
func TestTailReadCap(t *testing.T) {
	lim := Limits{Lines: 50, Bytes: 8 << 10}
	endless := append([]byte(entry(at(0), "stdout", "P", "")), bytes.Repeat([]byte("x"), 8<<20)...)
	junk := make([]byte, 8<<20)
	for i := range junk {
		junk[i] = byte(i*7+i/13) | 0x80 // no '\n'
	}
	for name, content := range map[string][]byte{"endless P": endless, "junk": junk} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "0.log", content)
			res, err := Tail(path, lim)
			if err != nil {
				t.Fatal(err)
			}
			if res.Read > ReadCap(lim) || res.Read < ReadCap(lim)-blockSize {
				t.Fatalf("Read %d, cap %d", res.Read, ReadCap(lim))
			}
			check(t, res.Lines, want{"", string(content[len(content)-lim.Bytes:]), false, true, -1})
			if !res.Truncated {
				t.Fatal("not Truncated")
			}
		})
	}
	// Not the last line: a 1 MiB full entry (max_container_log_line_size
	// -1 lets a line be any length) before a short one. The short one is
	// kept; it may be the end of a line that started in the giant one it
	// could not read the start of: Cut.
	content := entry(at(0), "stdout", "F", strings.Repeat("y", 1<<20)) + entry(at(1), "stdout", "F", "short")
	path := writeFile(t, t.TempDir(), "0.log", []byte(content))
	res, err := Tail(path, lim)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines, want{"stdout", "short", false, true, 1})
	if !res.Truncated || res.Read > ReadCap(lim) {
		t.Fatalf("Truncated %v, Read %d", res.Truncated, res.Read)
	}
}

// TestTailUnparsed: lines not in the CRI format are kept as they are, with
// no stream, and counted; they do not break a line's fragments apart.
func TestTailUnparsed(t *testing.T) {
	content := entry(at(0), "stdout", "P", "first half ") +
		"garbage \x00\xff line\n" +
		"\n" +
		`{"log":"docker json","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}` + "\n" +
		entry(at(1), "stdout", "F", "second half") +
		"torn write without newline 2026-12-06T10:00:00Z std"
	path := writeFile(t, t.TempDir(), "0.log", []byte(content))
	res, err := Tail(path, big)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines,
		want{"", "garbage \x00\xff line", false, false, -1},
		want{"", "", false, false, -1},
		want{"", `{"log":"docker json","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`, false, false, -1},
		want{"stdout", "first half second half", false, false, 0},
		want{"", "torn write without newline 2026-12-06T10:00:00Z std", false, false, -1})
	if res.Unparsed != 4 || res.Truncated {
		t.Fatalf("Unparsed %d, Truncated %v", res.Unparsed, res.Truncated)
	}
	for _, l := range res.Lines[:3] {
		if !l.Time.IsZero() {
			t.Fatalf("unparsed line with time %v", l.Time)
		}
	}
}

// TestTailRotated: the kubelet's container log manager renames the live log
// to <log>.<20060102-150405> and gzips the older ones
// (kubernetes/kubernetes pkg/kubelet/logs/container_log_manager.go,
// rotateLatestLog, compressLog). Tail goes on into the newest uncompressed
// one, across which a line's fragments may straddle, and never into .gz.
func TestTailRotated(t *testing.T) {
	dir := t.TempDir()
	live := writeFile(t, dir, "0.log", []byte(
		entry(at(5), "stdout", "F", "rest of 4")+entry(at(6), "stdout", "F", "live 6")))
	rot := writeFile(t, dir, "0.log.20261206-100000", []byte(
		entry(at(1), "stdout", "F", "rot 1")+
			entry(at(2), "stderr", "F", "rot 2")+
			entry(at(3), "stdout", "F", "rot 3")+
			entry(at(4), "stdout", "P", "start of 4, ")))
	// Not read: an older uncompressed one, the compressed ones, a
	// compression's temporary file and another log's rotation.
	poison := []byte(entry(at(0), "stdout", "F", "POISON"))
	writeFile(t, dir, "0.log.20261205-090000", poison)
	writeFile(t, dir, "0.log.20261206-095959.gz", poison)
	writeFile(t, dir, "0.log.20261206-110000.tmp", poison)
	writeFile(t, dir, "0.log.20261206-110000.gz.tmp", poison)
	writeFile(t, dir, "1.log.20261206-110000", poison)
	writeFile(t, dir, "0.log.2026120-1000000", poison)

	res, err := Tail(live, Limits{Lines: 4, Bytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// rot 2 is stderr's first entry in the files read, and older (.gz)
	// ones exist that may hold its start: Cut.
	check(t, res.Lines,
		want{"stderr", "rot 2", false, true, 2},
		want{"stdout", "rot 3", false, false, 3},
		want{"stdout", "start of 4, rest of 4", false, false, 4},
		want{"stdout", "live 6", false, false, 6})
	if len(res.Files) != 2 || res.Files[0] != live || res.Files[1] != rot || !res.Truncated {
		t.Fatalf("Files %v, Truncated %v", res.Files, res.Truncated)
	}
	// Everything there is in the two files: older (compressed) ones exist,
	// so the result is still Truncated.
	res, _ = Tail(live, big)
	if len(res.Lines) != 5 || !res.Truncated {
		t.Fatalf("%d lines, Truncated %v", len(res.Lines), res.Truncated)
	}
	// The live file enough: the rotated one is not read.
	res, _ = Tail(live, Limits{Lines: 1, Bytes: 1000})
	check(t, res.Lines, want{"stdout", "live 6", false, false, 6})
	if len(res.Files) != 1 || !res.Truncated {
		t.Fatalf("Files %v, Truncated %v", res.Files, res.Truncated)
	}
	// Just rotated: the live file is empty.
	if err := os.WriteFile(live, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, _ = Tail(live, Limits{Lines: 2, Bytes: 1000})
	check(t, res.Lines,
		want{"stdout", "rot 3", false, false, 3},
		want{"stdout", "start of 4, ", true, false, 4})
	for _, l := range res.Lines {
		if bytes.Contains(l.Text, []byte("POISON")) {
			t.Fatal("read a file it should not have")
		}
	}
}

// TestTailRotatedStart: with no compressed files, the rotated file's start
// is the log's start (nothing Truncated, no line Cut); with one, a line
// open at the rotated file's start may have begun in it: Cut.
func TestTailRotatedStart(t *testing.T) {
	dir := t.TempDir()
	live := writeFile(t, dir, "0.log", []byte(entry(at(2), "stdout", "F", "end")))
	writeFile(t, dir, "0.log.20261206-100000", []byte(entry(at(1), "stdout", "P", "mid ")))
	res, err := Tail(live, big)
	if err != nil {
		t.Fatal(err)
	}
	check(t, res.Lines, want{"stdout", "mid end", false, false, 1})
	if res.Truncated {
		t.Fatal("Truncated")
	}
	writeFile(t, dir, "0.log.20261206-090000.gz", []byte("gzip"))
	res, _ = Tail(live, big)
	check(t, res.Lines, want{"stdout", "mid end", false, true, 1})
	if !res.Truncated {
		t.Fatal("not Truncated")
	}
}

// TestTailOnlyCompressed: the compressed rotated files are never read,
// not even the newest when no uncompressed one is left.
func TestTailOnlyCompressed(t *testing.T) {
	dir := t.TempDir()
	live := writeFile(t, dir, "0.log", nil)
	writeFile(t, dir, "0.log.20261206-120000.gz", []byte(entry(at(0), "stdout", "F", "POISON")))
	res, err := Tail(live, big)
	if err != nil || res.Lines != nil || len(res.Files) != 1 || !res.Truncated || res.Read != 0 {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestTailEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "0.log", nil)
	res, err := Tail(path, big)
	if err != nil || len(res.Lines) != 0 || res.Truncated || res.Read != 0 || len(res.Files) != 1 {
		t.Fatalf("empty file: %+v, %v", res, err)
	}
	_, err = Tail(filepath.Join(dir, "missing.log"), big)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	// Unreadable: a directory opens but does not read.
	_, err = Tail(dir, big)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("directory: %v", err)
	}
	// No capture: nothing is read, not even opened.
	for _, lim := range []Limits{{0, 100}, {10, 0}, {-1, -1}} {
		res, err := Tail(filepath.Join(dir, "missing.log"), lim)
		if err != nil || res.Read != 0 || res.Lines != nil || res.Files != nil || ReadCap(lim) != 0 {
			t.Fatalf("%+v: %+v %v", lim, res, err)
		}
	}
}

func TestTailPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := writeFile(t, t.TempDir(), "0.log", []byte(entry(at(0), "stdout", "F", "x")))
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Tail(path, big); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("%v", err)
	}
}

func TestReadCap(t *testing.T) {
	if got := ReadCap(Limits{Lines: 50, Bytes: 8 << 10}); got != 4*8192+64*50+65536 {
		t.Fatalf("ReadCap %d", got)
	}
	if got := ReadCap(Limits{Lines: 1 << 62, Bytes: 1 << 62}); got != 1<<63-1 {
		t.Fatalf("ReadCap does not saturate: %d", got)
	}
}
