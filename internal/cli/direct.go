package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
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
// within the timeout is an error.
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
	timeout := d.timeout
	if timeout <= 0 {
		timeout = directTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go rt.Run(wctx)
	kl.Poll(wctx) // one request, recorded in its health
	runtimeAnswered := awaitAnswer(wctx, rt.Updates(), func() lifecycle.SourceHealth { return rt.State().Health })
	var silent []string
	if !runtimeAnswered {
		silent = append(silent, "the container runtime ("+d.criEndpoint+")")
	}
	if !answered(kl.State().Health) {
		silent = append(silent, "the kubelet ("+kl.URL()+")")
	}
	if len(silent) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("--direct: no answer within %s from %s", timeout, strings.Join(silent, " or "))
	}
	rs, ks := rt.State(), kl.State()
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
