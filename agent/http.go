package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/podlife/podlife/agent/ui"
	"github.com/podlife/podlife/api"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// The HTTP API's wire types (package api), under the names the agent's Go
// API and its tests use.
type (
	// PodsResponse is api.PodsResponse: GET /api/v1/pods.
	PodsResponse = api.PodsResponse
	// PodResponse is api.PodResponse: GET /api/v1/pods/NS/NAME.
	PodResponse = api.PodResponse
	// Record is api.Record: one transition, as served and journaled.
	Record = api.Record
	// WatchEnd is api.WatchEnd: the last line of a transitions watch.
	WatchEnd = api.WatchEnd
	// JournalResponse is api.JournalResponse: GET /api/v1/journal.
	JournalResponse = api.JournalResponse
	// JournalHealth is api.JournalHealth: the journal's state.
	JournalHealth = api.JournalHealth
	// LogsResponse is api.LogsResponse: GET /api/v1/pods/NS/NAME/logs.
	LogsResponse = api.LogsResponse
	// MovedAside is api.MovedAside: a journal file set aside as unreadable.
	MovedAside = api.MovedAside
)

// Handler serves the agent's HTTP API, metrics and probes.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", a.handlePods)
	mux.HandleFunc("GET /api/v1/pods/{namespace}/{name}", a.handlePod)
	mux.HandleFunc("GET /api/v1/pods/{namespace}/{name}/logs", a.handleLogs)
	mux.HandleFunc("GET /api/v1/transitions", a.handleTransitions)
	mux.HandleFunc("GET /api/v1/journal", a.handleJournal)
	mux.HandleFunc("GET /metrics", a.handleMetrics)
	mux.Handle("GET "+ui.Prefix, ui.Handler())
	mux.Handle("GET /ui", http.RedirectHandler(ui.Prefix, http.StatusMovedPermanently))
	if a.opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.Ready() {
			http.Error(w, "sources not synced yet", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: the API is read-only")
			return
		}
		writeError(w, http.StatusNotFound, "no such API path: "+clip(r.URL.Path))
	})
	return canonicalAPIPaths(a.admit.wrap(mux))
}

