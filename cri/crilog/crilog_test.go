package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

// kubeletParseCRILog is the kubelet's parser, parseCRILog in
// kubernetes/kubernetes staging/src/k8s.io/cri-client/pkg/logs/logs.go
// (v1.37.2; k8s.io/cri-client), copied as the oracle ParseLine is held to.
// The kubelet passes the line with its '\n' (bufio ReadBytes) and keeps the
// '\n' in a full line's log; the callers here add it and take it off.
func kubeletParseCRILog(log []byte) (timestamp time.Time, stream string, partial bool, msg []byte, err error) {
	delimiter := []byte{' '}
	idx := bytes.Index(log, delimiter)
	if idx < 0 {
		return timestamp, "", false, nil, fmt.Errorf("timestamp is not found")
	}
	timestamp, err = time.Parse("2006-01-02T15:04:05.999999999Z07:00", string(log[:idx]))
	if err != nil {
		return timestamp, "", false, nil, fmt.Errorf("unexpected timestamp format: %v", err)
	}
	log = log[idx+1:]
	idx = bytes.Index(log, delimiter)
	if idx < 0 {
		return timestamp, "", false, nil, fmt.Errorf("stream type is not found")
	}
	stream = string(log[:idx])
	if stream != "stdout" && stream != "stderr" {
		return timestamp, "", false, nil, fmt.Errorf("unexpected stream type %q", stream)
	}
	log = log[idx+1:]
	idx = bytes.Index(log, delimiter)
	if idx < 0 {
		return timestamp, "", false, nil, fmt.Errorf("log tag is not found")
	}
	tags := bytes.Split(log[:idx], []byte(":"))
	partial = string(tags[0]) == "P"
	if partial && len(log) > 0 && log[len(log)-1] == '\n' {
		log = log[:len(log)-1]
	}
	return timestamp, stream, partial, log[idx+1:], nil
}

// kubeletParse runs kubeletParseCRILog on b as the kubelet reads it (with
// its newline) and returns the text without it.
func kubeletParse(b []byte) (time.Time, string, bool, []byte, error) {
	ts, stream, partial, text, err := kubeletParseCRILog(append(bytes.Clone(b), '\n'))
	if err == nil && !partial {
		text = text[:len(text)-1]
	}
	return ts, stream, partial, text, err
}

