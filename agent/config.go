package agent

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"sigs.k8s.io/yaml"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/kubelet"
)

// Config is podlife agent's configuration: flags, then PODLIFE_* environment
// variables, then an optional YAML file (--config), in that precedence. The
// YAML key and the flag name are the same; the variable is PODLIFE_ plus the
// name in upper snake case.
type Config struct {
	NodeName                  string        `mapstructure:"node-name"`
	CRIEndpoint               string        `mapstructure:"cri-endpoint"`
	CRIStream                 bool          `mapstructure:"cri-stream"`
	KubeletURL                string        `mapstructure:"kubelet-url"`
	KubeletTokenFile          string        `mapstructure:"kubelet-token-file"`
	KubeletCAFile             string        `mapstructure:"kubelet-ca-file"`
	KubeletServingCertFile    string        `mapstructure:"kubelet-serving-cert-file"`
	KubeletTLSServerName      string        `mapstructure:"kubelet-tls-server-name"`
	KubeletInsecureSkipVerify bool          `mapstructure:"kubelet-insecure-skip-verify"`
	KubeletKubeconfig         string        `mapstructure:"kubelet-kubeconfig"`
	KubeletPodsAPISocket      string        `mapstructure:"kubelet-pods-api-socket"`
	PollInterval              time.Duration `mapstructure:"poll-interval"`
	SecureListenAddress       string        `mapstructure:"secure-listen-address"`
	InsecureListenAddress     string        `mapstructure:"insecure-listen-address"`
	ListenAddress             string        `mapstructure:"listen-address"` // deprecated: the old name of InsecureListenAddress
	TLSCertFile               string        `mapstructure:"tls-cert-file"`
	TLSPrivateKeyFile         string        `mapstructure:"tls-private-key-file"`
	AuthenticationKubeconfig  string        `mapstructure:"authentication-kubeconfig"`
	AuthorizationKubeconfig   string        `mapstructure:"authorization-kubeconfig"`
	HistorySize               int           `mapstructure:"history-size"`
	MaxRequestsInFlight       int           `mapstructure:"max-requests-inflight"`
	MaxWatches                int           `mapstructure:"max-watches"`
	Upstream                  string        `mapstructure:"upstream"`
	Kubeconfig                string        `mapstructure:"kubeconfig"`
	KubeAPIQPS                float64       `mapstructure:"kube-api-qps"`
	KubeAPIBurst              int           `mapstructure:"kube-api-burst"`
	APIServerProbeInterval    time.Duration `mapstructure:"apiserver-probe-interval"`
	DeliveryJitter            time.Duration `mapstructure:"delivery-jitter"`
	HeartbeatInterval         time.Duration `mapstructure:"heartbeat-interval"`
	HeartbeatNamespace        string        `mapstructure:"heartbeat-namespace"`
	JournalPath               string        `mapstructure:"journal-path"`
	EventBurst                int           `mapstructure:"event-burst"`    // deprecated, no effect
	EventInterval             time.Duration `mapstructure:"event-interval"` // deprecated, no effect
	EventLogLines             int           `mapstructure:"event-log-lines"`
	StuckThreshold            time.Duration `mapstructure:"stuck-threshold"`
	BlackBoxLines             int           `mapstructure:"blackbox-lines"`
	BlackBoxBytes             int           `mapstructure:"blackbox-bytes"`
	BlackBoxAttempts          int           `mapstructure:"blackbox-attempts"`
	BlackBoxMaxBytes          int64         `mapstructure:"blackbox-max-bytes"`
	PodLogsDir                string        `mapstructure:"pod-logs-dir"`
	PodMetrics                string        `mapstructure:"pod-metrics"`
	LogLevel                  string        `mapstructure:"log-level"`
	Pprof                     bool          `mapstructure:"pprof"`
}

// ConfigError is a bad configuration: one line naming the key.
type ConfigError struct{ Key, Problem string }

func (e *ConfigError) Error() string { return fmt.Sprintf("config: %s: %s", e.Key, e.Problem) }

