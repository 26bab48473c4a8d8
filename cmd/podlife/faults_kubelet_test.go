package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// faultyKubelet stands between the agent and a real kubelet's read-only
// port: it passes /pods through, or answers it with the fault it is set to
// (a real kubelet cannot be made to send a bad body); the kubelet's other
// endpoints always pass through.
type faultyKubelet struct {
	real  *url.URL
	proxy *httputil.ReverseProxy
	mode  atomic.Value // string: "" passes through
}

// newFaultyKubelet serves a faultyKubelet for the kubelet at realURL until
// the test ends, and returns it and its URL.
func newFaultyKubelet(t *testing.T, realURL string) (*faultyKubelet, string) {
	u, err := url.Parse(realURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyKubelet{real: u, proxy: httputil.NewSingleHostReverseProxy(u)}
	f.mode.Store("")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// The largest /pods answer the agent accepts (kubelet.Config.MaxBodyBytes).
const kubeletBodyLimit = 64 << 20

func (f *faultyKubelet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mode := f.mode.Load().(string)
	if r.URL.Path != "/pods" || mode == "" {
		f.proxy.ServeHTTP(w, r)
		return
	}
	head := `{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[`
	rc := http.NewResponseController(w)
	switch mode {
	case "404": // the real kubelet's own 404
		r.URL.Path = "/pods-not-here"
		f.proxy.ServeHTTP(w, r)
	case "garbage":
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body><h1>502 Bad Gateway</h1></body></html>\n")
	case "truncated": // the real answer, cut off halfway through
		resp, err := http.Get(f.real.String() + "/pods")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/2])
		// Returning short of Content-Length closes the connection.
	case "huge":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, head)
		chunk := []byte(strings.Repeat(" ", 1<<20))
		for n := len(head); n <= kubeletBodyLimit+len(chunk); n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	case "trickle": // headers at once, then a byte now and then
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, head)
		rc.Flush()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// TestKubeletFaults: the kubelet rows of the fault table that a real
// kubelet can show on its own (a serving certificate it renews, a token file
// that disappears) and the bad answers it cannot (a 404 from its own mux
// behind a proxy that rewrites the path; garbage, a truncated body, one past
// the limit, one that trickles), under the real agent.
func TestKubeletFaults(t *testing.T) {
	bin, ctd, k := startFaultNode(t, "podlife-faults")
	faulty, faultyURL := newFaultyKubelet(t, k.ReadOnlyURL)
	ag := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", faultyURL, "--upstream", "off")
	ag.waitFaultPods(k.Name)

	for _, tc := range []struct {
		mode string
		want []string
	}{
		{"404", []string{"/pods: HTTP 404 (kubelet: 404 page not found): nothing serves /pods there"}},
		{"garbage", []string{"/pods: decode /pods: invalid character '<'"}},
		{"truncated", []string{"/pods: reading body after", "bytes (truncated answer): unexpected EOF"}},
		{"huge", []string{"/pods: answer larger than the 67108864-byte limit"}},
		{"trickle", []string{"/pods: timed out after", "bytes of the answer: it came slower than the 5s timeout"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ag.t = t
			before := ag.mark()
			faulty.mode.Store(tc.mode)
			ag.waitDown(lifecycle.SourceKubelet, 60*time.Second, tc.want...)
			faulty.mode.Store("")
			ag.waitUp(lifecycle.SourceKubelet, 30*time.Second)
			ag.checkJournal(before, lifecycle.SourceKubelet)
		})
	}

	// Over HTTPS, with the kubelet's serving certificate pinned from a file
	// and a token file (the standalone kubelet accepts any caller).
	dir := t.TempDir()
	pin, token := filepath.Join(dir, "kubelet.crt"), filepath.Join(dir, "token")
	copyFile(t, k.ServingCertFile, pin)
	writeFile(t, token, "podlife-token")
	tlsAgent := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--upstream", "off",
		"--kubelet-url", k.HTTPSURL, "--kubelet-serving-cert-file", pin, "--kubelet-token-file", token)
	tlsAgent.waitUp(lifecycle.SourceKubelet, 30*time.Second)

	t.Run("token file disappears", func(t *testing.T) {
		tlsAgent.t = t
		before := tlsAgent.mark()
		if err := os.Rename(token, token+".away"); err != nil {
			t.Fatal(err)
		}
		tlsAgent.waitDown(lifecycle.SourceKubelet, 30*time.Second, "kubelet-token-file: stat "+token+": no such file or directory")
		if err := os.Rename(token+".away", token); err != nil {
			t.Fatal(err)
		}
		tlsAgent.waitUp(lifecycle.SourceKubelet, 30*time.Second)
		tlsAgent.checkJournal(before, lifecycle.SourceKubelet)
	})
	// The kubelet renews its self-signed certificate on a restart; the pinned
	// copy still holds the old one (a single-file mount of a certificate
	// replaced by a rename keeps the old file) until it is rewritten in place.
	t.Run("serving certificate renewed", func(t *testing.T) {
		tlsAgent.t = t
		before := tlsAgent.mark()
		verified := `podlife_kubelet_tls_verified{mode="pinned-cert"} `
		if !hasLine(tlsAgent.metrics(), verified+"1") {
			t.Fatalf("not verified with the pin before the renewal:\n%s", tlsAgent.metrics())
		}
		k.RestartWithNewCert(t)
		tlsAgent.waitDown(lifecycle.SourceKubelet, 90*time.Second, "TLS verification failed: the kubelet's certificate (subject "+k.Name,
			"is not the certificate pinned in kubelet-serving-cert-file "+pin+" (re-read at every connection)")
		if !hasLine(tlsAgent.metrics(), verified+"0") {
			t.Errorf("podlife_kubelet_tls_verified not 0 while the pin does not match")
		}
		copyFile(t, k.ServingCertFile, pin) // rewritten in place: same inode
		tlsAgent.waitUp(lifecycle.SourceKubelet, 30*time.Second)
		if !hasLine(tlsAgent.metrics(), verified+"1") {
			t.Errorf("podlife_kubelet_tls_verified not 1 once the pin holds the new certificate")
		}
		tlsAgent.checkJournal(before, lifecycle.SourceKubelet)
	})
}

// copyFile writes src's content over dst in place (dst keeps its inode).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(b))
}
