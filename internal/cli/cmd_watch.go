package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/podlife/podlife/api"
)

// RunWatch is podlife watch: the agent's transitions as they happen, one a
// line (or -o json|yaml), until ctx is done or the agent ends the stream.
func RunWatch(ctx context.Context, args []string, stdout io.Writer) error {
	f, n, err := readNode(ctx, "watch", args)
	if err != nil {
		return err
	}
	return n.client.Watch(ctx, func(r api.Record) error {
		if f.namespace != "" && r.Transition.Namespace != f.namespace {
			return nil
		}
		if f.output != "" {
			return Output(stdout, f.output, r)
		}
		_, err := fmt.Fprintf(stdout, "%s  %s\n", r.ObservedAt.Local().Format("15:04:05.000"), FormatTransition(r))
		return err
	})
}