// canonicalAPIPaths answers 400 for an /api/ path with an empty, "." or ".."
// segment (also escaped, %2e%2e), which the mux would otherwise redirect to
// another path.
func canonicalAPIPaths(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); strings.HasPrefix(p, "/api/") {
			for _, seg := range strings.Split(p[1:], "/") {
				if u, err := url.PathUnescape(seg); err != nil || u == "" || u == "." || u == ".." {
					writeError(w, http.StatusBadRequest, "path "+clip(p)+": empty, \".\" and \"..\" segments are not allowed")
					return
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// clip shortens what a caller sent for an error message.
func clip(s string) string {
	const max = 100
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
}

// dnsLabel is an RFC 1123 label, as Kubernetes checks a namespace
// (k8s.io/apimachinery/pkg/util/validation IsDNS1123Label).
func dnsLabel(s string) bool { return len(s) <= 63 && labelChars(s) }

// labelChars: a-z, 0-9 and '-', not at either end, not empty.
func labelChars(s string) bool {
	if len(s) == 0 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// dnsSubdomain is an RFC 1123 subdomain, as Kubernetes checks a pod's name
// (IsDNS1123Subdomain: labels of any length, 253 bytes in all).
func dnsSubdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !labelChars(l) {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (a *Agent) snapshotOrEmpty() *lifecycle.Snapshot {
	if s := a.Snapshot(); s != nil {
		return s
	}
	return &lifecycle.Snapshot{Node: a.opts.Node, Pods: []*lifecycle.PodView{}, Sources: map[string]lifecycle.SourceHealth{}}
}

func (a *Agent) handlePods(w http.ResponseWriter, r *http.Request) {
	s := a.snapshotOrEmpty()
	// PodsResponse, with the pods encoded once per snapshot.
	head, err := json.Marshal(PodsResponse{Node: s.Node, GeneratedAt: s.At, Sources: s.Sources, BlackBox: a.box != nil})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode pods: "+err.Error())
		return
	}
	pods := a.podJSON.get(s.Pods)
	if pods == nil {
		writeError(w, http.StatusInternalServerError, "encode pods: a pod has a time JSON cannot hold")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Vary", "Accept-Encoding")
	head = head[:len(head)-len(`null}`)]
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		// Compressed once per snapshot, shared by every request for it (the
		// JSON of 250 pods is about 1 MB, gzipped about a tenth).
		body := a.podsGzip.get(s, func() []byte { return gzipped(head, pods, []byte("}\n")) })
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	// Written in three parts: the pods, shared by every request for this
	// snapshot, are not copied (a thousand callers at once cost no more).
	w.Header().Set("Content-Length", strconv.Itoa(len(head)+len(pods)+len("}\n")))
	w.Write(head)
	w.Write(pods)
	w.Write([]byte("}\n"))
}

// snapshotCache keeps one thing made from a snapshot (the gzipped pods
// answer) until the next snapshot.
type snapshotCache struct {
	mu   sync.Mutex
	snap *lifecycle.Snapshot
	data []byte
}

// get is what make made of s, made once.
func (c *snapshotCache) get(s *lifecycle.Snapshot, make func() []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != s || c.data == nil {
		c.snap, c.data = s, make()
	}
	return c.data
}

// gzipped is the parts, concatenated and gzipped (BestSpeed).
func gzipped(parts ...[]byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	for _, p := range parts {
		zw.Write(p)
	}
	zw.Close()
	return buf.Bytes()
}

// viewJSONCache keeps each pod's encoded view while the view stays the same
// (the lifecycle Correlator reuses unchanged views): a new snapshot after one
// container changed encodes one pod again, not all of them.
type viewJSONCache struct {
	byUID map[string]viewJSON
}

type viewJSON struct {
	view lifecycle.PodView
	data []byte
}

// render encodes pods as a JSON array, exactly as json.Marshal would (nil if
// a pod has a time outside the years 0-9999, the only thing that can fail).
func (c *viewJSONCache) render(pods []*lifecycle.PodView) []byte {
	next := make(map[string]viewJSON, len(pods))
	data := make([][]byte, len(pods))
	size := 2 + len(pods)
	for i, p := range pods {
		e, ok := c.byUID[p.UID]
		if !ok || !lifecycle.SameView(&e.view, p) {
			b, err := json.Marshal(p)
			if err != nil {
				return nil
			}
			e = viewJSON{view: *p, data: b}
		}
		next[p.UID], data[i] = e, e.data
		size += len(e.data)
	}
	c.byUID = next
	out := make([]byte, 0, size)
	out = append(out, '[')
	for i := range pods {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, data[i]...)
	}
	return append(out, ']')
}

// podPath returns the namespace and name of a /pods/{namespace}/{name}
// path, or answers 400 and returns false.
func podPath(w http.ResponseWriter, r *http.Request) (ns, name string, ok bool) {
	ns, name = r.PathValue("namespace"), r.PathValue("name")
	if !dnsLabel(ns) {
		writeError(w, http.StatusBadRequest, "namespace "+clip(ns)+": not a namespace (an RFC 1123 label: at most 63 of a-z, 0-9, '-')")
		return "", "", false
	}
	if !dnsSubdomain(name) {
		writeError(w, http.StatusBadRequest, "name "+clip(name)+": not a pod name (an RFC 1123 subdomain: at most 253 of a-z, 0-9, '-', '.')")
		return "", "", false
	}
	return ns, name, true
}

func (a *Agent) handlePod(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := podPath(w, r)
	if !ok {
		return
	}
	s := a.snapshotOrEmpty()
	for _, p := range s.Pods {
		if p.Namespace == ns && p.Name == name {
			writeJSON(w, http.StatusOK, PodResponse{PodView: *p, History: a.PodHistory(p.UID)})
			return
		}
	}
	writeError(w, http.StatusNotFound, "pod "+ns+"/"+name+" not found on node "+s.Node)
}

// handleLogs serves the crash black box of a pod: every attempt kept, of
// every incarnation of the name (the pod may be long gone from the node).
func (a *Agent) handleLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := podPath(w, r)
	if !ok {
		return
	}
	if a.box == nil {
		writeError(w, http.StatusNotImplemented, "the crash black box is off on this agent: it needs --journal-path, and --blackbox-lines and --blackbox-bytes above 0")
		return
	}
	q := r.URL.Query()
	container := q.Get("container")
	if container != "" && !dnsLabel(container) {
		writeError(w, http.StatusBadRequest, "container "+clip(container)+": not a container name (an RFC 1123 label)")
		return
	}
	attempt := int64(-1)
	if v := q.Get("attempt"); v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			writeError(w, http.StatusBadRequest, "attempt "+clip(v)+": want a number (the container's restart count at that attempt)")
			return
		}
		attempt = int64(n)
	}
	boxes, err := a.box.boxes(ns, name, container)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "crash black box: "+oneLine(err))
		return
	}
	out := LogsResponse{Node: a.opts.Node, Namespace: ns, Pod: name, Attempts: []journal.BlackBox{}}
	for _, b := range boxes {
		if attempt < 0 || int64(b.Attempt) == attempt {
			out.Attempts = append(out.Attempts, b)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) handleTransitions(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "since: want an RFC3339 time, got "+v)
			return
		}
		since = t
	}
	if r.URL.Query().Get("watch") != "true" {
		writeJSON(w, http.StatusOK, a.Since(since))
		return
	}
	a.watchTransitions(w, r, since)
}

