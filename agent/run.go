package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/util/flowcontrol"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/cri/crilog"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/kubelet"
)

// Run builds the agent from cfg and runs it until ctx is done. listening, if
// set, is called with the base URL of each listener once the HTTP API is up:
// the plain HTTP one (http://ADDR) first, then the secure one (https://ADDR).
func Run(ctx context.Context, cfg Config, log *slog.Logger, listening func(url string)) error {
	setGCPercent(os.Getenv("GOGC"))
	setMaxProcs(os.Getenv("GOMAXPROCS"))
	rt, err := cri.New(cri.Config{Endpoint: cfg.CRIEndpoint, RelistInterval: cfg.PollInterval, Stream: cfg.CRIStream}, log)
	if err != nil {
		return &ConfigError{"cri-endpoint", err.Error()}
	}
	kl, err := kubelet.New(kubelet.Config{URL: cfg.KubeletURL, TokenFile: cfg.KubeletTokenFile, CAFile: cfg.KubeletCAFile,
		ServingCertFile: cfg.KubeletServingCertFile, ServerName: cfg.KubeletTLSServerName,
		InsecureSkipVerify: cfg.KubeletInsecureSkipVerify, Kubeconfig: cfg.KubeletKubeconfig, Node: cfg.NodeName,
		PodsAPISocket: cfg.KubeletPodsAPISocket, PollInterval: cfg.PollInterval}, log)
	if err != nil {
		return kubeletConfigError(err)
	}
	// The kubelet's copy of a pod lags the runtime by a PLEG relist, a status
	// round trip through the API server (at worst the status manager's 10 s
	// periodic sync) and our own poll of /pods: two polls cover the last.
	grace := 10*time.Second + 2*cfg.PollInterval
	opts := Options{Node: cfg.NodeName, Runtime: rt, Kubelet: kl, HistorySize: cfg.HistorySize,
		StuckAfter: cfg.StuckThreshold, Log: log, Pprof: cfg.Pprof, MismatchGrace: grace, PodMetrics: cfg.PodMetrics,
		MaxRequestsInFlight: cfg.MaxRequestsInFlight, MaxWatches: cfg.MaxWatches,
		BlackBox: BlackBoxOptions{Tail: crilog.Limits{Lines: cfg.BlackBoxLines, Bytes: cfg.BlackBoxBytes},
			Keep: journal.BoxLimits{PerContainer: cfg.BlackBoxAttempts, MaxBytes: cfg.BlackBoxMaxBytes}, PodLogsDir: cfg.PodLogsDir}}
	if cfg.JournalPath != "" {
		// A journal that cannot be opened (a read-only or full directory,
		// another agent's lock) does not stop the agent: it holds transitions
		// in memory and tries again; a corrupt one is moved aside.
		opts.OpenJournal = func() (*journal.Journal, *journal.MovedAside, error) {
			if err := os.MkdirAll(filepath.Dir(cfg.JournalPath), 0o700); err != nil {
				return nil, nil, fmt.Errorf("journal-path: %w", err)
			}
			return journal.OpenOrMoveAside(cfg.JournalPath, journal.Options{Node: cfg.NodeName}, time.Now())
		}
	}
	var probe *upstream.Client // the reporter's client
	if cfg.UpstreamEnabled() {
		if opts.Upstream, probe, err = newUpstream(cfg, log); err != nil {
			return err
		}
	}
	a := New(opts)
	defer a.Close()
	if u := opts.Upstream; u != nil && cfg.JournalPath != "" {
		u.Reporter = upstream.NewReporter(probe, a.JournalEntries(), upstream.ReporterConfig{Node: cfg.NodeName,
			LogLines: cfg.EventLogLines, DeliveryJitter: cfg.DeliveryJitter}, log)
		u.Reporter.Running = a.runningContainers
		u.Reporter.APIUp = func() bool { return u.View.Health().Up }
		u.Reporter.APIUID = a.apiUID
		if a.box != nil {
			u.Reporter.LastLines = a.box.lastLines
		}
	}
	eps, err := openEndpoints(cfg, log)
	if err != nil {
		return err
	}
	var urls []string
	for _, e := range eps {
		urls = append(urls, e.URL())
		if listening != nil {
			listening(e.URL())
		}
	}
	log.Info("podlife agent started", "node", cfg.NodeName, "listen", urls, "cri", cfg.CRIEndpoint,
		"kubelet", kl.URL(), "upstream", opts.Upstream != nil, "journal", cfg.JournalPath)
	g, gctx := errgroup.WithContext(ctx)
	for _, e := range eps {
		g.Go(func() error { return serveHTTP(gctx, e.l, e.handler(a.Handler()), e.tls, log) })
	}
	g.Go(func() error { return a.Run(gctx) })
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// DefaultGCPercent is the agent's GOGC where its environment sets none. Its
// heap is small (about 8 MiB live at 250 pods) and, a correlation touching
// only the pods that changed, slow to grow: half of Go's default headroom
// costs a few more short GC cycles a minute and saves about 5 MiB of RSS
// (BENCHMARKS.md, "GOGC").
const DefaultGCPercent = 50

// setGCPercent applies DefaultGCPercent unless gogc (the GOGC environment
// variable, which the Go runtime has read) says otherwise: "off" or a
// number. The runtime takes anything else as 100 (readGOGC), so does not
// this agent.
func setGCPercent(gogc string) {
	if _, err := strconv.Atoi(gogc); err != nil && gogc != "off" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}

// DefaultMaxProcs is the agent's GOMAXPROCS where its environment sets none:
// one. An agent on every node watches, it must not compete with the pods it
// watches for more than a core; and at one P a goroutine woken by an event
// runs on the thread that woke it, with no idle P's thread to wake (futex)
// and no idle P running GC mark work. Paired 40 s runs at 250 pods, 10
// restarts/s: mean 12.9-17.3 against 18.9-36.3 ms of CPU a second, RSS
// about 2 MiB less (BENCHMARKS.md, "GOMAXPROCS"). Go's own default is every
// CPU, or under a cgroup CPU limit that limit rounded up, at least 2.
const DefaultMaxProcs = 1

// setMaxProcs applies DefaultMaxProcs unless gomaxprocs (the GOMAXPROCS
// environment variable, which the Go runtime has read) says otherwise: a
// number of at least 1. The runtime takes anything else as its own default
// (every CPU), so does not this agent.
func setMaxProcs(gomaxprocs string) {
	if n, err := strconv.Atoi(gomaxprocs); err != nil || n < 1 {
		runtime.GOMAXPROCS(DefaultMaxProcs)
	}
}

// The defaults of the agent's traffic to the API server, chosen for a fleet:
// what one agent may send, times every node, is what the control plane sees.
const (
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst bound all of an agent's
	// requests together (client-go's default for one client, where the
	// agent had one bucket per client; the kubelet's is 50/100): a healthy
	// node sends next to nothing, a backlog drains at this rate.
	DefaultKubeAPIQPS   = 5
	DefaultKubeAPIBurst = 10
	// DefaultDeliveryJitter spreads the agents of a healed rack over this
	// long before they deliver their backlogs.
	DefaultDeliveryJitter = 30 * time.Second
	// DefaultHeartbeatInterval renews the heartbeat Lease: 5,000 nodes
	// write 17 times a second.
	DefaultHeartbeatInterval = 5 * time.Minute
)

// newUpstream builds the API server view and the node conditions, and
// returns the client the reporter is to use. Both clients share one token
// bucket: the agent's whole budget of requests.
func newUpstream(cfg Config, log *slog.Logger) (*Upstream, *upstream.Client, error) {
	limiter := flowcontrol.NewTokenBucketRateLimiter(float32(cfg.KubeAPIQPS), cfg.KubeAPIBurst)
	probe, _, err := upstream.NewClient(upstream.ClientConfig{Kubeconfig: cfg.Kubeconfig, RateLimiter: limiter})
	if err != nil {
		return nil, nil, &ConfigError{"kubeconfig", err.Error()}
	}
	watch, _, err := upstream.NewClient(upstream.ClientConfig{Kubeconfig: cfg.Kubeconfig, Timeout: -1, RateLimiter: limiter})
	if err != nil {
		return nil, nil, &ConfigError{"kubeconfig", err.Error()}
	}
	view := upstream.NewAPIView(watch, probe, cfg.NodeName, cfg.APIServerProbeInterval, log)
	u := &Upstream{View: view, Conditions: upstream.NewNodeConditions(probe, cfg.NodeName, log)}
	u.Conditions.Applied = view.NodeConditions
	if cfg.HeartbeatInterval > 0 {
		u.Heartbeat = upstream.NewHeartbeat(probe, cfg.HeartbeatNamespace, cfg.NodeName, cfg.HeartbeatInterval, log)
	}
	if cfg.JournalPath == "" {
		log.Warn("upstream events need a journal (--journal-path); only node conditions will be reported")
	}
	return u, probe, nil
}

// kubeletConfigError names the key of a kubelet source error that starts
// with one (kubelet-ca-file: ...), else kubelet-url.
func kubeletConfigError(err error) error {
	msg := err.Error()
	if key, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(key, "kubelet-") && !strings.ContainsAny(key, " \"") {
		return &ConfigError{key, rest}
	}
	return &ConfigError{"kubelet-url", msg}
}

// apiUID is the UID of the API server's copy of a pod the kubelet knows by
// uid: a static pod's mirror pod ("" when unknown or the same).
func (a *Agent) apiUID(uid string) string {
	s := a.Snapshot()
	if s == nil {
		return ""
	}
	for i := range s.Pods {
		if p := s.Pods[i]; p.UID == uid && p.APIServer != nil {
			return p.APIServer.UID
		}
	}
	return ""
}

// runningContainers counts a pod's running containers in the runtime.
func (a *Agent) runningContainers(uid string) (running, total int) {
	s := a.Snapshot()
	if s == nil {
		return 0, 0
	}
	for _, p := range s.Pods {
		if p.UID != uid {
			continue
		}
		for _, c := range p.Containers {
			total++
			if c.Runtime != nil && c.Runtime.State == "RUNNING" {
				running++
			}
		}
	}
	return running, total
}
