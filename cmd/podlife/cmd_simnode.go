package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/kubelet"
)

// runSimnode runs only the simulated node (for load harnesses that measure
// the agent as a separate process). It prints the endpoints and waits.
func runSimnode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("simnode", pflag.ContinueOnError)
	pods := fs.Int("pods", 250, "simulated serving pods (4 containers each)")
	churn := fs.Float64("churn", 0, "container restarts per second")
	churnFor := fs.Duration("churn-for", 0, "stop the churn after this long (0: never)")
	script := fs.Bool("script", false, "also run the demo timeline")
	replace := fs.Float64("replace", 0, "pods deleted and created again under a new UID per second")
	outageEvery := fs.Duration("outage-every", 0, "take each source down once in every period: the kubelet a third into it, the runtime two thirds")
	outageFor := fs.Duration("outage-for", 10*time.Second, "how long each outage of --outage-every lasts")
	dir := fs.String("dir", "", "directory for the CRI socket (default a temp dir)")
	logsDir := fs.String("logs-dir", "", "write each ended attempt's log file of the load pods here, as the kubelet's /var/log/pods (for the crash black box; empty: none)")
	kubeletAPI := fs.String("kubelet-api", "both", "what the simulated kubelet serves: both, pods-api (its Pods API socket, Kubernetes 1.37) or pods-http (/pods)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	if *kubeletAPI != "both" && *kubeletAPI != kubelet.ModePodsAPI && *kubeletAPI != kubelet.ModePodsHTTP {
		return fmt.Errorf("%w: --kubelet-api %q: want both, pods-api or pods-http", cli.ErrUsage, *kubeletAPI)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "podlife-simnode-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	node, err := simnode.Start(ctx, simnode.Options{Dir: *dir, Script: *script, Pods: *pods, ChurnPerSecond: *churn, ChurnFor: *churnFor,
		ReplacePerSecond: *replace, OutageEvery: *outageEvery, OutageFor: *outageFor, LogsDir: *logsDir,
		PodsAPI: *kubeletAPI != kubelet.ModePodsHTTP, NoPodsHTTP: *kubeletAPI == kubelet.ModePodsAPI},
		logger(stderr, "warn"))
	if err != nil {
		return err
	}
	defer node.Close()
	fmt.Fprintf(stdout, "cri-endpoint=%s\nkubelet-url=%s\n", node.CRIEndpoint, node.KubeletURL)
	if node.PodsAPISocket != "" {
		fmt.Fprintf(stdout, "kubelet-pods-api-socket=%s\n", node.PodsAPISocket)
	}
	<-ctx.Done()
	return nil
}
