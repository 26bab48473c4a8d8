// Command podlife is the node-level pod lifecycle agent and its debugging CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/podlife/podlife/agent"
	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/cli"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/internal/version"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
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
  podlife journal --journal-path FILE   transitions not yet delivered upstream
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

It finds the agent pod on NODE and reaches it through the API server's pod
proxy, with your kubeconfig (--kubeconfig FILE, --context NAME; default
$KUBECONFIG, then ~/.kube/config; flags go after the command). For the agent
it requests a 10-minute token of ServiceAccount podlife/podlife-viewer for
audience podlife (or give --token/--token-file: a token for that audience).
You need Role podlife-cli in namespace podlife (deploy/cli-rbac.yaml):
  kubectl -n podlife create rolebinding podlife-cli-jane --role=podlife-cli --user=jane
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
	case "pods", "describe", "watch", "journal", "version":
	default:
		fmt.Fprintf(stderr, "kubectl podlife: unknown command %q (see 'kubectl podlife help')\n", args[0])
		return 2
	}
	if args[0] != "version" && !hasFlag(args[1:], "node") {
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
	case "pods", "describe", "watch":
		err = runCLI(ctx, args[0], args[1:], stdout)
	case "journal":
		err = runJournal(args[1:], stdout)
	case "simnode":
		err = runSimnode(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "podlife: unknown command %q (see 'podlife help')\n", args[0])
		return 2
	}
	switch {
	case err == nil || errors.Is(err, pflag.ErrHelp):
		return 0
	case agent.IsConfigError(err) || errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "podlife:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "podlife:", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func logger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
	klog.SetSlogLogger(log)
	return log
}

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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
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
		EventInterval: time.Minute, StuckThreshold: 30 * time.Second, LogLevel: *level}
	if err := cfg.Validate(); err != nil {
		return err
	}
	return agent.Run(ctx, cfg, log, func(base string) {
		fmt.Fprintf(stdout, `podlife demo: the agent runs against a simulated node (CRI %s, kubelet %s%s).
Pods walk through every stage: init containers, starting, serving, a completed Job, CrashLoopBackOff,
ErrImagePull/ImagePullBackOff, InvalidImageName, OOMKilled, Evicted, Terminating; the kubelet is
down at 50-60 s and the runtime at 70-80 s of every %s loop.

Look at:
  %s/api/v1/pods
  %s/api/v1/transitions?watch=true
  %s/metrics
  go run ./cmd/podlife pods --server %s
  go run ./cmd/podlife describe shop/worker --server %s
Ctrl-C stops it.
`, node.CRIEndpoint, node.KubeletURL, podsAPINote(node.PodsAPISocket), simnode.Period, base, base, base, base, base)
	})
}

// podsAPINote names the simulated kubelet's Pods API socket, if it serves one.
func podsAPINote(socket string) string {
	if socket == "" {
		return ""
	}
	return ", its Pods API " + socket
}

