package ui

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// The page and its files are served under Prefix with a policy that lets
// them load and fetch only from the agent; nothing else is served.
func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]struct {
		code        int
		ctype, body string
	}{
		"/ui/":           {200, "text/html; charset=utf-8", `<script src="app.js" defer>`},
		"/ui/app.js":     {200, "text/javascript; charset=utf-8", "transitions?watch=true"},
		"/ui/app.css":    {200, "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		"/ui/index.html": {200, "text/html; charset=utf-8", `<script src="app.js" defer>`}, // after FileServer's redirect to ./
		"/ui/nope.js":    {404, "", ""},
		"/ui/../ui.go":   {404, "", ""},
		"/assets/app.js": {404, "", ""},
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want.code || (want.code == 200 && (resp.Header.Get("Content-Type") != want.ctype || !strings.Contains(string(b), want.body))) {
			t.Errorf("GET %s: %d %s, want %d %s with %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), want.code, want.ctype, want.body)
		}
		if want.code == 200 && resp.Header.Get("Content-Security-Policy") != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", path, resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// The policy allows no other origin, no inline script or style; the files
// name no other origin and use no inline script, style or handler, which the
// policy would block; the script puts the API's text in text nodes only.
func TestSameOriginOnly(t *testing.T) {
	for _, d := range strings.Split(ContentSecurityPolicy, "; ") {
		if f := strings.Fields(d); len(f) > 1 && f[0] != "img-src" && (len(f) != 2 || (f[1] != "'self'" && f[1] != "'none'")) {
			t.Errorf("directive %q allows more than the agent", d)
		}
	}
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+`)
	inline := regexp.MustCompile(`(?i)<script>|<style|\son[a-z]+=|style=|javascript:`)
	markup := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\.style\b|setAttribute\('style'`)
	fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(assets, path)
		for _, m := range url.FindAllString(string(b), -1) {
			if m != "http://www.w3.org" { // the SVG namespace: a name, never fetched
				t.Errorf("%s names another origin: %s", path, m)
			}
		}
		if strings.HasSuffix(path, ".html") && inline.Match(b) {
			t.Errorf("%s has inline script, style or a handler: %s", path, inline.Find(b))
		}
		if strings.HasSuffix(path, ".js") && markup.Match(b) {
			t.Errorf("%s builds markup from strings, evaluates code or sets inline style: %s (the policy, and the API's text, forbid it)", path, markup.Find(b))
		}
		return nil
	})
}