// watchTransitions streams newline-delimited JSON: the backlog since `since`
// (when the request gives one), then live transitions. A reader that falls
// WatchBuffer behind gets what it was sent and a last line saying how many it
// missed; the agent never waits for it. Each write may take
// watchWriteTimeout (a watch is long-lived, a reader that stopped reading is
// not).
func (a *Agent) watchTransitions(w http.ResponseWriter, r *http.Request, since time.Time) {
	sub := a.Subscribe(0)
	defer sub.Stop()
	rc := http.NewResponseController(w)
	deadline := func() { rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout)) }
	deadline()
	w.Header().Set("Content-Type", "application/x-ndjson")
	s := &watchStream{enc: json.NewEncoder(w)}
	if r.URL.Query().Get("since") != "" {
		for _, rec := range a.Since(since) {
			if s.send(rec) != nil {
				return
			}
		}
	}
	rc.Flush()
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		// Each write gets its own deadline, set just before it: one set
		// when the loop began waiting would expire with the keepalive's
		// tick (both 30 s), and cut an idle stream mid-response.
		select {
		case <-r.Context().Done():
			return
		case <-sub.Overflow:
			deadline()
			dropped := sub.Stop()
			if s.drain(sub.C) != nil { // what was delivered before the overflow
				return
			}
			s.end(dropped)
			rc.Flush()
			return
		case rec := <-sub.C:
			// Write what else has arrived with it, then flush once: one
			// correlation's transitions come together.
			deadline()
			if s.send(rec) != nil || s.drain(sub.C) != nil {
				return
			}
			rc.Flush()
		case <-keepalive.C:
			deadline()
			if _, err := w.Write([]byte("\n")); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// watchStream writes one watch's records, each once and in order.
type watchStream struct {
	enc  *json.Encoder
	last Record // the last one written
}

// send writes rec unless it was written already (the backlog and the
// subscription overlap).
func (s *watchStream) send(rec Record) error {
	if rec.Seq <= s.last.Seq {
		return nil
	}
	s.last = rec
	return s.enc.Encode(rec)
}

// drain writes what c holds now, without waiting for more.
func (s *watchStream) drain(c <-chan Record) error {
	for {
		select {
		case rec := <-c:
			if err := s.send(rec); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// end writes the last line of a watch whose reader fell behind: how many
// transitions it missed, after which one, and how to read them.
func (s *watchStream) end(dropped uint64) {
	s.enc.Encode(WatchEnd{Dropped: dropped, LastSeq: s.last.Seq, Error: fmt.Sprintf("watch reader too slow: "+
		"%d transitions after seq %d were not delivered; reconnect with since=%s to read them from the history",
		dropped, s.last.Seq, s.last.ObservedAt.UTC().Format(time.RFC3339Nano))})
}

// watchWriteTimeout bounds each write of a watch stream.
const watchWriteTimeout = 30 * time.Second

func (a *Agent) handleJournal(w http.ResponseWriter, _ *http.Request) {
	if a.journal == nil {
		writeError(w, http.StatusNotFound, "this agent runs without a journal (--journal-path)")
		return
	}
	j, h := a.journal.snapshot()
	r := JournalResponse{Pending: []journal.Entry{}, Health: h}
	if j != nil { // else not open yet: health says why
		st, err := j.Stats()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		p, err := j.Pending(10000)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		r.Stats = st
		if p != nil {
			r.Pending = p
		}
	}
	writeJSON(w, http.StatusOK, r)
}

// Serve serves the HTTP API on l until ctx is done, then shuts down gracefully.
func (a *Agent) Serve(ctx context.Context, l net.Listener) error {
	return serveHTTP(ctx, l, a.Handler(), nil, a.opts.Log)
}
