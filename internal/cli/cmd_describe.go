package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/lifecycle"
)

// RunDescribe is podlife describe NAMESPACE/POD (or POD -n NAMESPACE): one
// pod, its views side by side and its timeline (or -o json|yaml).
func RunDescribe(ctx context.Context, args []string, stdout io.Writer) error {
	f, n, err := readNode(ctx, "describe", args)
	if err != nil {
		return err
	}
	ns, name, err := podArg(f)
	if err != nil {
		return err
	}
	p, err := n.pod(ctx, ns, name)
	if err != nil {
		return err
	}
	if f.output != "" {
		return Output(stdout, f.output, p)
	}
	PrintDescribe(stdout, p, n.now)
	if n.client != nil {
		printAttempts(ctx, stdout, n.client, ns, name)
	}
	return nil
}

// printAttempts writes the pod's attempts from the crash black box, each
// with its last lines, or why they cannot be shown (reading them needs get
// pods/log).
func printAttempts(ctx context.Context, w io.Writer, c *Client, ns, name string) {
	fmt.Fprintln(w, "Attempts (crash black box; all lines: podlife logs "+ns+"/"+name+" --all):")
	r, err := c.Logs(ctx, ns, name, "", -1)
	switch {
	case err != nil:
		fmt.Fprintf(w, "  (not shown: %v)\n", err)
	case len(r.Attempts) == 0:
		fmt.Fprintln(w, "  (no attempt has exited since the black box began keeping them)")
	}
	if r == nil {
		return
	}
	for i := range r.Attempts {
		PrintAttempt(w, &r.Attempts[i], 5)
	}
}

// pod is one pod: the agent's view and history, or the view of the direct
// snapshot (no history).
func (n *node) pod(ctx context.Context, ns, name string) (*api.PodResponse, error) {
	if n.direct == nil {
		return n.client.Pod(ctx, ns, name)
	}
	for _, v := range n.direct.Pods {
		if v.Namespace == ns && v.Name == name {
			return &api.PodResponse{PodView: *v}, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s not found on this node", ns, name)
}

// PrintDescribe writes one pod: conditions with reasons, each container's
// kubelet and runtime views side by side, mismatches, and its timeline.
func PrintDescribe(w io.Writer, p *api.PodResponse, now time.Time) {
	fmt.Fprintf(w, "Name:          %s\nNamespace:     %s\nUID:           %s\n", p.Name, p.Namespace, p.UID)
	fmt.Fprintf(w, "Phase:         %s (from %s)\nStage:         %s\nWhy:           %s\n", p.Phase, dash(p.StatusFrom), p.Stage, p.StageReason)
	if kc := p.KubeletCache; kc != nil {
		fmt.Fprintf(w, "Kubelet copy:  phase %s, Ready=%s, %d restarts; behind the runtime since %s\n",
			kc.Phase, dash(kc.Ready), kc.Restarts, kc.LagsSince.UTC().Format(time.RFC3339))
	}
	if p.UnknownCause != "" {
		since := ""
		if !p.UnknownSince.IsZero() {
			since = " since " + p.UnknownSince.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "Unknown cause: %s%s\n", p.UnknownCause, since)
	}
	if p.APIServer != nil {
		fmt.Fprintf(w, "API server:    phase %s, Ready=%s\n", p.APIServer.Phase, p.APIServer.Ready)
	}
	fmt.Fprintln(w, "Conditions:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE\tSINCE")
	for _, c := range p.Conditions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, dash(c.Reason), dash(c.Message), since(now, c.LastTransitionTime))
	}
	tw.Flush()
	fmt.Fprintln(w, "Containers:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tKIND\tSTATE\tFROM\tRUNTIME\tRESTARTS\tREADY\tLAST TERMINATION")
	for _, c := range p.Containers {
		kub := string(c.State)
		if c.Reason != "" {
			kub += "/" + c.Reason
		}
		if c.ExitCode != nil {
			kub += fmt.Sprintf(" (exit %d)", *c.ExitCode)
		}

		rt := "-"
		if r := c.Runtime; r != nil {
			rt = fmt.Sprintf("%s #%d", r.State, r.Attempt)
			if r.State == lifecycle.RuntimeExited {
				rt += fmt.Sprintf(" (exit %d %s)", r.ExitCode, r.Reason)
			}
		}
		last := "-"
		if l := c.LastState; l != nil && l.Kind == lifecycle.StateTerminated {
			last = fmt.Sprintf("exit %d %s at %s", l.ExitCode, l.Reason, l.FinishedAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%v\t%s\n", c.Name, c.Kind, kub, dash(c.From), rt, c.RestartCount, c.Ready, last)
	}
	tw.Flush()
	if len(p.Mismatches) > 0 {
		fmt.Fprintln(w, "Mismatches:")
		for _, m := range p.Mismatches {
			fmt.Fprintf(w, "  %s %s: %s\n", m.Kind, m.Container, m.Detail)
		}
	}
	fmt.Fprintln(w, "Timeline:")
	if len(p.History) == 0 {
		fmt.Fprintln(w, "  (no transitions recorded since the agent started)")
	}
	for _, r := range p.History {
		fmt.Fprintf(w, "  %s  %s\n", r.ObservedAt.UTC().Format("15:04:05.000"), FormatTransition(r))
	}
}
