package crilog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzParseLine holds ParseLine to the kubelet's parseCRILog
// (staging/src/k8s.io/cri-client/pkg/logs/logs.go, copied in
// kubeletParseCRILog): the same lines accepted, the same fields. Display
// of the text is valid UTF-8 with no control character but tab.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"2016-10-20T18:39:20.57606443Z stdout F cri stdout test log",
		"2016-10-20T18:39:20.57606443Z stderr P:TAG1:TAG2 partial",
		"2016-10-20T20:39:20+02:00 stdout F ",
		"2016-10-20T18:39:20.57606443Z stdout F",
		"2016-10-20T18:39:20.57606443Z stdin F x",
		"2016-10-20T18:39:20.57606443Z stdout  \xff\x1b[0m",
		"",
		"garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, stream, partial, text, err := ParseLine(b)
		kts, kstream, kpartial, ktext, kerr := kubeletParse(b)
		if (err == nil) != (kerr == nil) {
			t.Fatalf("%q: ParseLine error %v, the kubelet's %v", b, err, kerr)
		}
		if err == nil {
			if !ts.Equal(kts) || stream != kstream || partial != kpartial || !bytes.Equal(text, ktext) {
				t.Fatalf("%q: got %v %q %v %q, the kubelet %v %q %v %q", b, ts, stream, partial, text, kts, kstream, kpartial, ktext)
			}
			if !bytes.HasSuffix(b, text) {
				t.Fatalf("%q: text %q is not its end", b, text)
			}
		}
		d := Display(b)
		if !utf8.ValidString(d) {
			t.Fatalf("Display(%q) = %q: not UTF-8", b, d)
		}
		for _, r := range d {
			if r != '\t' && (r < 0x20 || (r >= 0x7f && r < 0xa0)) {
				t.Fatalf("Display(%q) = %q holds %U", b, d, r)
			}
		}
	})
}

// FuzzTail: for any content of a live log and of a rotated one (split
// from data at split when rotate), any limits, read cap and block size,
// Tail stays within its bounds and its lines are the last lines of the
// whole log read forwards (refJoin): equal, or, when Cut, the end of it;
// Truncated exactly when a line was left out or cut.
func FuzzTail(f *testing.F) {
	var seed bytes.Buffer
	criLog(&seed, "stdout", []byte("one\ntwo is longer than eight\nthree"), 8, at)
	seed.WriteString(entry(at(9), "stderr", "P", "e1 ") + "junk\n" + entry(at(10), "stderr", "F", "e2"))
	f.Add(seed.Bytes(), uint16(40), false, uint8(3), uint16(20), uint16(1000), uint8(16))
	f.Add(seed.Bytes(), uint16(100), true, uint8(50), uint16(5), uint16(60), uint8(7))
	f.Add([]byte(entry(at(0), "stdout", "P", "a")+entry(at(1), "stderr", "P", "b")+entry(at(2), "stdout", "F", "c")+entry(at(3), "stderr", "F", "d")),
		uint16(60), true, uint8(1), uint16(3), uint16(0), uint8(1))
	f.Add([]byte("\n\nno newline at the end"), uint16(1), true, uint8(2), uint16(4), uint16(3), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, rotate bool, lines uint8, nbytes uint16, readCap uint16, block uint8) {
		lim := Limits{Lines: int(lines % 64), Bytes: int(nbytes % 2048)}
		live, old := data, []byte(nil)
		if rotate {
			s := int(split) % (len(data) + 1)
			old, live = data[:s], data[s:]
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "0.log")
		if err := os.WriteFile(path, live, 0o644); err != nil {
			t.Fatal(err)
		}
		if rotate {
			if err := os.WriteFile(path+".20261206-100000", old, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cap := int64(readCap)
		if readCap >= 1<<15 {
			cap = ReadCap(lim) // the real cap: larger than any input here
		}
		res, err := tail(path, lim, cap, int(block%64)+1)
		if err != nil {
			t.Fatal(err)
		}
		checkTail(t, res, lim, cap, append(physLines(old), physLines(live)...))
	})
}

// checkTail checks res, a tail of the log whose lines in the files are
// phys, against lim and the read cap.
func checkTail(t *testing.T, res Result, lim Limits, readCap int64, phys [][]byte) {
	t.Helper()
	ref := refJoin(phys)
	if lim.Lines <= 0 || lim.Bytes <= 0 {
		if res.Read != 0 || res.Lines != nil || res.Truncated {
			t.Fatalf("no capture asked, got %+v", res)
		}
		return
	}
	if res.Read > readCap {
		t.Fatalf("Read %d over the cap %d", res.Read, readCap)
	}
	n, total, cut := len(res.Lines), 0, false
	if n > lim.Lines || n > len(ref) {
		t.Fatalf("%d lines, limit %d, %d in the log", n, lim.Lines, len(ref))
	}
	for i, g := range res.Lines {
		total += len(g.Text)
		cut = cut || g.Cut
		r := ref[len(ref)-n+i]
		switch {
		case !g.Cut:
			if g.Stream != r.Stream || g.Partial != r.Partial || !bytes.Equal(g.Text, r.Text) || !g.Time.Equal(r.Time) {
				t.Fatalf("line %d = %+v, the log's %+v", i, g, r)
			}
		case g.Stream == "" && r.Stream != "":
			// The read cap cut the log's last line before its start: its
			// last bytes as they are in the file.
			if i != n-1 || !bytes.HasSuffix(phys[len(phys)-1], g.Text) {
				t.Fatalf("cut line %d %q of no stream is not the end of the log", i, g.Text)
			}
		case !bytes.HasSuffix(r.Text, g.Text):
			t.Fatalf("cut line %d %q is not the end of the log's %q", i, g.Text, r.Text)
		case g.Stream != "" && (g.Stream != r.Stream || g.Partial != r.Partial):
			t.Fatalf("cut line %d = %+v, the log's %+v", i, g, r)
		}
	}
	if total > lim.Bytes {
		t.Fatalf("%d bytes of text kept, limit %d", total, lim.Bytes)
	}
	if res.Truncated != (n < len(ref) || cut) {
		t.Fatalf("Truncated %v with %d of %d lines, cut %v:%s", res.Truncated, n, len(ref), cut, dump(res.Lines))
	}
}
