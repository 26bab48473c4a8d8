package agent

import (
	"errors"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func load(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	fs := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(fs)
}

// Bad config files and the exact one-line error each gives.
func TestBadConfigFiles(t *testing.T) {
	tests := map[string]string{
		"bad-endpoint.yaml":                     `config: cri-endpoint: cri-endpoint "tcp://127.0.0.1:1": want unix:///path/to/socket`,
		"short-poll.yaml":                       "config: poll-interval: 1ms: must be at least 10ms",
		"zero-history.yaml":                     "config: history-size: 0: must be at least 1",
		"blackbox-negative-lines.yaml":          "config: blackbox-lines: -1: must not be negative (0: off)",
		"blackbox-max-too-small.yaml":           "config: blackbox-max-bytes: 100: must hold at least one attempt (blackbox-bytes, 8192)",
		"event-log-lines-too-many.yaml":         "config: event-log-lines: 21: want 0 (never, the default) to 20 (an Event's note holds 1 KiB)",
		"event-log-lines-without-blackbox.yaml": "config: event-log-lines: 5: needs the crash black box, which blackbox-lines or blackbox-bytes 0 turns off",
		"relative-pod-logs-dir.yaml":            `config: pod-logs-dir: "var/log/pods": want an absolute path (the kubelet's: /var/log/pods)`,
		"negative-kube-api-qps.yaml":            "config: kube-api-qps: -1: must not be negative (0: the default, 5)",
		"short-apiserver-probe.yaml":            "config: apiserver-probe-interval: 10ms: must be at least 100ms (0: the default, 15s)",
		"short-heartbeat.yaml":                  "config: heartbeat-interval: 10s: want 0 (off) or at least 1m0s",
		"negative-delivery-jitter.yaml":         "config: delivery-jitter: -1s: must not be negative (0: deliver at once)",
		"negative-inflight.yaml":                "config: max-requests-inflight: -1: must not be negative (0: the default, 32)",
		"unknown-key.yaml":                      "config: listen-adress: unknown key in testdata/config/unknown-key.yaml",
		"bad-upstream.yaml":                     `config: upstream: "maybe": want auto, on or off`,
		"bad-pod-metrics.yaml":                  `config: pod-metrics: "kube-state-metrics": want podlife or ksm-compatible`,
		"bad-kubelet-url.yaml":                  `config: kubelet-url: "127.0.0.1:10250": want https://HOST:10250 or http://HOST:10255`,
		"missing-ca.yaml":                       "config: kubelet-ca-file: stat /nonexistent/ca.crt: no such file or directory",
		"not-yaml.yaml":                         "config: config: testdata/config/not-yaml.yaml: error converting YAML to JSON: yaml: did not find expected key",
		"bad-duration.yaml":                     `config: poll-interval: "soon": time: invalid duration`,
		// Serving: the secure listener needs an API server to review callers.
		"bad-secure-address.yaml":  `config: secure-listen-address: "9808": want HOST:PORT or :PORT`,
		"same-addresses.yaml":      `config: insecure-listen-address: "127.0.0.1:9808" is also secure-listen-address: give plain HTTP another port`,
		"cert-without-key.yaml":    "config: tls-private-key-file: needed with tls-cert-file",
		"missing-cert.yaml":        "config: tls-cert-file: stat /nonexistent/tls.crt: no such file or directory",
		"authn-without-authz.yaml": "config: authorization-kubeconfig: needed with authentication-kubeconfig outside a cluster without kubeconfig",
		"no-api-server.yaml": `config: secure-listen-address: ":9808" needs an API server to review callers: run in a cluster or set kubeconfig; ` +
			"for plain HTTP without authentication set insecure-listen-address instead",
		"nothing-served.yaml":      "config: secure-listen-address: empty and no insecure-listen-address: the agent would serve nothing",
		"both-insecure-names.yaml": "config: listen-address: the old name of insecure-listen-address: set only insecure-listen-address",
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // outside a cluster
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			_, err := load(t, "--config", filepath.Join("testdata", "config", file))
			if err == nil || err.Error() != want || !IsConfigError(err) {
				t.Fatalf("got  %v\nwant %s", err, want)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	good := filepath.Join("testdata", "config", "good.yaml")
	c, err := load(t, "--config", good)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "n1" || c.CRIEndpoint != "unix:///run/crio/crio.sock" || c.PollInterval != 2*time.Second || c.HistorySize != 50 {
		t.Fatalf("file values: %+v", c)
	}
	t.Setenv("PODLIFE_POLL_INTERVAL", "3s")
	t.Setenv("PODLIFE_NODE_NAME", "from-env")
	c, _ = load(t, "--config", good)
	if c.PollInterval != 3*time.Second || c.NodeName != "from-env" {
		t.Fatalf("env should beat the file: %+v", c)
	}
	c, _ = load(t, "--config", good, "--poll-interval", "4s")
	if c.PollInterval != 4*time.Second || c.NodeName != "from-env" {
		t.Fatalf("flags should beat env: %+v", c)
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("NODE_NAME", "node-from-downward-api")
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1") // in a cluster
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "node-from-downward-api" || c.SecureListenAddress != ":9808" || !c.SecureServing() ||
		c.InsecureListenAddress != "" || c.PollInterval != time.Second ||
		c.HistorySize != 1000 || c.CRIEndpoint != "unix:///run/containerd/containerd.sock" || !c.CRIStream ||
		c.PodMetrics != PodMetricsPodlife {
		t.Fatalf("defaults %+v", c)
	}
}

// Which listeners serve: the secure one needs an API server to review
// callers (in a cluster or a kubeconfig); plain HTTP only when asked for,
// under its new name or the old one.
func TestConfigListeners(t *testing.T) {
	t.Setenv("NODE_NAME", "n")
	kubeconfig := filepath.Join("testdata", "config", "good.yaml") // any existing file
	tests := []struct {
		name             string
		inCluster        bool
		args             []string
		secure, insecure string // "" when that listener does not serve
	}{
		{"in a cluster", true, nil, ":9808", ""},
		{"kubeconfig", false, []string{"--kubeconfig", kubeconfig}, ":9808", ""},
		{"review kubeconfigs", false, []string{"--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig}, ":9808", ""},
		{"both", true, []string{"--insecure-listen-address", "127.0.0.1:9809"}, ":9808", "127.0.0.1:9809"},
		{"off-cluster plain HTTP", false, []string{"--insecure-listen-address", "127.0.0.1:0"}, "", "127.0.0.1:0"},
		{"old name", false, []string{"--listen-address", "127.0.0.1:0"}, "", "127.0.0.1:0"},
		{"secure off", true, []string{"--secure-listen-address=", "--listen-address", "127.0.0.1:0"}, "", "127.0.0.1:0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", map[bool]string{true: "10.96.0.1"}[tc.inCluster])
			c, err := load(t, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			secure := ""
			if c.SecureServing() {
				secure = c.SecureListenAddress
			}
			if secure != tc.secure || c.InsecureListenAddress != tc.insecure {
				t.Fatalf("secure %q insecure %q, want %q and %q", secure, c.InsecureListenAddress, tc.secure, tc.insecure)
			}
		})
	}
}

// The kubelet TLS flags: a pin file must exist, and verification cannot be
// both off and configured.
func TestKubeletTLSFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "n")
	t.Setenv("PODLIFE_INSECURE_LISTEN_ADDRESS", "127.0.0.1:0") // something to serve, outside a cluster
	pin := filepath.Join("testdata", "config", "good.yaml")    // any existing file
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--kubelet-serving-cert-file", "/nonexistent/kubelet.crt"}, "config: kubelet-serving-cert-file: stat /nonexistent/kubelet.crt: no such file or directory"},
		{[]string{"--kubelet-insecure-skip-verify", "--kubelet-serving-cert-file", pin},
			"config: kubelet-insecure-skip-verify: turns verification off: set it, or kubelet-ca-file/kubelet-serving-cert-file, not both"},
		{[]string{"--kubelet-serving-cert-file", pin, "--kubelet-tls-server-name", "node-a"}, ""},
	}
	for _, tc := range tests {
		c, err := load(t, tc.args...)
		if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
		if err == nil && (c.KubeletServingCertFile != pin || c.KubeletTLSServerName != "node-a") {
			t.Errorf("%v: %+v", tc.args, c)
		}
	}
	for _, tc := range []struct{ err, key, problem string }{
		{"kubelet-serving-cert-file: open /x: no such file", "kubelet-serving-cert-file", "open /x: no such file"},
		{`kubelet-url "ftp://x": want https`, "kubelet-url", `kubelet-url "ftp://x": want https`},
		{"poll-interval 1ms: must be at least 10ms", "kubelet-url", "poll-interval 1ms: must be at least 10ms"},
	} {
		var ce *ConfigError
		if !errors.As(kubeletConfigError(errors.New(tc.err)), &ce) || ce.Key != tc.key || ce.Problem != tc.problem {
			t.Errorf("kubeletConfigError(%q) = %+v, want %s: %s", tc.err, ce, tc.key, tc.problem)
		}
	}
}

// The agent runs with DefaultMaxProcs unless GOMAXPROCS says otherwise.
func TestMaxProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	setMaxProcs("")
	if got := runtime.GOMAXPROCS(0); got != DefaultMaxProcs {
		t.Fatalf("GOMAXPROCS unset: %d, want %d", got, DefaultMaxProcs)
	}
	runtime.GOMAXPROCS(2)
	setMaxProcs("2") // the runtime read it already: left as it is
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS set: %d, want it left at 2", got)
	}
	for _, bad := range []string{"0", "-1", "two"} { // the runtime ignored them
		runtime.GOMAXPROCS(2)
		setMaxProcs(bad)
		if got := runtime.GOMAXPROCS(0); got != DefaultMaxProcs {
			t.Errorf("GOMAXPROCS=%s: %d, want %d", bad, got, DefaultMaxProcs)
		}
	}
}

// The agent runs with DefaultGCPercent unless GOGC says otherwise.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	setGCPercent("")
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("GOGC unset: GC percent %d, want %d", got, DefaultGCPercent)
	}
	for _, set := range []string{"200", "off"} { // the runtime read it already: left as it is
		setGCPercent(set)
		if got := debug.SetGCPercent(100); got != 100 {
			t.Fatalf("GOGC=%s: GC percent %d, want it left at 100", set, got)
		}
	}
	setGCPercent("lots") // the runtime ignored it
	if got := debug.SetGCPercent(100); got != DefaultGCPercent {
		t.Fatalf("GOGC=lots: GC percent %d, want %d", got, DefaultGCPercent)
	}
}
