package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/simnode"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	pods := fs.Int("pods", 0, "extra simulated serving pods (4 containers each) for load")
	churn := fs.Float64("churn", 0, "container restarts per second among the extra pods")
	listen := fs.String("listen-address", "127.0.0.1:9808", "the agent's HTTP address")
	poll := fs.Duration("poll-interval", time.Second, "kubelet poll and CRI relist interval")
	stream := fs.Bool("cri-stream", true, "stream container events from the simulated runtime")
	level := fs.String("log-level", "warn", "agent log level")
	podsHTTP := fs.Bool("pods-http", false, "the simulated kubelet serves /pods only, no Pods API (the agent polls /pods)")
	podMetrics := fs.String("pod-metrics", agent.PodMetricsPodlife, "per-pod metrics: podlife or ksm-compatible (as the agent's flag)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	dir, err := os.MkdirTemp("", "podlife-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := logger(stderr, *level)
	node, err := simnode.Start(ctx, simnode.Options{Dir: dir, Script: true, Pods: *pods, ChurnPerSecond: *churn, PodsAPI: !*podsHTTP}, log)
	if err != nil {
		return err
	}
	defer node.Close()
	cfg := agent.Config{NodeName: "podlife-demo", CRIEndpoint: node.CRIEndpoint, CRIStream: *stream, KubeletURL: node.KubeletURL,
		KubeletPodsAPISocket: node.PodsAPISocket,
		PollInterval:         *poll, InsecureListenAddress: *listen, HistorySize: 1000, Upstream: "off", EventBurst: 5,
		EventInterval: time.Minute, StuckThreshold: 30 * time.Second, LogLevel: *level, PodMetrics: *podMetrics}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return agent.Run(ctx, cfg, log, func(base string) {
		fmt.Fprintf(stdout, `podlife demo: the agent runs against a simulated node (CRI %s, kubelet %s%s).
Pods walk through every stage: init containers, starting, serving, a completed Job, CrashLoopBackOff,
ErrImagePull/ImagePullBackOff, InvalidImageName, OOMKilled, Evicted, Terminating; the kubelet is
down at 50-60 s and the runtime at 70-80 s of every %s loop.

Look at:
  %s/ui/  (the page: the node, live, and each pod's timeline)
  %s/api/v1/pods
  %s/api/v1/transitions?watch=true
  %s/metrics
  go run ./cmd/podlife pods --server %s
  go run ./cmd/podlife describe shop/worker --server %s
Ctrl-C stops it.
`, node.CRIEndpoint, node.KubeletURL, podsAPINote(node.PodsAPISocket), simnode.Period, base, base, base, base, base, base)
	})
}

// podsAPINote names the simulated kubelet's Pods API socket, if it serves one.
func podsAPINote(socket string) string {
	if socket == "" {
		return ""
	}
	return ", its Pods API " + socket
}