// Flags defines the agent's flags on fs.
func Flags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (keys are the flag names)")
	fs.Bool("check-config", false, "validate the configuration and exit")
	fs.String("node-name", "", "this node's name (default $NODE_NAME, then the hostname)")
	fs.String("cri-endpoint", cri.DefaultEndpoint, "CRI runtime socket (CRI-O: unix:///var/run/crio/crio.sock)")
	fs.Bool("cri-stream", true, "stream container events from the runtime where it supports them")
	fs.String("kubelet-url", "", "kubelet base URL (default https://$NODE_IP:10250; read-only port: http://127.0.0.1:10255)")
	fs.String("kubelet-token-file", "", "bearer token file for the kubelet (default the pod's service-account token)")
	fs.String("kubelet-ca-file", "", "CA that signed the kubelet's serving certificate, tried first (default the in-cluster CA)")
	fs.String("kubelet-serving-cert-file", "", "pin the kubelet's own serving certificate, tried after the CA: a self-signed one (kubeadm, kind: /var/lib/kubelet/pki/kubelet.crt, mounted as a single read-only file); re-read when it changes")
	fs.String("kubelet-tls-server-name", "", "the name the pinned kubelet certificate must cover (default the node name)")
	fs.Bool("kubelet-insecure-skip-verify", false, "do not verify the kubelet's serving certificate: explicit opt-in, for testing; the token is still sent (logged, and shown in podlife_kubelet_tls_verified and the kubelet source's status)")
	fs.String("kubelet-kubeconfig", "", "off-cluster: read /pods through the API server's node proxy with this kubeconfig")
	fs.String("kubelet-pods-api-socket", kubelet.DefaultPodsAPISocket, "the kubelet's Pods API socket (Kubernetes 1.37+, "+
		"<kubelet root dir>/pods-api/pods-api.sock): where it answers, podlife follows the kubelet's own live pod status there "+
		"and polls /pods only where it does not; empty: /pods only")
	fs.Duration("poll-interval", time.Second, "kubelet poll and CRI relist interval")
	fs.String("secure-listen-address", ":9808", "HTTPS address of the API and metrics, for callers the API server vouches for "+
		"(TokenReview, then SubjectAccessReview on nodes/podlife or nodes/metrics); serves in a cluster or with --kubeconfig; empty: off")
	fs.String("insecure-listen-address", "", "plain HTTP address of the API and metrics, without authentication (demo, local debugging: e.g. 127.0.0.1:9809); empty: off")
	fs.String("listen-address", "", "the old name of --insecure-listen-address")
	old := fs.Lookup("listen-address") // as pflag's MarkDeprecated, which cannot fail here
	old.Deprecated, old.Hidden = "use --insecure-listen-address (plain HTTP, no authentication)", true
	fs.String("tls-cert-file", "", "serving certificate of the secure address, re-read when it changes (default: self-signed, generated at start)")
	fs.String("tls-private-key-file", "", "the key of --tls-cert-file")
	fs.String("authentication-kubeconfig", "", "API server that reviews callers' tokens (default: --kubeconfig, then in-cluster)")
	fs.String("authorization-kubeconfig", "", "API server that reviews callers' access (default: --kubeconfig, then in-cluster)")
	fs.Int("history-size", 1000, "transitions kept in memory, per node and per pod")
	fs.Int("max-requests-inflight", DefaultMaxRequestsInFlight, "API reads (pods, one pod, transitions, journal) served at once; "+
		"one more is refused at once with 429 and Retry-After (probes and /metrics are never refused)")
	fs.Int("max-watches", DefaultMaxWatches, "transition watches open at once; one more is refused with 429 and Retry-After")
	fs.String("upstream", "auto", "report to the API server: auto (when in a cluster or --kubeconfig is set), on, off")
	fs.String("kubeconfig", "", "kubeconfig for the API server (default in-cluster configuration)")
	fs.Float64("kube-api-qps", DefaultKubeAPIQPS, "the agent's requests to the API server per second, all of them (watches, Events, node conditions, probes) "+
		"from one token bucket; the callers' reviews of the secure API have their own")
	fs.Int("kube-api-burst", DefaultKubeAPIBurst, "requests to the API server sent at once before kube-api-qps applies")
	fs.Duration("apiserver-probe-interval", upstream.DefaultProbeInterval, "ask the API server's /readyz after this long without a watch event "+
		"(the kubelet renews the node Lease every 10 s, so a healthy node asks nothing), and this often while it is down")
	fs.Duration("heartbeat-interval", DefaultHeartbeatInterval, "renew the node's heartbeat Lease (podlife-<node> in heartbeat-namespace: "+
		"pods failing and unknown, the kubelet's link, the last partition; what `kubectl podlife nodes` lists) this often, and on a change at most once a minute; 0: off")
	fs.String("heartbeat-namespace", "", "namespace of the heartbeat Lease (default $POD_NAMESPACE, the agent's own, then podlife)")
	fs.Duration("delivery-jitter", DefaultDeliveryJitter, "after the API server is reached again, wait a random time up to this long "+
		"(and up to the outage's length) before delivering the journal's backlog, so that the agents of a healed rack do not all arrive at once (0: at once)")
	fs.String("journal-path", "", "durable transition journal file (e.g. /var/lib/podlife/journal.db); empty: none")
	fs.Int("event-burst", 5, "deprecated, no effect: repeated Events fold into one Event's series")
	fs.Duration("event-interval", time.Minute, "deprecated, no effect: repeated Events fold into one Event's series")
	_ = fs.MarkDeprecated("event-burst", "repeated Events of a pod and reason fold into one Event's series; it has no effect")
	_ = fs.MarkDeprecated("event-interval", "repeated Events of a pod and reason fold into one Event's series; it has no effect")
	fs.Int("event-log-lines", 0, fmt.Sprintf("put up to this many of an ended attempt's last lines (its crash black box) in its Event, at most %d; "+
		"0, the default: never (log lines can hold secrets, and whoever may read Events in the namespace would see them)", MaxEventLogLines))
	fs.Duration("stuck-threshold", 5*time.Minute, "report a pod stuck in Initializing/Starting/Failing/Unknown after this long (0: never)")
	fs.Int("blackbox-lines", DefaultBlackBoxLines, "crash black box: the last lines of every container attempt kept at its exit, in the journal (0: off)")
	fs.Int("blackbox-bytes", DefaultBlackBoxBytes, "crash black box: the most bytes of those lines kept per attempt (0: off)")
	fs.Int("blackbox-attempts", DefaultBlackBoxAttempts, "crash black box: attempts kept per pod and container, the oldest evicted first (0: the default)")
	fs.Int64("blackbox-max-bytes", DefaultBlackBoxMaxBytes, "crash black box: stored size of all attempts kept, the oldest captured evicted first")
	fs.String("pod-logs-dir", DefaultPodLogsDir, "where the kubelet writes container logs (mounted read-only for the crash black box)")
	fs.String("pod-metrics", PodMetricsPodlife, "per-pod metrics: podlife (what only podlife knows: stage, Unknown cause, "+
		"view mismatches, crash loops; about one series per pod) or ksm-compatible (also phase, conditions, container states, "+
		"waiting and last termination reasons, exit codes and restarts, as kube-state-metrics exports them: for clusters without it)")
	fs.String("log-level", "info", "debug, info, warn or error")
	fs.Bool("pprof", false, "serve Go profiles on /debug/pprof/ (for profiling only)")
}

