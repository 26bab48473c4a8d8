package agent

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/common/expfmt"

	"github.com/podlife/podlife/lifecycle"
)

// Pod and container metrics are written straight to the text exposition
// format, as kube-state-metrics does: each is a pure function of the
// snapshot, and a node's worth of them (about 50 series per pod) costs far
// less this way than as const metrics through the registry. The text is
// cached until the snapshot's pods change.

// family is one metric family of the snapshot.
type family struct {
	name, help, typ string
	write           func(b *bytes.Buffer, p *lifecycle.PodView)
}

// label writes name="value" with the value escaped for the text format.
func label(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	if strings.ContainsAny(value, "\\\"\n") {
		value = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(value)
	}
	b.WriteString(value)
	b.WriteByte('"')
}

// sample writes one series: name{pod labels, extra pairs} value.
func sample(b *bytes.Buffer, name string, p *lifecycle.PodView, v float64, extra ...string) {
	b.WriteString(name)
	b.WriteByte('{')
	label(b, "namespace", p.Namespace)
	b.WriteByte(',')
	label(b, "pod", p.Name)
	b.WriteByte(',')
	label(b, "uid", p.UID)
	for i := 0; i+1 < len(extra); i += 2 {
		b.WriteByte(',')
		label(b, extra[i], extra[i+1])
	}
	b.WriteString("} ")
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte('\n')
}

var podFamilies = []family{
	{"podlife_pod_phase", "The pod's phase as the kubelet reports it (1 for the current phase).", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, ph := range phases {
				sample(b, "podlife_pod_phase", p, b2f(p.Phase == ph), "phase", string(ph))
			}
		}},
	{"podlife_pod_stage", "The pod's lifecycle stage (1 for the current stage).", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, st := range lifecycle.Stages {
				sample(b, "podlife_pod_stage", p, b2f(p.Stage == st), "stage", string(st))
			}
		}},
	{"podlife_pod_condition", "The pod's conditions (1 for the current status).", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, c := range p.Conditions {
				for _, v := range []string{"True", "False", "Unknown"} {
					sample(b, "podlife_pod_condition", p, b2f(c.Status == v), "condition", c.Type, "status", v)
				}
			}
		}},
	{"podlife_container_state", "The container's state (1 for the current state).", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, c := range p.Containers {
				for _, st := range containerStates {
					sample(b, "podlife_container_state", p, b2f(c.State == st), "container", c.Name, "state", string(st))
				}
			}
		}},
	{"podlife_container_waiting_reason", "Why the container is waiting (1 while it waits for that reason).", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, c := range p.Containers {
				if c.State == lifecycle.StateWaiting && c.Reason != "" {
					sample(b, "podlife_container_waiting_reason", p, 1, "container", c.Name, "reason", c.Reason)
				}
			}
		}},
	{"podlife_container_last_terminated_reason", "Why the container last terminated.", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, c := range p.Containers {
				if reason, _, ok := lastTermination(c); ok {
					sample(b, "podlife_container_last_terminated_reason", p, 1, "container", c.Name, "reason", reason)
				}
			}
		}},
	{"podlife_container_last_exit_code", "The exit code of the container's last termination.", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, c := range p.Containers {
				if _, code, ok := lastTermination(c); ok {
					sample(b, "podlife_container_last_exit_code", p, float64(code), "container", c.Name)
				}
			}
		}},
	{"podlife_container_restarts_total", "Container restarts as the kubelet counts them.", "counter",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, c := range p.Containers {
				sample(b, "podlife_container_restarts_total", p, float64(c.RestartCount), "container", c.Name)
			}
		}},
	{"podlife_view_mismatches", "Disagreements between the kubelet's and the runtime's views, by kind (kinds present only).", "gauge",
		func(b *bytes.Buffer, p *lifecycle.PodView) {
			for _, k := range lifecycle.MismatchKinds {
				n := 0
				for _, m := range p.Mismatches {
					if m.Kind == k {
						n++
					}
				}
				if n > 0 {
					sample(b, "podlife_view_mismatches", p, float64(n), "kind", string(k))
				}
			}
		}},
}

