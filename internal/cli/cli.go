// Package cli is podlife's node-level debugging CLI: it reads a running
// agent's HTTP API (or, with --direct, the sources themselves) and prints a
// kubectl-like table, a describe view, or live transitions.
//
// One file a command, as crictl has them: cmd_pods.go (podlife pods),
// cmd_describe.go, cmd_watch.go and cmd_journal.go; the flags they share are
// in flags.go, the agent's client in client.go and remote.go (through the API
// server), the sources read directly in direct.go. cmd/podlife dispatches.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/podlife/podlife/api"
)

// ErrUsage marks a command line the CLI cannot run as given (exit code 2):
// its errors read "usage: ..." (or, for a --direct source setting, "config:
// KEY: ..." as the agent says it).
var ErrUsage = errors.New("usage")

// configError is a --direct source setting the source refused, said as the
// agent says its own (config: KEY: PROBLEM); it is a usage error.
type configError struct{ key, problem string }

func (e *configError) Error() string { return "config: " + e.key + ": " + e.problem }

// Is makes a configError an ErrUsage.
func (e *configError) Is(target error) bool { return target == ErrUsage }

// Output writes v as json or yaml.
func Output(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("output format %q: want json or yaml", format)
}

// Age renders a duration as kubectl's AGE column does
// (k8s.io/apimachinery/pkg/util/duration.HumanDuration).
func Age(d time.Duration) string {
	if d <= 0 {
		return "<unknown>"
	}
	return duration.HumanDuration(d)
}

// since is kubectl's translateTimestampSince: "<unknown>" for a zero time.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return Age(now.Sub(t))
}

// FormatTransition is one transition on one line.
func FormatTransition(r api.Record) string {
	s := string(r.Kind)
	if r.Pod != "" {
		s += " " + r.Namespace + "/" + r.Pod
	}
	if r.Container != "" {
		s += " " + r.Container
	}
	if r.Source != "" {
		s += " [" + r.Source + "]"
	}
	if r.From != "" || r.To != "" {
		s += fmt.Sprintf(" %s -> %s", dash(r.From), dash(r.To))
	}
	if r.ExitCode != nil {
		s += fmt.Sprintf(" exit %d", *r.ExitCode)
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	} else if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