// LoadConfig reads the configuration from parsed flags, the environment and
// the optional YAML file, and validates it.
func LoadConfig(fs *pflag.FlagSet) (Config, error) {
	v := viper.New()
	if err := v.BindPFlags(fs); err != nil {
		return Config{}, err
	}
	v.SetEnvPrefix("PODLIFE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	known := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	if path := v.GetString("config"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, &ConfigError{"config", err.Error()}
		}
		var raw map[string]any
		if err := yaml.Unmarshal(b, &raw); err != nil {
			return Config{}, &ConfigError{"config", fmt.Sprintf("%s: %s", path, oneLine(err))}
		}
		var unknown []string
		for k := range raw {
			if !known[k] || k == "config" || k == "check-config" {
				unknown = append(unknown, k)
			}
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			return Config{}, &ConfigError{unknown[0], fmt.Sprintf("unknown key in %s", path)}
		}
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, &ConfigError{"config", oneLine(err)}
		}
	}
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc())
		dc.WeaklyTypedInput = true
	})
	if err != nil {
		return Config{}, decodeError(err, v)
	}
	return c, c.Validate()
}

// decodeError names the key and the value of a mapstructure failure.
func decodeError(err error, v *viper.Viper) error {
	msg := oneLine(err)
	if i := strings.Index(msg, "'"); i >= 0 {
		if j := strings.Index(msg[i+1:], "'"); j > 0 {
			key := msg[i+1 : i+1+j]
			return &ConfigError{key, fmt.Sprintf("%q: %s", v.GetString(key), strings.TrimSpace(msg[i+j+2:]))}
		}
	}
	return &ConfigError{"config", msg}
}