func runCLI(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	server := fs.String("server", "http://127.0.0.1:9808", "the podlife agent's HTTP API")
	auth := clientAuthFlags(fs)
	output := fs.StringP("output", "o", "", "json or yaml (default: a table)")
	namespace := fs.StringP("namespace", "n", "", "only this namespace's pods (pods, watch); describe POD -n NS is describe NS/POD")
	direct := fs.Bool("direct", false, "read the CRI socket and the kubelet directly (no agent needed)")
	criEndpoint := fs.String("cri-endpoint", cri.DefaultEndpoint, "CRI socket, with --direct")
	kubeletURL := fs.String("kubelet-url", "", "kubelet URL, with --direct")
	tokenFile := fs.String("kubelet-token-file", "", "kubelet token file, with --direct")
	caFile := fs.String("kubelet-ca-file", "", "kubelet CA, with --direct")
	pin := fs.String("kubelet-serving-cert-file", "", "the kubelet's own serving certificate to pin, with --direct")
	serverName := fs.String("kubelet-tls-server-name", "", "the name the pinned certificate covers (default the hostname), with --direct")
	insecure := fs.Bool("kubelet-insecure-skip-verify", false, "with --direct")
	remote := remoteFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *output != "" && *output != "json" && *output != "yaml" {
		return fmt.Errorf("%w: -o %q: want json or yaml", errUsage, *output)
	}
	if *direct && remote.Node != "" {
		return fmt.Errorf("%w: --direct reads this node, --node another through the API server: give one", errUsage)
	}
	var c *cli.Client
	var err error
	if !*direct {
		if c, err = clientFor(ctx, fs, *server, *auth, *remote); err != nil {
			return err
		}
	}
	now := time.Now()
	var pods *agent.PodsResponse
	if *direct {
		if *pin != "" && *serverName == "" {
			*serverName, _ = os.Hostname()
		}
		snap, err := directSnapshot(ctx, *criEndpoint, kubelet.Config{URL: *kubeletURL, TokenFile: *tokenFile, CAFile: *caFile,
			ServingCertFile: *pin, ServerName: *serverName, InsecureSkipVerify: *insecure})
		if err != nil {
			return err
		}
		pods = &agent.PodsResponse{Node: snap.Node, GeneratedAt: snap.At, Sources: snap.Sources, Pods: snap.Pods}
	}
	switch cmd {
	case "pods":
		if pods == nil {
			var err error
			if pods, err = c.Pods(ctx); err != nil {
				return err
			}
		}
		if *namespace != "" {
			kept := pods.Pods[:0]
			for _, p := range pods.Pods {
				if p.Namespace == *namespace {
					kept = append(kept, p)
				}
			}
			pods.Pods = kept
		}
		if *output != "" {
			return cli.Output(stdout, *output, pods)
		}
		cli.PrintPods(stdout, pods, now)
	case "describe":
		arg := fs.Arg(0)
		if *namespace != "" && fs.NArg() == 1 && !strings.Contains(arg, "/") {
			arg = *namespace + "/" + arg
		}
		if fs.NArg() != 1 || !strings.Contains(arg, "/") {
			return fmt.Errorf("%w: describe NAMESPACE/POD (or describe POD -n NAMESPACE)", errUsage)
		}
		ns, name, _ := strings.Cut(arg, "/")
		var p *agent.PodResponse
		if pods != nil {
			for _, v := range pods.Pods {
				if v.Namespace == ns && v.Name == name {
					p = &agent.PodResponse{PodView: v}
				}
			}
			if p == nil {
				return fmt.Errorf("pod %s/%s not found on this node", ns, name)
			}
		} else {
			var err error
			if p, err = c.Pod(ctx, ns, name); err != nil {
				return err
			}
		}
		if *output != "" {
			return cli.Output(stdout, *output, p)
		}
		cli.PrintDescribe(stdout, p, now)
	case "watch":
		return c.Watch(ctx, func(r agent.Record) error {
			if *namespace != "" && r.Transition.Namespace != *namespace {
				return nil
			}
			if *output != "" {
				return cli.Output(stdout, *output, r)
			}
			_, err := fmt.Fprintf(stdout, "%s  %s\n", r.ObservedAt.Local().Format("15:04:05.000"), cli.FormatTransition(r))
			return err
		})
	}
	return nil
}

