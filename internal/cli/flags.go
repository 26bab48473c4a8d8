package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/podlife/podlife/api"
)

// readFlags are the flags of pods, describe and watch: which agent to ask
// (or, with --direct, which sources to read), and how to print the answer.
type readFlags struct {
	fs        *pflag.FlagSet
	server    string
	auth      Auth
	remote    Remote
	output    string
	namespace string
	direct    bool
	sources   directFlags
}

// newReadFlags defines the flags of command cmd (pods, describe or watch).
func newReadFlags(cmd string) *readFlags {
	f := &readFlags{fs: pflag.NewFlagSet(cmd, pflag.ContinueOnError)}
	fs := f.fs
	fs.StringVar(&f.server, "server", "http://127.0.0.1:9808", "the podlife agent's HTTP API")
	authFlags(fs, &f.auth)
	fs.StringVarP(&f.output, "output", "o", "", "json or yaml (default: a table)")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "only this namespace's pods (pods, watch); describe POD -n NS is describe NS/POD")
	fs.BoolVar(&f.direct, "direct", false, "read the CRI socket and the kubelet directly (no agent needed)")
	f.sources.define(fs)
	remoteFlags(fs, &f.remote)
	return f
}

// parse reads args and checks the flags that go together: --help is
// pflag.ErrHelp, any other mistake an ErrUsage.
func (f *readFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if f.output != "" && f.output != "json" && f.output != "yaml" {
		return fmt.Errorf("%w: -o %q: want json or yaml", ErrUsage, f.output)
	}
	if f.direct && f.remote.Node != "" {
		return fmt.Errorf("%w: --direct reads this node, --node another through the API server: give one", ErrUsage)
	}
	if f.direct && f.fs.Name() == "watch" {
		return fmt.Errorf("%w: watch follows an agent's transitions; --direct reads the sources once (pods, describe)", ErrUsage)
	}
	return nil
}

// readNode parses the arguments of command cmd (pods, describe or watch) and
// opens what they name.
func readNode(ctx context.Context, cmd string, args []string) (*readFlags, *node, error) {
	f := newReadFlags(cmd)
	if err := f.parse(args); err != nil {
		return nil, nil, err
	}
	n, err := f.open(ctx)
	return f, n, err
}

// node is what pods, describe and watch read: an agent, or (--direct) one
// snapshot of the sources.
type node struct {
	client *Client
	direct *api.PodsResponse // with --direct
	now    time.Time         // when the command began to read: ages count from it
}

// open reaches the agent the flags name, or reads the sources with --direct.
func (f *readFlags) open(ctx context.Context) (*node, error) {
	n := &node{}
	if !f.direct {
		c, err := clientFor(ctx, f.fs, f.server, f.auth, f.remote)
		if err != nil {
			return nil, err
		}
		n.client = c
	}
	n.now = time.Now()
	if f.direct {
		snap, err := f.sources.snapshot(ctx)
		if err != nil {
			return nil, err
		}
		n.direct = &api.PodsResponse{Node: snap.Node, GeneratedAt: snap.At, Sources: snap.Sources, Pods: snap.Pods}
	}
	return n, nil
}

// remoteFlags defines on fs the flags that reach a node's agent through the
// API server, into r.
func remoteFlags(fs *pflag.FlagSet, r *Remote) {
	*r = RemoteDefaults
	fs.StringVar(&r.Node, "node", "", "reach this node's agent through the API server's pod proxy (with --kubeconfig)")
	fs.StringVar(&r.Kubeconfig, "kubeconfig", "", "with --node: kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&r.Context, "context", "", "with --node: kubeconfig context (default the current one)")
	fs.StringVar(&r.Namespace, "agent-namespace", r.Namespace, "with --node: the agent pods' namespace")
	fs.StringVar(&r.Selector, "agent-selector", r.Selector, "with --node: the agent pods' label selector")
	fs.StringVar(&r.Port, "agent-port-name", r.Port, "with --node: the agent container's API port name")
	fs.StringVar(&r.Viewer, "viewer-serviceaccount", r.Viewer, "with --node and no --token: the ServiceAccount (in --agent-namespace) whose short-lived token the agent gets")
}

// authFlags defines on fs the flags that reach a secured agent, into a.
func authFlags(fs *pflag.FlagSet, a *Auth) {
	fs.StringVar(&a.Token, "token", "", "bearer token for a secured agent (https://): one the API server accepts, bound to ClusterRole podlife-reader")
	fs.StringVar(&a.TokenFile, "token-file", "", "file holding the bearer token")
	fs.StringVar(&a.CertificateAuthority, "certificate-authority", "", "CA file that signed the agent's serving certificate (--tls-cert-file)")
	fs.BoolVar(&a.InsecureSkipTLSVerify, "insecure-skip-tls-verify", false, "do not verify the agent's certificate (its default one is self-signed)")
}

// clientFor is the agent client the flags ask for: through the API server
// with --node, else at server.
func clientFor(ctx context.Context, fs *pflag.FlagSet, server string, auth Auth, remote Remote) (*Client, error) {
	if remote.Node == "" {
		for _, f := range []string{"kubeconfig", "context"} {
			if fs.Changed(f) {
				return nil, fmt.Errorf("%w: --%s goes with --node NODE", ErrUsage, f)
			}
		}
		c, err := NewClientWith(server, auth)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		return c, nil
	}
	if fs.Changed("server") {
		return nil, fmt.Errorf("%w: --server and --node: give one", ErrUsage)
	}
	if auth.CertificateAuthority != "" || auth.InsecureSkipTLSVerify {
		return nil, fmt.Errorf("%w: with --node the API server reaches the agent; --certificate-authority and --insecure-skip-tls-verify do not apply", ErrUsage)
	}
	return NewRemoteClient(ctx, remote, auth)
}