func TestParseLine(t *testing.T) {
	ts := time.Date(2016, 10, 20, 18, 39, 20, 576064430, time.UTC)
	plus2 := time.FixedZone("", 2*3600)
	for _, c := range []struct {
		name, line string
		err        error // nil: accepted
		time       time.Time
		stream     string
		partial    bool
		text       string
	}{
		// The accepted forms of the kubelet's TestParseLog
		// (staging/src/k8s.io/cri-client/pkg/logs/logs_test.go).
		{name: "stdout full", line: "2016-10-20T18:39:20.57606443Z stdout F cri stdout test log", time: ts, stream: "stdout", text: "cri stdout test log"},
		{name: "stderr full", line: "2016-10-20T18:39:20.57606443Z stderr F cri stderr test log", time: ts, stream: "stderr", text: "cri stderr test log"},
		{name: "partial", line: "2016-10-20T18:39:20.57606443Z stdout P cri stdout partial test log", time: ts, stream: "stdout", partial: true, text: "cri stdout partial test log"},
		{name: "partial with tags", line: "2016-10-20T18:39:20.57606443Z stdout P:TAG1:TAG2 cri stdout partial test log", time: ts, stream: "stdout", partial: true, text: "cri stdout partial test log"},
		{name: "unsupported", line: "unsupported log format test log", err: ErrTimestamp},
		// What parseCRILog accepts beyond those: its reading of each field.
		{name: "empty text", line: "2016-10-20T18:39:20.57606443Z stdout F ", time: ts, stream: "stdout", text: ""},
		{name: "spaces in text", line: "2016-10-20T18:39:20.57606443Z stdout F  a  b ", time: ts, stream: "stdout", text: " a  b "},
		{name: "any bytes", line: "2016-10-20T18:39:20.57606443Z stderr F \xff\x00\x1b[31m\r", time: ts, stream: "stderr", text: "\xff\x00\x1b[31m\r"},
		{name: "no fraction", line: "2016-10-20T18:39:20Z stdout F x", time: ts.Truncate(time.Second), stream: "stdout", text: "x"},
		{name: "offset zone", line: "2016-10-20T20:39:20.57606443+02:00 stdout F x", time: ts.In(plus2), stream: "stdout", text: "x"},
		{name: "unknown tag is full", line: "2016-10-20T18:39:20.57606443Z stdout X x", time: ts, stream: "stdout", text: "x"},
		{name: "empty tag is full", line: "2016-10-20T18:39:20.57606443Z stdout  x", time: ts, stream: "stdout", text: "x"},
		{name: "F with tags", line: "2016-10-20T18:39:20.57606443Z stdout F:P x", time: ts, stream: "stdout", text: "x"},
		{name: "lower-case p is full", line: "2016-10-20T18:39:20.57606443Z stdout p x", time: ts, stream: "stdout", text: "x"},
		{name: "PP is full", line: "2016-10-20T18:39:20.57606443Z stdout PP x", time: ts, stream: "stdout", text: "x"},
		// What it rejects.
		{name: "empty", line: "", err: ErrNoTimestamp},
		{name: "no space", line: "2016-10-20T18:39:20.57606443Z", err: ErrNoTimestamp},
		{name: "leading space", line: " 2016-10-20T18:39:20.57606443Z stdout F x", err: ErrTimestamp},
		{name: "no stream delimiter", line: "2016-10-20T18:39:20.57606443Z stdout", err: ErrNoStream},
		{name: "bad stream", line: "2016-10-20T18:39:20.57606443Z stdin F x", err: ErrStream},
		{name: "upper-case stream", line: "2016-10-20T18:39:20.57606443Z STDOUT F x", err: ErrStream},
		{name: "no tag delimiter", line: "2016-10-20T18:39:20.57606443Z stdout F", err: ErrNoTag},
		{name: "date only", line: "2016-10-20 stdout F x", err: ErrTimestamp},
		{name: "no zone", line: "2016-10-20T18:39:20.57606443 stdout F x", err: ErrTimestamp},
		{name: "docker json", line: `{"log":"x","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`, err: ErrNoTimestamp},
	} {
		t.Run(c.name, func(t *testing.T) {
			tm, stream, partial, text, err := ParseLine([]byte(c.line))
			_, _, _, _, kerr := kubeletParse([]byte(c.line))
			if (err == nil) != (kerr == nil) {
				t.Fatalf("ParseLine error %v, the kubelet's %v", err, kerr)
			}
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !tm.Equal(c.time) || stream != c.stream || partial != c.partial || string(text) != c.text {
				t.Fatalf("got %v %q %v %q, want %v %q %v %q", tm, stream, partial, text, c.time, c.stream, c.partial, c.text)
			}
			if _, off := tm.Zone(); off != func() int { _, o := c.time.Zone(); return o }() {
				t.Fatalf("zone offset %d, want that of %v", off, c.time)
			}
		})
	}
}

func TestDisplay(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text, with spaces", "plain text, with spaces"},
		{"tab\tkept", "tab\tkept"},
		{"héllo wörld ✓ 日本語 😀", "héllo wörld ✓ 日本語 😀"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"a\x00b\x7fc\rd\ne", `a\x00b\x7fc\x0dd\x0ae`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"cut multibyte \xe6\x97", `cut multibyte \xe6\x97`},
		{"C1 CSI \u009b31m", `C1 CSI \xc2\x9b31m`},
		{"bidi \u202eevil", `bidi \xe2\x80\xaeevil`},
		{"line\u2028sep", `line\xe2\x80\xa8sep`},
		{"surrogate \xed\xa0\x80", `surrogate \xed\xa0\x80`},
		{"replacement char \ufffd kept", "replacement char \ufffd kept"},
		{`back\slash \x41`, `back\slash \x41`},
		{"", ""},
	} {
		if got := Display([]byte(c.in)); got != c.want {
			t.Errorf("Display(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