// remoteFlags defines the flags that reach a node's agent through the API
// server on fs.
func remoteFlags(fs *pflag.FlagSet) *cli.Remote {
	r := cli.RemoteDefaults
	fs.StringVar(&r.Node, "node", "", "reach this node's agent through the API server's pod proxy (with --kubeconfig)")
	fs.StringVar(&r.Kubeconfig, "kubeconfig", "", "with --node: kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&r.Context, "context", "", "with --node: kubeconfig context (default the current one)")
	fs.StringVar(&r.Namespace, "agent-namespace", r.Namespace, "with --node: the agent pods' namespace")
	fs.StringVar(&r.Selector, "agent-selector", r.Selector, "with --node: the agent pods' label selector")
	fs.StringVar(&r.Port, "agent-port-name", r.Port, "with --node: the agent container's API port name")
	fs.StringVar(&r.Viewer, "viewer-serviceaccount", r.Viewer, "with --node and no --token: the ServiceAccount (in --agent-namespace) whose short-lived token the agent gets")
	return &r
}

// clientFor is the agent client the flags ask for: through the API server
// with --node, else at server.
func clientFor(ctx context.Context, fs *pflag.FlagSet, server string, auth cli.Auth, remote cli.Remote) (*cli.Client, error) {
	if remote.Node == "" {
		for _, f := range []string{"kubeconfig", "context"} {
			if fs.Changed(f) {
				return nil, fmt.Errorf("%w: --%s goes with --node NODE", errUsage, f)
			}
		}
		c, err := cli.NewClientWith(server, auth)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		return c, nil
	}
	if fs.Changed("server") {
		return nil, fmt.Errorf("%w: --server and --node: give one", errUsage)
	}
	if auth.CertificateAuthority != "" || auth.InsecureSkipTLSVerify {
		return nil, fmt.Errorf("%w: with --node the API server reaches the agent; --certificate-authority and --insecure-skip-tls-verify do not apply", errUsage)
	}
	return cli.NewRemoteClient(ctx, remote, auth)
}

// clientAuthFlags defines the flags that reach a secured agent on fs.
func clientAuthFlags(fs *pflag.FlagSet) *cli.Auth {
	var a cli.Auth
	fs.StringVar(&a.Token, "token", "", "bearer token for a secured agent (https://): one the API server accepts, bound to ClusterRole podlife-reader")
	fs.StringVar(&a.TokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&a.CertificateAuthority, "certificate-authority", "", "CA file that signed the agent's serving certificate (--tls-cert-file)")
	fs.BoolVar(&a.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false, "do not verify the agent's certificate (its default one is self-signed)")
	return &a
}

// directSnapshot reads both sources once, without an agent.
func directSnapshot(ctx context.Context, endpoint string, kc kubelet.Config) (*lifecycle.Snapshot, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := cri.New(cri.Config{Endpoint: endpoint, Stream: false}, log)
	if err != nil {
		return nil, &agent.ConfigError{Key: "cri-endpoint", Problem: err.Error()}
	}
	kl, err := kubelet.New(kc, log)
	if err != nil {
		return nil, &agent.ConfigError{Key: "kubelet-url", Problem: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, 6*time.Second)
	defer cancel()
	go rt.Run(ctx)
	kl.Poll(ctx)
	for ctx.Err() == nil {
		if st := rt.State(); st.Health.Up || st.Health.LastError != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	rs, ks := rt.State(), kl.State()
	snap := lifecycle.Correlate(lifecycle.Input{Node: "(direct)", Now: time.Now(), Pods: ks.Pods, Kubelet: ks.Health,
		Sandboxes: rs.Sandboxes, Containers: rs.Containers, Runtime: rs.Health})
	return &snap, nil
}

func runJournal(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("journal", pflag.ContinueOnError)
	server := fs.String("server", "http://127.0.0.1:9808", "the running agent's HTTP API")
	auth := clientAuthFlags(fs)
	path := fs.String("journal-path", "", "read this journal file directly (only while no agent holds it)")
	output := fs.StringP("output", "o", "", "json or yaml")
	remote := remoteFlags(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var r agent.JournalResponse
	where := *server
	if remote.Node != "" {
		where = "of the agent on node " + remote.Node
	}
	if *path != "" {
		where = *path
		j, err := journal.Open(*path, journal.Options{OpenTimeout: 500 * time.Millisecond})
		if err != nil {
			return fmt.Errorf("%w (while an agent runs, ask it: podlife journal --server URL)", err)
		}
		defer j.Close()
		if r.Stats, err = j.Stats(); err != nil {
			return err
		}
		if r.Pending, err = j.Pending(0); err != nil {
			return err
		}
	} else {
		c, err := clientFor(context.Background(), fs, *server, *auth, *remote)
		if err != nil {
			return err
		}
		if err := c.Journal(context.Background(), &r); err != nil {
			return err
		}
	}
	if *output != "" {
		return cli.Output(stdout, *output, r)
	}
	cli.PrintJournal(stdout, where, &r, *path == "")
	return nil
}

// runSimnode runs only the simulated node (for load harnesses that measure
// the agent as a separate process). It prints the endpoints and waits.
func runSimnode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("simnode", pflag.ContinueOnError)
	pods := fs.Int("pods", 250, "simulated serving pods (4 containers each)")
	churn := fs.Float64("churn", 0, "container restarts per second")
	script := fs.Bool("script", false, "also run the demo timeline")
	replace := fs.Float64("replace", 0, "pods deleted and created again under a new UID per second")
	outageEvery := fs.Duration("outage-every", 0, "take each source down once in every period: the kubelet a third into it, the runtime two thirds")
	outageFor := fs.Duration("outage-for", 10*time.Second, "how long each outage of --outage-every lasts")
	dir := fs.String("dir", "", "directory for the CRI socket (default a temp dir)")
	kubeletAPI := fs.String("kubelet-api", "both", "what the simulated kubelet serves: both, pods-api (its Pods API socket, Kubernetes 1.37) or pods-http (/pods)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *kubeletAPI != "both" && *kubeletAPI != kubelet.ModePodsAPI && *kubeletAPI != kubelet.ModePodsHTTP {
		return fmt.Errorf("%w: --kubelet-api %q: want both, pods-api or pods-http", errUsage, *kubeletAPI)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "podlife-simnode-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	node, err := simnode.Start(ctx, simnode.Options{Dir: *dir, Script: *script, Pods: *pods, ChurnPerSecond: *churn,
		ReplacePerSecond: *replace, OutageEvery: *outageEvery, OutageFor: *outageFor,
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
