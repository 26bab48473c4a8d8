package kubelet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podlife/podlife/internal/fixtures"
	"github.com/podlife/podlife/lifecycle"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// generated is the /pods answer hack/genfixtures wrote from internal/fixtures.
func generated(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "lifecycle", "testdata", "kubelet-pods.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeGeneratedPods(t *testing.T) {
	pods, err := Decode(generated(t))
	if err != nil {
		t.Fatal(err)
	}
	want := fixtures.Build().Pods
	if len(pods) != len(want.Items) {
		t.Fatalf("%d pods, want %d", len(pods), len(want.Items))
	}
	web := pods[0]
	if web.Name != "web-7d9f8-abcde" || web.Namespace != "shop" || web.Phase != lifecycle.PhaseRunning ||
		web.Created.IsZero() || web.Started.IsZero() || len(web.Conditions) != 4 || web.RestartPolicy != "Always" {
		t.Fatalf("pod %+v", web)
	}
	kinds := ""
	for _, c := range web.Containers {
		kinds += string(c.Kind) + " "
	}
	if kinds != "init sidecar regular regular " {
		t.Fatalf("kinds %q", kinds)
	}
	w := web.Containers[2]
	if w.State.Kind != lifecycle.StateRunning || w.LastState.Kind != lifecycle.StateTerminated || w.LastState.ExitCode != 137 ||
		w.LastState.Reason != "OOMKilled" || w.RestartCount != 2 || !w.Ready || !strings.HasPrefix(w.ContainerID, "containerd://") {
		t.Fatalf("container %+v", w)
	}
	for _, p := range pods {
		if p.Name == "old-web-1" && p.Deleting.IsZero() {
			t.Fatal("deletionTimestamp lost")
		}
		if p.Name == "evicted-0" && (p.Reason != "Evicted" || p.Message == "") {
			t.Fatalf("evicted %+v", p)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for body, want := range map[string]string{
		`not json`:                          "decode /pods: invalid character",
		`{"kind":"PodList","items":[{"meta`: "decode /pods: unexpected end of JSON input",
		`{"kind":"Status","message":"x"}`:   `got kind "Status", want PodList`,
		`[]`:                                "cannot unmarshal array",
	} {
		if _, err := Decode([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "http://127.0.0.1:10255"}, ""},
		{Config{URL: "ftp://x"}, `kubelet-url "ftp://x": want https://HOST:10250 or http://HOST:10255`},
		{Config{URL: "127.0.0.1:10250"}, `want https://HOST:10250`},
		{Config{Kubeconfig: "/x"}, "node-name is required"},
		{Config{URL: "http://x:1", PollInterval: time.Millisecond}, "poll-interval 1ms: must be at least 10ms"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	c := Config{}
	c.Validate()
	if c.URL != "https://127.0.0.1:10250" || c.TokenFile != DefaultTokenFile || c.CAFile != DefaultCAFile {
		t.Fatalf("defaults %+v", c)
	}
}

func pollOnce(t *testing.T, cfg Config) State {
	t.Helper()
	s, err := New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	s.Poll(context.Background())
	return s.State()
}

// Every failure mode gives one line that says what is wrong.
func TestFetchErrors(t *testing.T) {
	statusBody := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods is forbidden","reason":"Forbidden","code":403}`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		limit   int64
		want    string
	}{
		{"401", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(401) }, 0, "401 Unauthorized: the token was rejected"},
		{"403", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(403); io.WriteString(w, statusBody) }, 0,
			"403 Forbidden (kubelet: Forbidden pods is forbidden): the service account lacks RBAC `get` on `nodes/pods`"},
		{"500 with Status", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500); io.WriteString(w, statusBody) }, 0,
			"HTTP 500: Forbidden pods is forbidden"},
		{"502 text", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(502); io.WriteString(w, "bad\ngateway") }, 0, "HTTP 502: bad gateway"},
		{"200 Status", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, statusBody) }, 0, "answered a Status instead of pods: Forbidden pods is forbidden"},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "<html>hello</html>") }, 0, "decode /pods: invalid character '<'"},
		{"truncated", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "100000")
			io.WriteString(w, `{"kind":"PodList","items":[`)
		}, 0, "reading body after"},
		{"huge", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, strings.Repeat(" ", 5000)) }, 1000, "answer larger than the 1000-byte limit"},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			select { // until the client gives up
			case <-time.After(time.Minute):
			case <-r.Context().Done():
			}
		}, 0, "timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			// Only "slow" waits for the timeout; the others must not hit it,
			// even on a loaded machine under -race.
			timeout := 10 * time.Second
			if tc.name == "slow" {
				timeout = time.Second
			}
			st := pollOnce(t, Config{URL: srv.URL, Timeout: timeout, MaxBodyBytes: tc.limit})
			e := st.Health.LastError
			if st.Health.Up || !strings.Contains(e, tc.want) || strings.Contains(e, "\n") || !st.Health.Configured {
				t.Fatalf("error %q, want one line containing %q", e, tc.want)
			}
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		st := pollOnce(t, Config{URL: url})
		if !strings.Contains(st.Health.LastError, "connection refused (is the kubelet running") {
			t.Fatalf("error %q", st.Health.LastError)
		}
	})
	t.Run("TLS verification failure", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.NotFoundHandler())
		defer srv.Close()
		ca := filepath.Join(t.TempDir(), "other-ca.crt")
		os.WriteFile(ca, pemOf(selfSigned(t)), 0o644)
		tok := filepath.Join(t.TempDir(), "token")
		os.WriteFile(tok, []byte("t"), 0o600)
		st := pollOnce(t, Config{URL: srv.URL, CAFile: ca, TokenFile: tok})
		if !strings.Contains(st.Health.LastError, "TLS verification failed") || !strings.Contains(st.Health.LastError, "--kubelet-serving-cert-file") {
			t.Fatalf("error %q", st.Health.LastError)
		}
	})
}

