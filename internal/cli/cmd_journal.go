package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/journal"
)

// RunJournal is podlife journal: the transitions not yet delivered upstream,
// from a running agent or read from its journal file (--journal-path).
func RunJournal(ctx context.Context, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("journal", pflag.ContinueOnError)
	server := fs.String("server", "http://127.0.0.1:9808", "the running agent's HTTP API")
	var auth Auth
	authFlags(fs, &auth)
	path := fs.String("journal-path", "", "read this journal file directly (only while no agent holds it)")
	output := fs.StringP("output", "o", "", "json or yaml")
	var remote Remote
	remoteFlags(fs, &remote)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	var r api.JournalResponse
	where := *server
	if remote.Node != "" {
		where = "of the agent on node " + remote.Node
	}
	if *path != "" {
		where = *path
		if err := readJournalFile(*path, &r); err != nil {
			return err
		}
	} else {
		c, err := clientFor(ctx, fs, *server, auth, remote)
		if err != nil {
			return err
		}
		if err := c.Journal(ctx, &r); err != nil {
			return err
		}
	}
	if *output != "" {
		return Output(stdout, *output, r)
	}
	PrintJournal(stdout, where, &r, *path == "")
	return nil
}

// readJournalFile reads the journal at path into r (no health: that is an
// agent's), as long as no agent holds it.
func readJournalFile(path string, r *api.JournalResponse) error {
	j, err := journal.Open(path, journal.Options{OpenTimeout: 500 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("%w (while an agent runs, ask it: podlife journal --server URL)", err)
	}
	defer j.Close()
	if r.Stats, err = j.Stats(); err != nil {
		return err
	}
	r.Pending, err = j.Pending(0)
	return err
}

// PrintJournal writes the journal's counts, with an agent's the health of
// its journal (withHealth: a file read directly has none), then the pending
// entries one per line.
func PrintJournal(w io.Writer, where string, r *api.JournalResponse, withHealth bool) {
	st := r.Stats
	fmt.Fprintf(w, "journal %s: %d pending, last seq %d, delivered up to %d, dropped %d\n",
		where, st.Pending, st.LastSeq, st.Delivered, st.Dropped)
	if h := r.Health; withHealth {
		state := "up"
		if !h.Up {
			state = "DOWN"
			if !h.DownSince.IsZero() {
				state += " since " + h.DownSince.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(w, "health: %s; %d held in memory, %d lost, %d errors", state, h.Unwritten, h.Lost, h.Errors)
		if h.Error != "" {
			fmt.Fprintf(w, "; last error at %s: %s", h.ErrorAt.UTC().Format(time.RFC3339), h.Error)
		}
		fmt.Fprintln(w)
		for _, m := range h.MovedAside {
			fmt.Fprintf(w, "moved aside at %s: %s (%s)\n", m.At.UTC().Format(time.RFC3339), m.Path, m.Reason)
		}
	}
	for _, e := range r.Pending {
		fmt.Fprintf(w, "  #%d %s  %s\n", e.Seq, e.Transition.ObservedAt.UTC().Format(time.RFC3339Nano),
			FormatTransition(api.Record{Seq: e.Seq, Transition: e.Transition}))
	}
}
