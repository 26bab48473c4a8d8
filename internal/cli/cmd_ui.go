package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"time"
)

// RunUI is podlife ui: the agent's web page in your browser. It serves on a
// loopback address of this machine and forwards every request to the agent
// the flags name, with their credentials: the local agent (--server), or a
// node's agent through the API server's pod proxy (--node, as kubectl
// podlife does), the token renewed as it expires. It prints the page's URL
// and runs until interrupted.
func RunUI(ctx context.Context, args []string, stdout io.Writer) error {
	f := newReadFlags("ui")
	listen := f.fs.String("listen-address", "127.0.0.1:0", "where to serve the page on this machine (a loopback address: it carries your credentials)")
	if err := f.parse(args); err != nil {
		return err
	}
	if f.direct {
		return fmt.Errorf("%w: ui shows an agent's page; --direct does not apply", ErrUsage)
	}
	if host, _, err := net.SplitHostPort(*listen); err != nil || !loopback(host) {
		return fmt.Errorf("%w: --listen-address %q: want a loopback HOST:PORT (127.0.0.1:0): the page carries your credentials", ErrUsage, *listen)
	}
	n, err := f.open(ctx)
	if err != nil {
		return err
	}
	target, err := url.Parse(n.client.Server)
	if err != nil {
		return fmt.Errorf("agent address %q: %w", n.client.Server, err)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen-address: %w", err)
	}
	srv := &http.Server{Handler: uiForwarder(target, n.client.Stream.Transport), ReadHeaderTimeout: 10 * time.Second}
	where := "the agent at " + n.client.Server
	if f.remote.Node != "" {
		where = "the agent on node " + f.remote.Node + ", through the API server"
	}
	fmt.Fprintf(stdout, "podlife ui: http://%s/ui/ shows %s (Ctrl-C stops)\n", l.Addr(), where)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving the page: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		return nil
	}
}

// uiForwarder forwards the page's requests (reads only) to the agent at
// target over rt. It answers only requests for a loopback host name, so that
// no other web site can reach it through the browser (DNS rebinding).
func uiForwarder(target *url.URL, rt http.RoundTripper) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Only what the page needs goes on: never the browser's
			// Authorization, Impersonate-* or cookies, which the API
			// server would take as the request's own.
			pr.Out.Header = http.Header{}
			for _, h := range forwardedHeaders {
				if v := pr.In.Header.Values(h); len(v) > 0 {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport:     rt,
		FlushInterval: -1, // the transitions watch streams
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "podlife ui: the agent: "+strings.Join(strings.Fields(err.Error()), " "), http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		p := r.URL.EscapedPath()
		switch {
		case !loopback(host):
			http.Error(w, "podlife ui: only for http://127.0.0.1 or http://localhost", http.StatusForbidden)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			http.Error(w, "podlife ui: the agent's API is read-only", http.StatusMethodNotAllowed)
		case p == "/" || p == "/ui":
			http.Redirect(w, r, "/ui/", http.StatusFound) // here, not through the API server's proxy
		case !forwardable(p):
			http.Error(w, "podlife ui: only the page (/ui/) and the agent's API (/api/v1/)", http.StatusNotFound)
		default:
			proxy.ServeHTTP(w, r)
		}
	})
}

// forwardedHeaders are the request headers the page's reads need.
var forwardedHeaders = []string{"Accept", "Accept-Encoding", "Accept-Language", "If-Modified-Since", "If-None-Match", "Range", "User-Agent"}

// forwardable: the page and the agent's API, by a clean path only (no dot
// segments or doubled slashes to make the API server's proxy path another).
func forwardable(escaped string) bool {
	clean := path.Clean(escaped)
	if strings.HasSuffix(escaped, "/") && clean != "/" {
		clean += "/"
	}
	return clean == escaped && !strings.Contains(escaped, "%2") && !strings.Contains(escaped, "%5") &&
		(strings.HasPrefix(escaped, "/ui/") || strings.HasPrefix(escaped, "/api/v1/"))
}

// loopback reports whether host names this machine's loopback.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
