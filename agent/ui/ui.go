// Package ui is the agent's web page: a picture of the node (its sources and
// pods, live) and of each pod (a timeline across the runtime, the kubelet
// and the API server). Plain HTML, CSS and JavaScript embedded in the
// binary, no build step; the page asks nothing of anyone but the agent that
// serves it (its Content-Security-Policy says so), through the agent's own
// HTTP API under the same listeners and authorization.
package ui

import (
	"embed"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the page is served.
const Prefix = "/ui/"

// ContentSecurityPolicy allows the page to load and fetch from its own
// origin only: no inline script or style, no frame, no form.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page's files under Prefix.
func Handler() http.Handler {
	files := http.FileServerFS(assets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.URL.Path, r.URL.RawPath = "/assets/"+rest, ""
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
