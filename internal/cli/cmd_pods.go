package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/lifecycle"
)

// RunPods is podlife pods: the node's pods, a kubectl-like table (or -o json|yaml).
func RunPods(ctx context.Context, args []string, stdout io.Writer) error {
	f, n, err := readNode(ctx, "pods", args)
	if err != nil {
		return err
	}
	pods := n.direct
	if pods == nil {
		if pods, err = n.client.Pods(ctx); err != nil {
			return err
		}
	}
	if f.namespace != "" {
		kept := pods.Pods[:0]
		for _, p := range pods.Pods {
			if p.Namespace == f.namespace {
				kept = append(kept, p)
			}
		}
		pods.Pods = kept
	}
	if f.output != "" {
		return Output(stdout, f.output, pods)
	}
	PrintPods(stdout, pods, n.now)
	return nil
}

// PrintPods writes the kubectl-like table.
func PrintPods(w io.Writer, r *api.PodsResponse, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSTAGE\tREADY\tRESTARTS\tAGE\tWHY")
	for _, p := range r.Pods {
		ready, total := p.ReadyCount()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", p.Namespace, p.Name, p.Stage, ready, total, p.Restarts(),
			since(now, p.Created), why(p))
	}
	tw.Flush()
	var down []string
	names := make([]string, 0, len(r.Sources))
	for n := range r.Sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if h := r.Sources[n]; h.Configured && !h.Up {
			down = append(down, fmt.Sprintf("%s down: %s", n, h.LastError))
		}
	}
	for _, d := range down {
		fmt.Fprintln(w, "! "+d)
	}
}

// why is the stage reason without its "Stage: " prefix, shortened.
func why(p *lifecycle.PodView) string {
	s := p.StageReason
	if i := strings.Index(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if p.UnknownCause != "" && p.Stage != lifecycle.StageUnknown {
		s = "[" + string(p.UnknownCause) + "] " + s
	}
	if len(s) > 90 {
		s = s[:89] + "…"
	}
	return s
}
