// Package crilog reads the tail of a container attempt's log file in the CRI
// logging format, bounded: podlife's crash black box reads the last lines of
// an attempt's log at every container exit, before the kubelet deletes it.
//
// The format is the one containerd (internal/cri/io/logger.go) and CRI-O
// write and the kubelet parses (k8s.io/cri-client/pkg/logs, parseCRILog):
// one entry per line,
//
//	<RFC3339Nano timestamp> <stdout|stderr> <tag> <text>
//
// where the tag is F (full: the entry ends a line) or P (partial: the line
// goes on in the next entry of the same stream). containerd cuts a line
// longer than its max_container_log_line_size (16 KiB by default) into P
// entries and an F, and writes a last P when a stream ends mid-line. Tail
// joins the entries of a line back together, each stream on its own
// (stdout and stderr entries interleave in one file), reads the file from
// its end in blocks and never more than [ReadCap] bytes, and continues into
// the newest uncompressed rotated file when the live one holds too little.
package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Line is one log line as the container wrote it: partial (P) fragments joined.
type Line struct {
	Time    time.Time // the timestamp of the line's first fragment (of the first kept one when Cut; zero for a line that is not in the CRI format)
	Stream  string    // "stdout" or "stderr" (as written in the file); "" for a line that is not in the CRI format, kept as it is
	Text    []byte    // the bytes the container wrote, without the trailing newline
	Partial bool      // ends in P fragments never completed by an F (the container died mid-line)
	// Cut: the start of the line is missing. Either Limits.Bytes cut it (Text
	// holds the line's last bytes), or the read stopped (the read cap, or
	// the oldest file read when older, compressed ones exist) before it
	// reached the entry before the line's first kept fragment, so earlier P
	// fragments of the line may exist.
	Cut bool
}

// Limits bound a capture. Lines <= 0 or Bytes <= 0 means no capture (Tail returns no lines, reads nothing).
type Limits struct {
	Lines int // the most lines kept (default elsewhere: 50)
	Bytes int // the most bytes of Text kept in all (default elsewhere: 8 KiB); a longer single line keeps its last Bytes
}

// Result is what Tail read.
type Result struct {
	Lines     []Line   // oldest first (ordered by where each line ends in the log)
	Truncated bool     // earlier lines (or the start of the first line) exist that were not kept
	Read      int64    // bytes read from disk in all: the test of boundedness (never more than ReadCap)
	Files     []string // the files read, newest first (the log file, then maybe the newest rotated one)
	// Unparsed counts the lines read that are not in the CRI format
	// (garbage, binary junk, a torn write). Those that are kept are Lines
	// with Stream "" and their bytes as Text, so that nothing is hidden.
	Unparsed int
}

// Stream names as the CRI log format writes them (runtimeapi.Stdout, runtimeapi.Stderr).
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// timeFormatIn is the kubelet's timeFormatIn (RFC3339NanoLenient in
// k8s.io/cri-client/pkg/logs/logs.go): any number of fractional digits.
const timeFormatIn = "2006-01-02T15:04:05.999999999Z07:00"

// Errors of ParseLine, as the kubelet's parseCRILog tells them apart.
var (
	ErrNoTimestamp = errors.New("crilog: timestamp is not found")
	ErrTimestamp   = errors.New("crilog: unexpected timestamp format")
	ErrNoStream    = errors.New("crilog: stream type is not found")
	ErrStream      = errors.New("crilog: unexpected stream type")
	ErrNoTag       = errors.New("crilog: log tag is not found")
)

// ParseLine parses one line of the CRI log format (without its newline):
// "<RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>" (text may be empty, and may contain spaces and any bytes).
//
// It accepts and rejects what the kubelet's parseCRILog does: each field
// ends at the first space, the timestamp is parsed with the layout
// "2006-01-02T15:04:05.999999999Z07:00", the stream must be exactly stdout
// or stderr, and the tag is split at ':' and only a first part of exactly
// "P" makes the entry partial (any other tag, including an empty one, is a
// full line, as the kubelet keeps it forward compatible). The space after
// the tag is required. text is a subslice of b.
func ParseLine(b []byte) (t time.Time, stream string, partial bool, text []byte, err error) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return time.Time{}, "", false, nil, ErrNoTimestamp
	}
	t, perr := time.Parse(timeFormatIn, string(b[:i]))
	if perr != nil {
		return time.Time{}, "", false, nil, fmt.Errorf("%w: %w", ErrTimestamp, perr)
	}
	b = b[i+1:]
	i = bytes.IndexByte(b, ' ')
	if i < 0 {
		return time.Time{}, "", false, nil, ErrNoStream
	}
	switch string(b[:i]) {
	case Stdout:
		stream = Stdout
	case Stderr:
		stream = Stderr
	default:
		return time.Time{}, "", false, nil, ErrStream
	}
	b = b[i+1:]
	i = bytes.IndexByte(b, ' ')
	if i < 0 {
		return time.Time{}, "", false, nil, ErrNoTag
	}
	tag := b[:i]
	if j := bytes.IndexByte(tag, ':'); j >= 0 {
		tag = tag[:j]
	}
	return t, stream, string(tag) == "P", b[i+1:], nil
}

// Display renders text for a terminal or JSON: valid UTF-8 printable text unchanged; invalid bytes and control characters other than tab as \xNN.
//
// Printable is unicode.IsGraphic (letters, marks, numbers, punctuation,
// symbols, spaces): control characters (C0, DEL, C1 such as U+009B, the
// 8-bit CSI), format characters (bidirectional overrides, zero-width
// characters), line and paragraph separators, private-use, surrogate and
// unassigned code points are escaped, each byte of their UTF-8 encoding as
// \xNN (lower-case hex). A backslash in text is kept as it is, so the
// rendering is for reading, not to be decoded back.
func Display(text []byte) string {
	const hex = "0123456789abcdef"
	var out []byte
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRune(text[i:])
		if r == '\t' || (!(r == utf8.RuneError && n == 1) && unicode.IsGraphic(r)) {
			if out != nil {
				out = append(out, text[i:i+n]...)
			}
			i += n
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(text)+16)
			out = append(out, text[:i]...)
		}
		for _, c := range text[i : i+n] {
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0xf])
		}
		i += n
	}
	if out == nil {
		return string(text)
	}
	return string(out)
}
