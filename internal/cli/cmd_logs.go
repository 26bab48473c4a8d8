package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/journal"
)

// RunLogs is podlife logs NAMESPACE/POD [-c NAME] [--attempt N | --all]:
// the crash black box, the last lines of a container's attempts as the
// agent kept them at each exit (by default each container's last attempt).
// Reading them needs get pods/log on the pod, as kubectl logs does.
func RunLogs(ctx context.Context, args []string, stdout io.Writer) error {
	f := newReadFlags("logs")
	container := f.fs.StringP("container", "c", "", "only this container's attempts")
	attempt := f.fs.Int("attempt", -1, "only this attempt (the container's restart count when it ran)")
	all := f.fs.Bool("all", false, "every attempt kept, oldest first (default: each container's last)")
	if err := f.parse(args); err != nil {
		return err
	}
	ns, name, err := podArg(f)
	switch {
	case err != nil:
		return err
	case f.direct:
		return fmt.Errorf("%w: logs reads the agent's crash black box (its journal); --direct does not apply", ErrUsage)
	case *all && *attempt >= 0:
		return fmt.Errorf("%w: --attempt N or --all: give one", ErrUsage)
	}
	n, err := f.open(ctx)
	if err != nil {
		return err
	}
	r, err := n.client.Logs(ctx, ns, name, *container, *attempt)
	if err != nil {
		return err
	}
	if !*all && *attempt < 0 {
		r.Attempts = lastPerContainer(r.Attempts)
	}
	if f.output != "" {
		return Output(stdout, f.output, r)
	}
	if len(r.Attempts) == 0 {
		fmt.Fprintf(stdout, "no attempt of %s/%s%s has exited on node %s since the black box began keeping them\n", ns, name, ofContainer(*container), r.Node)
		return nil
	}
	for i := range r.Attempts {
		PrintAttempt(stdout, &r.Attempts[i], 0)
	}
	return nil
}

// podArg is the NAMESPACE/POD argument (or POD with -n NAMESPACE).
func podArg(f *readFlags) (ns, name string, err error) {
	arg := f.fs.Arg(0)
	if f.namespace != "" && f.fs.NArg() == 1 && !strings.Contains(arg, "/") {
		arg = f.namespace + "/" + arg
	}
	if f.fs.NArg() != 1 || !strings.Contains(arg, "/") {
		return "", "", fmt.Errorf("%w: %s NAMESPACE/POD (or %s POD -n NAMESPACE)", ErrUsage, f.fs.Name(), f.fs.Name())
	}
	ns, name, _ = strings.Cut(arg, "/")
	return ns, name, nil
}

func ofContainer(c string) string {
	if c == "" {
		return ""
	}
	return " container " + c
}

// lastPerContainer keeps each container's last attempt (boxes come by
// container, oldest first).
func lastPerContainer(boxes []journal.BlackBox) []journal.BlackBox {
	var out []journal.BlackBox
	for i, b := range boxes {
		if i+1 == len(boxes) || boxes[i+1].Container != b.Container {
			out = append(out, b)
		}
	}
	return out
}

// PrintAttempt writes one attempt: a header (container, attempt, when it
// ran and for how long, how it ended) and its last lines, or the last
// maxLines of them when maxLines > 0.
func PrintAttempt(w io.Writer, b *journal.BlackBox, maxLines int) {
	fmt.Fprintf(w, "== %s attempt %d: %s ==\n", b.Container, b.Attempt, attemptSummary(b))
	if b.CaptureError != "" {
		fmt.Fprintf(w, "   (no lines: %s)\n", b.CaptureError)
	}
	lines := b.Lines
	if maxLines > 0 && len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	} else if b.Truncated {
		fmt.Fprintln(w, "   (earlier lines not kept)")
	}
	for _, l := range lines {
		partial := ""
		if l.Partial {
			partial = " (no newline: the attempt ended mid-line)"
		}
		fmt.Fprintf(w, "%s %-6s %s%s\n", l.Time.UTC().Format("15:04:05.000"), dash(l.Stream), l.Text, partial)
	}
}

// attemptSummary: started, finished, how long it ran, exit code and reason.
func attemptSummary(b *journal.BlackBox) string {
	s := "started " + stamp(b.StartedAt) + ", finished " + stamp(b.FinishedAt)
	if !b.StartedAt.IsZero() && !b.FinishedAt.IsZero() {
		// An attempt that exits at once can finish "before" it started:
		// containerd stamps startedAt after the start call returns.
		s += ", ran " + max(0, b.FinishedAt.Sub(b.StartedAt)).Round(time.Millisecond).String()
	}
	s += ", exit " + strconv.Itoa(int(b.ExitCode))
	if b.Reason != "" {
		s += " " + b.Reason
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Logs fetches a pod's crash black box (container "" for all; attempt < 0
// for every attempt).
func (c *Client) Logs(ctx context.Context, ns, name, container string, attempt int) (*api.LogsResponse, error) {
	q := url.Values{}
	if container != "" {
		q.Set("container", container)
	}
	if attempt >= 0 {
		q.Set("attempt", strconv.Itoa(attempt))
	}
	path := "/api/v1/pods/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/logs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var r api.LogsResponse
	return &r, c.get(ctx, path, &r)
}