// Validate fills defaults and checks every key.
func (c *Config) Validate() error {
	if c.NodeName == "" {
		c.NodeName = os.Getenv("NODE_NAME")
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return &ConfigError{"node-name", "not set and no hostname: " + err.Error()}
		}
		c.NodeName = h
	}
	rc := cri.Config{Endpoint: c.CRIEndpoint}
	if err := rc.Validate(); err != nil {
		return &ConfigError{"cri-endpoint", err.Error()}
	}
	if c.KubeletURL != "" && !strings.HasPrefix(c.KubeletURL, "http://") && !strings.HasPrefix(c.KubeletURL, "https://") {
		return &ConfigError{"kubelet-url", fmt.Sprintf("%q: want https://HOST:10250 or http://HOST:10255", c.KubeletURL)}
	}
	for key, path := range map[string]string{"kubelet-token-file": c.KubeletTokenFile, "kubelet-ca-file": c.KubeletCAFile,
		"kubelet-serving-cert-file": c.KubeletServingCertFile, "kubeconfig": c.Kubeconfig, "kubelet-kubeconfig": c.KubeletKubeconfig,
		"tls-cert-file": c.TLSCertFile, "tls-private-key-file": c.TLSPrivateKeyFile,
		"authentication-kubeconfig": c.AuthenticationKubeconfig, "authorization-kubeconfig": c.AuthorizationKubeconfig} {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			return &ConfigError{key, oneLine(err)}
		}
	}
	if c.KubeletInsecureSkipVerify && (c.KubeletServingCertFile != "" || c.KubeletCAFile != "") {
		return &ConfigError{"kubelet-insecure-skip-verify", "turns verification off: set it, or kubelet-ca-file/kubelet-serving-cert-file, not both"}
	}
	switch {
	case c.PollInterval < 10*time.Millisecond:
		return &ConfigError{"poll-interval", fmt.Sprintf("%s: must be at least 10ms", c.PollInterval)}
	case c.HistorySize < 1:
		return &ConfigError{"history-size", fmt.Sprintf("%d: must be at least 1", c.HistorySize)}
	case c.MaxRequestsInFlight < 0:
		return &ConfigError{"max-requests-inflight", fmt.Sprintf("%d: must not be negative (0: the default, %d)", c.MaxRequestsInFlight, DefaultMaxRequestsInFlight)}
	case c.MaxWatches < 0:
		return &ConfigError{"max-watches", fmt.Sprintf("%d: must not be negative (0: the default, %d)", c.MaxWatches, DefaultMaxWatches)}
	case c.Upstream != "auto" && c.Upstream != "on" && c.Upstream != "off":
		return &ConfigError{"upstream", fmt.Sprintf("%q: want auto, on or off", c.Upstream)}
	case c.KubeAPIQPS < 0:
		return &ConfigError{"kube-api-qps", fmt.Sprintf("%g: must not be negative (0: the default, %d)", c.KubeAPIQPS, DefaultKubeAPIQPS)}
	case c.KubeAPIBurst < 0:
		return &ConfigError{"kube-api-burst", fmt.Sprintf("%d: must not be negative (0: the default, %d)", c.KubeAPIBurst, DefaultKubeAPIBurst)}
	case c.APIServerProbeInterval != 0 && c.APIServerProbeInterval < 100*time.Millisecond:
		return &ConfigError{"apiserver-probe-interval", fmt.Sprintf("%s: must be at least 100ms (0: the default, %s)", c.APIServerProbeInterval, upstream.DefaultProbeInterval)}
	case c.HeartbeatInterval != 0 && c.HeartbeatInterval < upstream.MinGap:
		return &ConfigError{"heartbeat-interval", fmt.Sprintf("%s: want 0 (off) or at least %s", c.HeartbeatInterval, upstream.MinGap)}
	case c.DeliveryJitter < 0:
		return &ConfigError{"delivery-jitter", fmt.Sprintf("%s: must not be negative (0: deliver at once)", c.DeliveryJitter)}
	case c.EventLogLines < 0 || c.EventLogLines > MaxEventLogLines:
		return &ConfigError{"event-log-lines", fmt.Sprintf("%d: want 0 (never, the default) to %d (an Event's note holds 1 KiB)", c.EventLogLines, MaxEventLogLines)}
	case c.EventLogLines > 0 && (c.BlackBoxLines == 0 || c.BlackBoxBytes == 0):
		return &ConfigError{"event-log-lines", fmt.Sprintf("%d: needs the crash black box, which blackbox-lines or blackbox-bytes 0 turns off", c.EventLogLines)}
	case c.StuckThreshold < 0:
		return &ConfigError{"stuck-threshold", fmt.Sprintf("%s: must not be negative", c.StuckThreshold)}
	case c.BlackBoxLines < 0:
		return &ConfigError{"blackbox-lines", fmt.Sprintf("%d: must not be negative (0: off)", c.BlackBoxLines)}
	case c.BlackBoxBytes < 0:
		return &ConfigError{"blackbox-bytes", fmt.Sprintf("%d: must not be negative (0: off)", c.BlackBoxBytes)}
	case c.BlackBoxAttempts < 0:
		return &ConfigError{"blackbox-attempts", fmt.Sprintf("%d: must not be negative (0: the default, %d)", c.BlackBoxAttempts, DefaultBlackBoxAttempts)}
	case c.BlackBoxMaxBytes < 0:
		return &ConfigError{"blackbox-max-bytes", fmt.Sprintf("%d: must not be negative (0: the default, %d)", c.BlackBoxMaxBytes, DefaultBlackBoxMaxBytes)}
	case c.BlackBoxMaxBytes > 0 && c.BlackBoxMaxBytes < int64(c.BlackBoxBytes):
		return &ConfigError{"blackbox-max-bytes", fmt.Sprintf("%d: must hold at least one attempt (blackbox-bytes, %d)", c.BlackBoxMaxBytes, c.BlackBoxBytes)}
	case c.PodLogsDir != "" && !filepath.IsAbs(c.PodLogsDir):
		return &ConfigError{"pod-logs-dir", fmt.Sprintf("%q: want an absolute path (the kubelet's: /var/log/pods)", c.PodLogsDir)}
	}
	c.KubeAPIQPS = cmp.Or(c.KubeAPIQPS, DefaultKubeAPIQPS)
	c.KubeAPIBurst = cmp.Or(c.KubeAPIBurst, DefaultKubeAPIBurst)
	c.APIServerProbeInterval = cmp.Or(c.APIServerProbeInterval, upstream.DefaultProbeInterval)
	c.HeartbeatNamespace = cmp.Or(c.HeartbeatNamespace, os.Getenv("POD_NAMESPACE"), "podlife")
	c.BlackBoxAttempts = cmp.Or(c.BlackBoxAttempts, DefaultBlackBoxAttempts)
	c.BlackBoxMaxBytes = cmp.Or(c.BlackBoxMaxBytes, DefaultBlackBoxMaxBytes)
	c.PodLogsDir = cmp.Or(c.PodLogsDir, DefaultPodLogsDir)
	if c.PodMetrics = cmp.Or(c.PodMetrics, PodMetricsPodlife); !slices.Contains(PodMetricsModes, c.PodMetrics) {
		return &ConfigError{"pod-metrics", fmt.Sprintf("%q: want %s", c.PodMetrics, strings.Join(PodMetricsModes, " or "))}
	}
	if err := c.validateServing(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &ConfigError{"log-level", fmt.Sprintf("%q: want debug, info, warn or error", c.LogLevel)}
	}
	return nil
}

