package cli

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// directTimeout bounds how long --direct waits for both sources' first answer.
const directTimeout = 6 * time.Second

// directFlags are the sources --direct reads, set as the agent's flags of the
// same names set them.
type directFlags struct {
	criEndpoint string
	kubelet     kubelet.Config
	timeout     time.Duration // 0: directTimeout
}

// define defines the --direct source flags on fs.
func (d *directFlags) define(fs *pflag.FlagSet) {
	fs.StringVar(&d.criEndpoint, "cri-endpoint", cri.DefaultEndpoint, "CRI socket, with --direct")
	fs.StringVar(&d.kubelet.URL, "kubelet-url", "", "kubelet URL, with --direct")
	fs.StringVar(&d.kubelet.TokenFile, "kubelet-token-file", "", "kubelet token file, with --direct")
	fs.StringVar(&d.kubelet.CAFile, "kubelet-ca-file", "", "kubelet CA, with --direct")
	fs.StringVar(&d.kubelet.ServingCertFile, "kubelet-serving-cert-file", "", "the kubelet's own serving certificate to pin, with --direct")
	fs.StringVar(&d.kubelet.ServerName, "kubelet-tls-server-name", "", "the name the pinned certificate covers (default the hostname), with --direct")
	fs.BoolVar(&d.kubelet.InsecureSkipVerify, "kubelet-insecure-skip-verify", false, "with --direct")
}

// snapshot reads both sources once, without an agent: it waits for each
// source's first answer (a listing, or the error that says why there is
// none) and correlates what they said. A source that gives no answer at all
// within the timeout is shown down, "no answer within" it: the other's view
// is what --direct is for when something is wrong.
func (d directFlags) snapshot(ctx context.Context) (*lifecycle.Snapshot, error) {
	kc := d.kubelet
	if kc.ServingCertFile != "" && kc.ServerName == "" {
		kc.ServerName, _ = os.Hostname()
	}
	log := slog.New(slog.DiscardHandler)
	rt, err := cri.New(cri.Config{Endpoint: d.criEndpoint, Stream: false}, log)
	if err != nil {
		return nil, &configError{"cri-endpoint", err.Error()}
	}
	kl, err := kubelet.New(kc, log)
	if err != nil {
		return nil, &configError{"kubelet-url", err.Error()}
	}
	timeout := cmp.Or(d.timeout, directTimeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- rt.Run(wctx) }()
	kl.Poll(wctx) // one request, recorded in its health
	awaitAnswer(wctx, rt.Updates(), func() lifecycle.SourceHealth { return rt.State().Health })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	silent := fmt.Sprintf("no answer within %s", timeout)
	rs, ks := rt.State(), kl.State()
	if !answered(rs.Health) {
		rs.Health = lifecycle.SourceHealth{Configured: true, LastError: silent}
		select {
		case err := <-ran:
			if err != nil {
				rs.Health.LastError = err.Error()
			}
		default:
		}
	}
	if !answered(ks.Health) {
		ks.Health = lifecycle.SourceHealth{Configured: true, LastError: silent}
	}
	snap := lifecycle.Correlate(lifecycle.Input{Node: "(direct)", Now: time.Now(), Pods: ks.Pods, Kubelet: ks.Health,
		Sandboxes: rs.Sandboxes, Containers: rs.Containers, Runtime: rs.Health})
	return &snap, nil
}

// answered reports whether a source has answered once: with a listing, or
// with the error that says why it has none (the agent's Correlate waits for
// the same before its first snapshot).
func answered(h lifecycle.SourceHealth) bool { return !h.LastSuccess.IsZero() || h.LastError != "" }

// awaitAnswer waits for a source's first answer, woken by its updates (a
// source signals them when its health changes), and reports whether it came
// before ctx was done.
func awaitAnswer(ctx context.Context, updates <-chan struct{}, health func() lifecycle.SourceHealth) bool {
	for !answered(health()) {
		select {
		case <-ctx.Done():
			return answered(health())
		case <-updates:
		}
	}
	return true
}
