package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/kubelet"
)

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	agent.Flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return &agent.ConfigError{Key: "flags", Problem: err.Error()}
	}
	cfg, err := agent.LoadConfig(fs)
	if err != nil {
		return err
	}
	if check, _ := fs.GetBool("check-config"); check {
		fmt.Fprintf(stdout, "configuration ok: node %s, cri %s, kubelet %s, listen %s\n", cfg.NodeName, cfg.CRIEndpoint,
			orDefault(cfg.KubeletURL, kubelet.DefaultURL()), listenSummary(cfg))
		return nil
	}
	// The bound address on stdout: with --listen-address 127.0.0.1:0 it is
	// how a caller (a test, a script) learns the port.
	return agent.Run(ctx, cfg, logger(stderr, cfg.LogLevel), func(url string) {
		fmt.Fprintf(stdout, "podlife agent listening on %s\n", url)
	})
}

// listenSummary says what the agent's listeners will serve.
func listenSummary(cfg agent.Config) string {
	var s []string
	if cfg.InsecureListenAddress != "" {
		s = append(s, "http://"+cfg.InsecureListenAddress+" (no authentication)")
	}
	if cfg.SecureServing() {
		s = append(s, "https://"+cfg.SecureListenAddress+" (TokenReview, SubjectAccessReview)")
	}
	return strings.Join(s, " and ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
	klog.SetSlogLogger(log)
	return log
}
