// Command podlife is the node-level pod lifecycle agent and its debugging CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/version"
)

func main() {
	// Installed as kubectl-podlife (a kubectl plugin), it is the CLI that
	// reaches a node's agent through the API server: kubectl podlife pods --node NODE.
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-podlife") {
		os.Exit(runPlugin(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `podlife: what the pods on this node are really doing.

Usage:
  podlife agent [flags]          run the node agent (see podlife agent --help)
  podlife demo [--pods N]        run the agent against an embedded simulated node (no cluster needed)
  podlife pods [-o json|yaml]    the node's pods: stage, readiness, restarts, why
  podlife describe NS/POD        one pod: conditions, kubelet and runtime views, mismatches, timeline
  podlife watch                  live transitions
  podlife logs NS/POD [-c NAME] [--attempt N | --all]   the crash black box: the last lines of
                                 each container attempt, kept at its exit (needs get pods/log)
  podlife ui [--listen-address 127.0.0.1:0]   the agent's web page in your browser: serves it
                                 on this machine, forwarding to the agent, and prints its URL
  podlife journal --journal-path FILE   transitions not yet delivered upstream
  podlife nodes [--kubeconfig FILE] [-o json|yaml]   the fleet at a glance, from the API server
                                 alone: each node's agent, kubelet link, failing pods, last partition
  podlife version                print the version

CLI flags: --server URL (default http://127.0.0.1:9808, the demo), --direct (read
the CRI socket and the kubelet yourself, with the agent's source flags), -o json|yaml.
A secured agent (https://NODE:9808): --token or --token-file (a token the API
server accepts, bound to ClusterRole podlife-reader), and --certificate-authority
FILE or --insecure-skip-tls-verify (its certificate is self-signed by default).
Any node's agent from anywhere with cluster access: --node NODE [--kubeconfig FILE]
[--context NAME] (through the API server's pod proxy; see kubectl podlife --help).
`

const pluginUsage = `kubectl podlife: what the pods on a node are really doing, from its podlife agent.

Usage:
  kubectl podlife pods --node NODE [-o json|yaml]     the node's pods: stage, readiness, restarts, why
  kubectl podlife describe NS/POD --node NODE         one pod: conditions, both views, mismatches, timeline
  kubectl podlife watch --node NODE                   live transitions
  kubectl podlife journal --node NODE                 transitions not yet delivered upstream
  kubectl podlife logs NS/POD --node NODE [-c NAME] [--attempt N | --all]
                                                      the crash black box: each attempt's last lines
  kubectl podlife ui --node NODE                      the agent's web page: served on 127.0.0.1,
                                                      forwarded through the API server; prints its URL
  kubectl podlife nodes [-o json|yaml]                every node, most trouble first: its agent reports
                                                      or is silent, Ready, the kubelet's link, podlife's
                                                      conditions, pods failing/unknown, last partition
                                                      (two lists from the API server, no agent asked;
                                                      needs ClusterRole podlife-fleet-viewer)

It finds the agent pod on NODE and reaches it through the API server's pod
proxy, with your kubeconfig (--kubeconfig FILE, --context NAME; default
$KUBECONFIG, then ~/.kube/config; flags go after the command). For the agent
it requests a 10-minute token of ServiceAccount podlife/podlife-viewer for
audience podlife (or give --token/--token-file: a token for that audience).
You need Role podlife-cli in namespace podlife (deploy/cli-rbac.yaml):
  kubectl -n podlife create rolebinding podlife-cli-jane --role=podlife-cli --user=jane
Log lines (logs, and describe's attempts) need get pods/log on the pod, as
kubectl logs does, for the identity of the agent's token: give --token with a
token of your own ServiceAccount for audience podlife (kubectl create token SA
--audience podlife), or have podlife-viewer granted pods/log where all plugin
users may read logs.
Flags for other installs: --agent-namespace, --agent-selector, --agent-port-name,
--viewer-serviceaccount.
`

// runPlugin is the kubectl plugin: the CLI commands, always through the API
// server.
func runPlugin(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, pluginUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "pods", "describe", "watch", "journal", "logs", "ui", "nodes", "version":
	default:
		fmt.Fprintf(stderr, "kubectl podlife: unknown command %q (see 'kubectl podlife help')\n", args[0])
		return 2
	}
	if args[0] != "version" && args[0] != "nodes" && !hasFlag(args[1:], "node") {
		fmt.Fprintf(stderr, "kubectl podlife %s: --node NODE: which node's agent (see 'kubectl podlife help')\n", args[0])
		return 2
	}
	return run(args, stdout, stderr)
}

// hasFlag reports whether args set --name (as --name V or --name=V).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--"+name || strings.HasPrefix(a, "--"+name+"=") {
			return true
		}
	}
	return false
}

// run dispatches a subcommand and returns the exit code: 0 ok, 1 failure,
// 2 usage or configuration error.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "agent":
		err = runAgent(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout, stderr)
	case "pods":
		err = cli.RunPods(ctx, args[1:], stdout)
	case "describe":
		err = cli.RunDescribe(ctx, args[1:], stdout)
	case "watch":
		err = cli.RunWatch(ctx, args[1:], stdout)
	case "journal":
		err = cli.RunJournal(ctx, args[1:], stdout)
	case "logs":
		err = cli.RunLogs(ctx, args[1:], stdout)
	case "ui":
		err = cli.RunUI(ctx, args[1:], stdout)
	case "nodes":
		err = cli.RunNodes(ctx, args[1:], stdout)
	case "simnode":
		err = runSimnode(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "podlife: unknown command %q (see 'podlife help')\n", args[0])
		return 2
	}
	switch {
	case err == nil || errors.Is(err, pflag.ErrHelp):
		return 0
	case agent.IsConfigError(err) || errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(stderr, "podlife:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "podlife:", err)
		return 1
	}
}