// validateServing checks the listeners, the serving certificate and the
// API server access the secure listener needs.
func (c *Config) validateServing() error {
	for _, a := range []struct{ key, addr string }{{"secure-listen-address", c.SecureListenAddress},
		{"insecure-listen-address", c.InsecureListenAddress}, {"listen-address", c.ListenAddress}} {
		if _, _, err := net.SplitHostPort(a.addr); a.addr != "" && err != nil {
			return &ConfigError{a.key, fmt.Sprintf("%q: want HOST:PORT or :PORT", a.addr)}
		}
	}
	if c.ListenAddress != "" {
		if c.InsecureListenAddress != "" && c.InsecureListenAddress != c.ListenAddress {
			return &ConfigError{"listen-address", "the old name of insecure-listen-address: set only insecure-listen-address"}
		}
		c.InsecureListenAddress = c.ListenAddress
	}
	if (c.TLSCertFile == "") != (c.TLSPrivateKeyFile == "") {
		if c.TLSCertFile == "" {
			return &ConfigError{"tls-cert-file", "needed with tls-private-key-file"}
		}
		return &ConfigError{"tls-private-key-file", "needed with tls-cert-file"}
	}
	inCluster := os.Getenv("KUBERNETES_SERVICE_HOST") != ""
	authn := c.AuthenticationKubeconfig != "" || c.Kubeconfig != "" || inCluster
	authz := c.AuthorizationKubeconfig != "" || c.Kubeconfig != "" || inCluster
	switch {
	case authn && !authz:
		return &ConfigError{"authorization-kubeconfig", "needed with authentication-kubeconfig outside a cluster without kubeconfig"}
	case authz && !authn:
		return &ConfigError{"authentication-kubeconfig", "needed with authorization-kubeconfig outside a cluster without kubeconfig"}
	}
	switch {
	case c.SecureServing() && c.InsecureListenAddress != "" && overlap(c.SecureListenAddress, c.InsecureListenAddress):
		return &ConfigError{"insecure-listen-address", fmt.Sprintf("%q is also secure-listen-address: give plain HTTP another port", c.InsecureListenAddress)}
	case c.SecureServing() || c.InsecureListenAddress != "":
		return nil
	case c.SecureListenAddress == "":
		return &ConfigError{"secure-listen-address", "empty and no insecure-listen-address: the agent would serve nothing"}
	}
	return &ConfigError{"secure-listen-address", fmt.Sprintf("%q needs an API server to review callers: run in a cluster or set kubeconfig; "+
		"for plain HTTP without authentication set insecure-listen-address instead", c.SecureListenAddress)}
}

// overlap says whether two HOST:PORT addresses would take the same port: the
// same port, not 0, on the same host or where either is every address.
func overlap(a, b string) bool {
	ah, ap, _ := net.SplitHostPort(a)
	bh, bp, _ := net.SplitHostPort(b)
	every := func(h string) bool { ip := net.ParseIP(h); return h == "" || ip != nil && ip.IsUnspecified() }
	return ap == bp && ap != "0" && (ah == bh || every(ah) || every(bh))
}

// SecureServing says whether the secure listener serves: its address is set
// and there is an API server to review callers (in a cluster, or a kubeconfig).
func (c *Config) SecureServing() bool {
	if c.SecureListenAddress == "" {
		return false
	}
	return c.AuthenticationKubeconfig != "" || c.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}

// UpstreamEnabled says whether to connect to the API server.
func (c *Config) UpstreamEnabled() bool {
	switch c.Upstream {
	case "on":
		return true
	case "off":
		return false
	}
	return c.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}

// IsConfigError reports whether err is a configuration error.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