// lastTermination is the container's last termination, from lastState or
// its current Terminated state.
func lastTermination(c lifecycle.ContainerView) (string, int32, bool) {
	if c.LastState != nil && c.LastState.Kind == lifecycle.StateTerminated {
		return c.LastState.Reason, c.LastState.ExitCode, true
	}
	if c.State == lifecycle.StateTerminated && c.ExitCode != nil {
		return c.Reason, *c.ExitCode, true
	}
	return "", 0, false
}

// podText renders the pod families for a snapshot's pods.
func podText(pods []lifecycle.PodView) []byte {
	var b bytes.Buffer
	b.Grow(len(pods) * 6000)
	for _, f := range podFamilies {
		b.WriteString("# HELP " + f.name + " " + f.help + "\n# TYPE " + f.name + " " + f.typ + "\n")
		for i := range pods {
			f.write(&b, &pods[i])
		}
	}
	return b.Bytes()
}

// nodeText renders the node-level families of a snapshot.
func nodeText(s *lifecycle.Snapshot) []byte {
	var b bytes.Buffer
	unknown := map[lifecycle.Cause]int{}
	for i := range s.Pods {
		if c := s.Pods[i].UnknownCause; c != lifecycle.CauseNone {
			unknown[c]++
		}
	}
	b.WriteString("# HELP podlife_pods_unknown Pods whose truth is incomplete, by cause.\n# TYPE podlife_pods_unknown gauge\n")
	for _, c := range lifecycle.Causes {
		b.WriteString(`podlife_pods_unknown{cause="` + string(c) + `"} ` + strconv.Itoa(unknown[c]) + "\n")
	}
	up := "# HELP podlife_source_up Whether the source answered its last request.\n# TYPE podlife_source_up gauge\n"
	last := "# HELP podlife_source_last_success_timestamp_seconds When the source last answered.\n# TYPE podlife_source_last_success_timestamp_seconds gauge\n"
	for _, name := range lifecycle.SourceNames {
		h := s.Sources[name]
		if !h.Configured {
			continue
		}
		up += `podlife_source_up{source="` + name + `"} ` + strconv.Itoa(int(b2f(h.Up))) + "\n"
		if !h.LastSuccess.IsZero() {
			last += `podlife_source_last_success_timestamp_seconds{source="` + name + `"} ` +
				strconv.FormatFloat(float64(h.LastSuccess.UnixNano())/1e9, 'f', 3, 64) + "\n"
		}
	}
	b.WriteString(up)
	b.WriteString(last)
	return b.Bytes()
}

// podsCache keeps something rendered from the latest snapshot's pods (the
// metrics' pod families, the API's pods JSON): pods change only with a new
// correlation, while a scrape or an API call may come at any time.
type podsCache struct {
	mu     sync.Mutex
	render func([]lifecycle.PodView) []byte
	key    *lifecycle.PodView
	n      int
	data   []byte
}

func (c *podsCache) get(pods []lifecycle.PodView) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(pods) == 0 {
		return c.render(nil)
	}
	if c.key != &pods[0] || c.n != len(pods) {
		c.data, c.key, c.n = c.render(pods), &pods[0], len(pods)
	}
	return c.data
}

// exposition writes the whole /metrics answer in the text format: the
// registry's families, then the snapshot's.
func (a *Agent) exposition(buf *bytes.Buffer) error {
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	if s := a.Snapshot(); s != nil {
		buf.Write(a.podText.get(s.Pods))
		buf.Write(nodeText(s))
	}
	return nil
}

// scrape is one rendering of /metrics, plain and gzipped (BestSpeed).
type scrape struct{ plain, gzipped []byte }

// handleMetrics serves /metrics. Scrapes that arrive while one is being
// rendered share that rendering and its compression (a burst of scrapers
// costs one gathering and one gzip, and /metrics is never refused).
func (a *Agent) handleMetrics(w http.ResponseWriter, r *http.Request) {
	v, err, _ := a.scrapes.Do("metrics", func() (any, error) {
		var buf, gz bytes.Buffer
		if err := a.exposition(&buf); err != nil {
			return nil, err
		}
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		zw.Write(buf.Bytes())
		zw.Close()
		return scrape{plain: buf.Bytes(), gzipped: gz.Bytes()}, nil
	})
	if err != nil {
		http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	body := v.(scrape).plain // shared: only read
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		body = v.(scrape).gzipped
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
