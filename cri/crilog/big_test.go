package crilog

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// bigSize is the size of the log of TestTail200MiB and BenchmarkTail200MiB.
const bigSize = 200 << 20

// writeBigLog writes a log of bigSize bytes or a little more to a file in
// dir, as containerd writes a busy container's (internal/cri/io/logger.go):
// stdout lines of about 100 bytes, a stderr line every 50, and every 2000
// lines a 40 KiB line cut into 16 KiB P fragments with stderr entries
// between them. It ends with the known lines returned as tail (their lines
// in the file), the last one a P never ended.
func writeBigLog(tb testing.TB, dir string) (path string, tail [][]byte) {
	tb.Helper()
	path = filepath.Join(dir, "0.log")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var chunk bytes.Buffer
	ts := func(n int) time.Time { return at(n) }
	long := bytes.Repeat([]byte("L"), 40<<10)
	for i := 0; i < 2000; i++ {
		if i%50 == 49 {
			criLog(&chunk, "stderr", fmt.Appendf(nil, "W1206 10:00:00.%06d warning number %d\n", i, i), 16<<10, ts)
			continue
		}
		if i == 1000 {
			var l bytes.Buffer
			criLog(&l, "stdout", append(bytes.Clone(long), '\n'), 16<<10, ts)
			frags := physLines(l.Bytes())
			for j, fr := range frags {
				chunk.Write(fr)
				chunk.WriteByte('\n')
				if j < len(frags)-1 {
					chunk.WriteString(entry(at(j), "stderr", "F", "between fragments"))
				}
			}
			continue
		}
		criLog(&chunk, "stdout", fmt.Appendf(nil, "I1206 10:00:00.%06d server.go:%d] request served status=200 bytes=%d path=/api/v1/items\n", i, i, i*7), 16<<10, ts)
	}
	for written := 0; written < bigSize; written += chunk.Len() {
		if _, err := w.Write(chunk.Bytes()); err != nil {
			tb.Fatal(err)
		}
	}
	var end bytes.Buffer
	for i := range 60 {
		end.WriteString(entry(at(i), "stdout", "F", fmt.Sprintf("final line %d", i)))
		if i%10 == 0 {
			end.WriteString(entry(at(i), "stderr", "P", fmt.Sprintf("stderr %d begins, ", i)))
			end.WriteString(entry(at(i), "stderr", "F", "and ends"))
		}
	}
	end.WriteString(entry(at(99), "stdout", "P", "died mid-li"))
	if _, err := w.Write(end.Bytes()); err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, physLines(end.Bytes())
}

// TestTail200MiB: at the end of a 200 MiB log, Tail reads no more than
// ReadCap (about 100 KiB for the defaults) and returns the log's last lines.
func TestTail200MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 200 MiB file")
	}
	path, tail := writeBigLog(t, t.TempDir())
	if fi, err := os.Stat(path); err != nil || fi.Size() < bigSize {
		t.Fatalf("log %v, %v", fi.Size(), err)
	}
	for _, lim := range []Limits{
		{Lines: 50, Bytes: 8 << 10},
		{Lines: 1000, Bytes: 8 << 10},
		{Lines: 50, Bytes: 1 << 20},
		{Lines: 1 << 20, Bytes: 1 << 20}, // back through several 40 KiB lines
	} {
		res, err := Tail(path, lim)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v: %d lines, %d bytes read, cap %d", lim, len(res.Lines), res.Read, ReadCap(lim))
		if res.Read > ReadCap(lim) {
			t.Fatalf("%+v: read %d bytes, over the cap %d", lim, res.Read, ReadCap(lim))
		}
		if !res.Truncated || len(res.Lines) == 0 {
			t.Fatalf("%+v: %d lines, Truncated %v", lim, len(res.Lines), res.Truncated)
		}
		if lim.Lines == 50 && lim.Bytes == 8<<10 {
			// The known end holds the last 50 lines: held to it.
			checkTailOf(t, res, tail)
			if last := res.Lines[len(res.Lines)-1]; string(last.Text) != "died mid-li" || !last.Partial {
				t.Fatalf("last line %+v", last)
			}
		}
	}
}

// checkTailOf checks that res's lines are the last lines of the log part
// whose lines are phys, all complete.
func checkTailOf(t *testing.T, res Result, phys [][]byte) {
	t.Helper()
	ref := refJoin(phys)
	n := len(res.Lines)
	if n > len(ref) {
		t.Fatalf("%d lines, %d in the known end", n, len(ref))
	}
	for i, g := range res.Lines {
		r := ref[len(ref)-n+i]
		if g.Cut || g.Stream != r.Stream || g.Partial != r.Partial || !bytes.Equal(g.Text, r.Text) || !g.Time.Equal(r.Time) {
			t.Fatalf("line %d = %+v, the log's %+v", i, g, r)
		}
	}
}

// BenchmarkTail200MiB: Tail with the defaults (50 lines, 8 KiB) at the end
// of a 200 MiB log (in the page cache after it is written); read-B/op is
// the bytes Tail read from the file.
func BenchmarkTail200MiB(b *testing.B) {
	path, _ := writeBigLog(b, b.TempDir())
	lim := Limits{Lines: 50, Bytes: 8 << 10}
	var read int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := Tail(path, lim)
		if err != nil {
			b.Fatal(err)
		}
		read = res.Read
	}
	b.ReportMetric(float64(read), "read-B/op")
}