// HTTPS with a rotating token: the new token is sent as soon as the file changes.
func TestHTTPSTokenRotationAndIdenticalPayloads(t *testing.T) {
	body := generated(t)
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Get("Authorization"))
		if r.URL.Path != "/pods" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca, tok := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	os.WriteFile(ca, pemOf(srv.Certificate().Raw), 0o644)
	os.WriteFile(tok, []byte("first\n"), 0o600)
	s, err := New(Config{URL: srv.URL, CAFile: ca, TokenFile: tok}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s.Poll(ctx)
	st := s.State()
	if !st.Health.Up || len(st.Pods) != 10 || st.Generation != 1 {
		t.Fatalf("first poll %+v gen %d pods %d", st.Health, st.Generation, len(st.Pods))
	}
	s.Poll(ctx) // identical payload: nothing changes
	if g := s.State().Generation; g != 1 {
		t.Fatalf("identical payload bumped generation to %d", g)
	}
	os.WriteFile(tok, []byte("second"), 0o600)
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(tok, later, later)
	s.Poll(ctx)
	if got := strings.Join(seen, ","); got != "Bearer first,Bearer first,Bearer second" {
		t.Fatalf("tokens sent: %s", got)
	}
}

// BenchmarkDecodeFast and BenchmarkDecodeFullPodList decode the same
// 250-pod × 4-container /pods payload.
func BenchmarkDecodeFast(b *testing.B) {
	body := payload250(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFullPodList(b *testing.B) {
	body := payload250(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var l corev1.PodList
		if err := json.Unmarshal(body, &l); err != nil {
			b.Fatal(err)
		}
	}
}

// payload250 is a realistic /pods answer: 250 copies of the generated serving
// pod (init, sidecar, two containers) with the env, mounts, volumes, probes
// and managed fields real pods carry.
func payload250(b testing.TB) []byte {
	base := fixtures.Build().Pods.Items[0]
	l := corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	for i := 0; i < 250; i++ {
		p := *base.DeepCopy()
		p.Name = fmt.Sprintf("web-%04d", i)
		p.UID = types.UID(fmt.Sprint("uid-", i))
		p.Labels["pod-template-hash"] = "7d9f8"
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8", UID: "rs-uid"}}
		p.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{}}}`)}}
		p.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}},
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web"}}}}}
		for j := range p.Spec.Containers {
			c := &p.Spec.Containers[j]
			for k := 0; k < 6; k++ {
				c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", k), Value: "some-value"})
			}
			c.VolumeMounts = []corev1.VolumeMount{{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
				{Name: "config", MountPath: "/etc/web"}}
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz"}}, PeriodSeconds: 5}
		}
		l.Items = append(l.Items, p)
	}
	body, err := json.Marshal(l)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// selfSigned is a CA certificate unrelated to httptest's.
func selfSigned(t *testing.T) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Off-cluster mode: /pods through the API server's node proxy, with the
// kubeconfig's server, CA and token.
func TestKubeconfigMode(t *testing.T) {
	body := generated(t)
	var path, auth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, auth = r.URL.Path, r.Header.Get("Authorization")
		w.Write(body)
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(ca, pemOf(srv.Certificate().Raw), 0o644)
	kc := filepath.Join(dir, "kubeconfig")
	os.WriteFile(kc, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: u, user: {token: debug-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, srv.URL, ca)), 0o600)
	st := pollOnce(t, Config{Kubeconfig: kc, Node: "node-a"})
	if !st.Health.Up || len(st.Pods) != 10 || path != "/api/v1/nodes/node-a/proxy/pods" || auth != "Bearer debug-token" {
		t.Fatalf("health %+v pods %d path %q auth %q", st.Health, len(st.Pods), path, auth)
	}
	if err := (&Config{Kubeconfig: kc, Node: "n", URL: "http://x:1"}).Validate(); err == nil {
		t.Fatal("both kubeconfig and URL accepted")
	}
}
