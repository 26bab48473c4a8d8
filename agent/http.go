package agent

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// PodsResponse is GET /api/v1/pods.
type PodsResponse struct {
	Node        string                            `json:"node"`
	GeneratedAt time.Time                         `json:"generatedAt"`
	Sources     map[string]lifecycle.SourceHealth `json:"sources"`
	Pods        []lifecycle.PodView               `json:"pods"`
}

// PodResponse is GET /api/v1/pods/{namespace}/{name}: the view and its history.
type PodResponse struct {
	lifecycle.PodView
	History []Record `json:"history"`
}

// Handler serves the agent's HTTP API, metrics and probes.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", a.handlePods)
	mux.HandleFunc("GET /api/v1/pods/{namespace}/{name}", a.handlePod)
	mux.HandleFunc("GET /api/v1/transitions", a.handleTransitions)
	mux.HandleFunc("GET /api/v1/journal", a.handleJournal)
	mux.HandleFunc("GET /metrics", a.handleMetrics)
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
	return mux
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
	return &lifecycle.Snapshot{Node: a.opts.Node, Pods: []lifecycle.PodView{}, Sources: map[string]lifecycle.SourceHealth{}}
}

func (a *Agent) handlePods(w http.ResponseWriter, _ *http.Request) {
	s := a.snapshotOrEmpty()
	// PodsResponse, with the pods encoded once per snapshot.
	head, err := json.Marshal(PodsResponse{Node: s.Node, GeneratedAt: s.At, Sources: s.Sources})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode pods: "+err.Error())
		return
	}
	pods := a.podJSON.get(s.Pods)
	if pods == nil {
		writeError(w, http.StatusInternalServerError, "encode pods: a pod has a time JSON cannot hold")
		return
	}
	head = append(head[:len(head)-len(`null}`)], pods...)
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(head, "}\n"...))
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
func (c *viewJSONCache) render(pods []lifecycle.PodView) []byte {
	next := make(map[string]viewJSON, len(pods))
	data := make([][]byte, len(pods))
	size := 2 + len(pods)
	for i := range pods {
		p := &pods[i]
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

func (a *Agent) handlePod(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	s := a.snapshotOrEmpty()
	for _, p := range s.Pods {
		if p.Namespace == ns && p.Name == name {
			writeJSON(w, http.StatusOK, PodResponse{PodView: p, History: a.PodHistory(p.UID)})
			return
		}
	}
	writeError(w, http.StatusNotFound, "pod "+ns+"/"+name+" not found on node "+s.Node)
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
	// Newline-delimited JSON: the backlog since `since`, then live transitions.
	ch, cancel := a.Watch()
	defer cancel()
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a watch is long-lived
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	var last uint64
	if v := r.URL.Query().Get("since"); v != "" {
		for _, rec := range a.Since(since) {
			enc.Encode(rec)
			last = rec.Seq
		}
	}
	rc.Flush()
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case rec := <-ch:
			// Write what else has arrived with it, then flush once: one
			// correlation's transitions come together.
			for more := true; more; {
				if rec.Seq > last && enc.Encode(rec) != nil {
					return
				}
				select {
				case rec = <-ch:
				default:
					more = false
				}
			}
			rc.Flush()
		case <-keepalive.C:
			if _, err := w.Write([]byte("\n")); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// JournalResponse is GET /api/v1/journal: what is not yet delivered upstream,
// and how the journal fares.
type JournalResponse struct {
	Stats   journal.Stats   `json:"stats"`
	Pending []journal.Entry `json:"pending"`
	Health  JournalHealth   `json:"health"`
}

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
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
