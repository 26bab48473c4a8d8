package agent

import (
	"errors"
	"path/filepath"
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
		"bad-endpoint.yaml":    `config: cri-endpoint: cri-endpoint "tcp://127.0.0.1:1": want unix:///path/to/socket`,
		"short-poll.yaml":      "config: poll-interval: 1ms: must be at least 10ms",
		"zero-history.yaml":    "config: history-size: 0: must be at least 1",
		"unknown-key.yaml":     "config: listen-adress: unknown key in testdata/config/unknown-key.yaml",
		"bad-upstream.yaml":    `config: upstream: "maybe": want auto, on or off`,
		"bad-kubelet-url.yaml": `config: kubelet-url: "127.0.0.1:10250": want https://HOST:10250 or http://HOST:10255`,
		"missing-ca.yaml":      "config: kubelet-ca-file: stat /nonexistent/ca.crt: no such file or directory",
		"not-yaml.yaml":        "config: config: testdata/config/not-yaml.yaml: error converting YAML to JSON: yaml: did not find expected key",
		"bad-duration.yaml":    `config: poll-interval: "soon": time: invalid duration`,
	}
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
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "node-from-downward-api" || c.ListenAddress != ":9808" || c.PollInterval != time.Second ||
		c.HistorySize != 1000 || c.CRIEndpoint != "unix:///run/containerd/containerd.sock" || !c.CRIStream {
		t.Fatalf("defaults %+v", c)
	}
}

// The kubelet TLS flags: a pin file must exist, and verification cannot be
// both off and configured.
func TestKubeletTLSFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "n")
	pin := filepath.Join("testdata", "config", "good.yaml") // any existing file
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
