package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
)

// blockSize is how much Tail reads at a time, from the end of a file back.
const blockSize = 32 << 10

// ReadCap is the most bytes Tail reads from disk for lim, over all the files
// it reads (0 when lim asks for no capture):
//
//	4*Bytes + 64*Lines + 64 KiB   (saturating at math.MaxInt64)
//
// 64 KiB holds a whole fragment of containerd's default 16 KiB line size
// with its prefix, so the last line of a log of long lines is found even
// when it is kept only in part, plus a block or so of the other stream's
// entries to read past; 64*Lines pays the prefix of each kept line (the
// longest a timestamp, stream and tag take is 46 bytes:
// "2006-01-02T15:04:05.999999999-07:00 stdout F "), even of empty lines;
// 4*Bytes pays the kept text and the entries of the other stream, or of
// lines no longer kept, read past while the first fragments of the kept
// lines are looked for. A read that reaches the cap stops there: what it
// has not seen the start of is Cut, and the result is Truncated.
func ReadCap(lim Limits) int64 {
	if lim.Lines <= 0 || lim.Bytes <= 0 {
		return 0
	}
	return satAdd(satAdd(satMul(int64(lim.Bytes), 4), satMul(int64(lim.Lines), 64)), 64<<10)
}

func satMul(a, k int64) int64 {
	if a > math.MaxInt64/k {
		return math.MaxInt64
	}
	return a * k
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Tail returns the last lines of the log file at path within lim, reading it from the end, never the whole file.
//
// Lines are ordered by where they end in the log (a line of P fragments
// takes the place of its F), so a line is among the last Lines when its
// end is. Tail reads back from the end of path until it has Lines lines or
// Bytes bytes of text and has found where each kept line starts (the
// stream's previous F entry, or the start of the log), and never reads
// more than ReadCap(lim) bytes in all. When path holds too little it goes
// on into the newest uncompressed rotated file (path.YYYYMMDD-HHMMSS, as
// the kubelet's container log manager names it; .gz files are ignored),
// older than path: a line's fragments may straddle the two.
//
// A line that is not in the CRI format is kept as it is, with Stream "",
// and counted in Result.Unparsed. A line the read cap cuts before its start
// is found (a file of one endless line) cannot be parsed: it is kept, Cut,
// with Stream "" and its last bytes as they are in the file, only when it
// is the last line of the log; otherwise it is left out and the result is
// Truncated.
//
// Errors: a missing path wraps fs.ErrNotExist; any other open, stat or
// read error is wrapped. If the rotated file cannot be read (other than
// vanishing, which happens when the kubelet compresses it), the error comes
// with what path gave.
func Tail(path string, lim Limits) (Result, error) {
	return tail(path, lim, ReadCap(lim), blockSize)
}

// tail is Tail with the read cap and the block size as parameters, for the
// tests to reach the cap and block boundaries with small inputs.
func tail(path string, lim Limits, readCap int64, block int) (Result, error) {
	if lim.Lines <= 0 || lim.Bytes <= 0 {
		return Result{}, nil
	}
	t := newTailer(lim)
	rb := &readBudget{cap: readCap, block: int64(block)}
	var res Result
	out, err := t.readFile(path, rb)
	if err != nil {
		return res, err
	}
	res.Files = append(res.Files, path)
	switch out {
	case outCapped:
		t.finish(true)
	case outMore:
		t.truncated = true
	default: // outDone with nothing before it in path, or outStart
		rot, rerr := listRotated(path)
		if rerr != nil {
			err = rerr
			t.finish(true)
			break
		}
		newest, ok := rot.newestPlain()
		if out == outDone || !ok {
			t.finish(rot.olderThan(""))
			break
		}
		out, err = t.readFile(newest.path, rb)
		switch {
		case errors.Is(err, fs.ErrNotExist): // compressed meanwhile
			err = nil
			t.finish(true)
		case err != nil:
			t.finish(true)
		default:
			res.Files = append(res.Files, newest.path)
			t.finish(out == outCapped || out == outMore || rot.olderThan(newest.stamp))
		}
	}
	res.Lines, res.Truncated, res.Read, res.Unparsed = t.lines(), t.truncated, rb.read, t.unparsed
	return res, err
}

// outcome is how reading one file ended.
type outcome int

const (
	outDone   outcome = iota // every kept line complete or cut, and nothing left before in the file
	outMore                  // every kept line complete or cut, lines left before in the file
	outStart                 // the start of the file reached with more wanted
	outCapped                // the read cap reached
)

// readFile feeds t the lines of the file at path, newest first, until t
// wants no more, the start of the file or the read cap.
func (t *tailer) readFile(path string, rb *readBudget) (outcome, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("crilog: open log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("crilog: stat log: %w", err)
	}
	r := &revReader{f: f, pos: fi.Size(), first: true, rb: rb}
	for {
		if t.satisfied() {
			if r.done {
				return outDone, nil
			}
			return outMore, nil
		}
		line, headless, ok, err := r.prev()
		if err != nil {
			return 0, fmt.Errorf("crilog: read log %s: %w", path, err)
		}
		if !ok {
			return outStart, nil
		}
		if headless {
			t.headless(line)
			return outCapped, nil
		}
		t.feed(line)
	}
}

// readBudget is the read cap shared by the files of one Tail.
type readBudget struct {
	read, cap, block int64
}

// grant is how many bytes before pos the next read may take: a block, at
// most pos and at most what the cap leaves.
func (b *readBudget) grant(pos int64) int64 {
	return min(b.block, pos, b.cap-b.read)
}

// revReader returns the lines of a file from its end back.
type revReader struct {
	f     *os.File
	rb    *readBudget
	pos   int64  // the file's bytes [0, pos) are not read yet
	buf   []byte // buf[off:] are file[pos:...], read and not yet returned
	off   int
	first bool // no line returned yet: the empty segment after a final newline is no line
	done  bool // the line at the file's start has been returned
}

// prev returns the file's previous line, without its newline; it is valid
// until the next call. headless: the read cap was reached before the line's
// start, and line holds its last bytes read. ok is false past the file's start.
func (r *revReader) prev() (line []byte, headless, ok bool, err error) {
	for {
		if r.done {
			return nil, false, false, nil
		}
		data := r.buf[r.off:]
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
			line = data[i+1:]
			r.buf = r.buf[:r.off+i]
			if r.first && len(line) == 0 {
				r.first = false
				continue
			}
			r.first = false
			return line, false, true, nil
		}
		if r.pos == 0 {
			r.done = true
			if r.first && len(data) == 0 {
				return nil, false, false, nil // an empty file
			}
			return data, false, true, nil
		}
		n := r.rb.grant(r.pos)
		if n <= 0 {
			r.done = true
			return data, true, true, nil
		}
		if err := r.fill(int(n)); err != nil {
			return nil, false, false, err
		}
	}
}

// fill reads the n bytes before r.pos in front of the unreturned ones.
func (r *revReader) fill(n int) error {
	if r.off < n {
		data := r.buf[r.off:]
		size := cap(r.buf)
		if size < len(data)+n {
			size = max(2*size, len(data)+n)
		}
		var nb []byte
		if size > cap(r.buf) {
			nb = make([]byte, size)
		} else {
			nb = r.buf[:size]
		}
		r.off = size - len(data)
		copy(nb[r.off:], data)
		r.buf = nb
	}
	r.off -= n
	r.pos -= int64(n)
	m, err := r.f.ReadAt(r.buf[r.off:r.off+n], r.pos)
	r.rb.read += int64(m)
	if m < n {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("file shrank while read: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	return nil
}
