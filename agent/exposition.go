package agent

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/podlife/podlife/lifecycle"
)

// The pod families: the ones only podlife knows by default (about one
// series per pod), those kube-state-metrics also exports behind
// --pod-metrics=ksm-compatible (about 45 per pod). A pod's const metrics are
// built, gathered (in a registry of their own) and encoded when its view
// changes (the lifecycle Correlator reuses unchanged views); the families'
// text is put together from the pods' and kept until a view changes.
// Gathering every pod's at each change would cost several times the scrape.

// The pod metrics modes (--pod-metrics).
const (
	// PodMetricsPodlife, the default: only the families podlife alone knows.
	PodMetricsPodlife = "podlife"
	// PodMetricsKSM: those, and the families kube-state-metrics also
	// exports, as podlife always did, for clusters without it.
	PodMetricsKSM = "ksm-compatible"
)

// PodMetricsModes are the values of --pod-metrics, the default first.
var PodMetricsModes = []string{PodMetricsPodlife, PodMetricsKSM}

// podFamily is one metric family of a pod's view: a pure function of it.
type podFamily struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	// ksm is the kube-state-metrics family this one duplicates, exported
	// only with PodMetricsKSM; "" for one only podlife knows, always
	// exported. why says, in one line, what only podlife knows of it, or
	// where it differs from the KSM family.
	ksm, why string
	// series calls add once per series, with the labels after namespace,
	// pod and uid.
	series func(p *lifecycle.PodView, add func(v float64, labels ...string))
}

// podLabels are a pod family's labels: the pod's, then extra.
func podLabels(extra ...string) []string {
	return append([]string{"namespace", "pod", "uid"}, extra...)
}

// podFamilies are every pod family, in both modes: the one list of which is
// podlife's own and which duplicates kube-state-metrics (the README's table
// follows it: TestPodFamiliesDocumented). Enums export their 0-valued
// members only in the KSM-compatible families, as KSM's do: no alert needs
// a 0 of a pod's stage or cause.
var podFamilies = []podFamily{
	{desc: desc("pod_stage", "The pod's lifecycle stage: one series, 1, for the current stage.", podLabels("stage")...),
		typ: prometheus.GaugeValue, why: "podlife's classification of the joined views; KSM has no stage",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) { add(1, string(p.Stage)) }},
	{desc: desc("pod_unknown_cause", "Why podlife cannot complete the pod's truth (1 for the cause, while there is one).", podLabels("cause")...),
		typ: prometheus.GaugeValue, why: "podlife's own verdict; KSM shows the API server's copy, frozen in a partition",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			if p.UnknownCause != lifecycle.CauseNone {
				add(1, string(p.UnknownCause))
			}
		}},
	{desc: desc("view_mismatches", "Disagreements between the kubelet's and the runtime's views, by kind (kinds present only).", podLabels("kind")...),
		typ: prometheus.GaugeValue, why: "the views compared are podlife's; KSM reads only the API server",
		series: mismatchSeries},
	{desc: desc("container_crash_loop_restarts", "A crash-looping container's restarts, live from the runtime "+
		"(only while the container loops: waits in CrashLoopBackOff, or runs again after a short attempt and its pod is Failing).", podLabels("container")...),
		typ: prometheus.GaugeValue, why: "podlife's crash loop, live from the runtime when the API server's copy (KSM's) is stale",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			for i := range p.Containers {
				if c := &p.Containers[i]; lifecycle.CrashLooping(p, c) {
					add(float64(c.RestartCount), c.Name)
				}
			}
		}},
	{desc: desc("container_crash_loop_exit_code", "A crash-looping container's last exit code, by its reason "+
		"(Error, OOMKilled, Completed, ContainerCannotRun, StartError, DeadlineExceeded, ContainerStatusUnknown or Other; only while the container loops).", podLabels("container", "reason")...),
		typ: prometheus.GaugeValue, why: "the exit that feeds podlife's crash loop; a bounded reason, present only during the loop",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			for i := range p.Containers {
				c := &p.Containers[i]
				if reason, code, ok := latestExit(*c); ok && lifecycle.CrashLooping(p, c) {
					add(float64(code), c.Name, crashReason(reason))
				}
			}
		}},
	{desc: desc("pod_phase", "The pod's phase as the kubelet reports it (1 for the current phase).", podLabels("phase")...),
		typ: prometheus.GaugeValue, ksm: "kube_pod_status_phase", series: phaseSeries},
	{desc: desc("pod_condition", "The pod's conditions (1 for the current status).", podLabels("condition", "status")...),
		typ: prometheus.GaugeValue, ksm: "kube_pod_status_condition", series: conditionSeries},
	{desc: desc("container_state", "The container's state (1 for the current state).", podLabels("container", "state")...),
		typ: prometheus.GaugeValue, ksm: "kube_pod_container_status_waiting, _running, _terminated", series: stateSeries},
	{desc: desc("container_waiting_reason", "Why the container is waiting (1 while it waits for that reason).", podLabels("container", "reason")...),
		typ: prometheus.GaugeValue, ksm: "kube_pod_container_status_waiting_reason",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			for _, c := range p.Containers {
				if c.State == lifecycle.StateWaiting && c.Reason != "" {
					add(1, c.Name, c.Reason)
				}
			}
		}},
	{desc: desc("container_last_terminated_reason", "Why the container last terminated.", podLabels("container", "reason")...),
		typ: prometheus.GaugeValue, ksm: "kube_pod_container_status_last_terminated_reason",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			for _, c := range p.Containers {
				if reason, _, ok := lastTermination(c); ok {
					add(1, c.Name, reason)
				}
			}
		}},
	{desc: desc("container_last_exit_code", "The exit code of the container's last termination.", podLabels("container")...),
		typ: prometheus.GaugeValue, ksm: "kube_pod_container_status_last_terminated_exitcode",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			for _, c := range p.Containers {
				if _, code, ok := lastTermination(c); ok {
					add(float64(code), c.Name)
				}
			}
		}},
	{desc: desc("container_restarts_total", "Container restarts as the kubelet counts them.", podLabels("container")...),
		typ: prometheus.CounterValue, ksm: "kube_pod_container_status_restarts_total",
		series: func(p *lifecycle.PodView, add func(float64, ...string)) {
			for _, c := range p.Containers {
				add(float64(c.RestartCount), c.Name)
			}
		}},
}

// podFamiliesOf are the pod families a mode exports: podlife's own, and
// with PodMetricsKSM the KSM-compatible ones too.
func podFamiliesOf(mode string) []podFamily {
	return slices.DeleteFunc(slices.Clone(podFamilies), func(f podFamily) bool { return f.ksm != "" && mode != PodMetricsKSM })
}

// crashReasons are the reason label's values of the crash loop's exit (any
// other termination reason, or none, is "Other"): bounded, whatever a
// runtime writes.
var crashReasons = []string{lifecycle.ReasonError, lifecycle.ReasonOOMKilled, lifecycle.ReasonCompleted,
	lifecycle.ReasonContainerCannotRun, lifecycle.ReasonStartError, lifecycle.ReasonDeadlineExceeded,
	lifecycle.ReasonContainerStatusUnknown}

// crashReason is a termination reason as the crash loop's reason label.
func crashReason(reason string) string {
	if slices.Contains(crashReasons, reason) {
		return reason
	}
	return "Other"
}

// phaseSeries: 0/1 over every phase, as kube_pod_status_phase.
func phaseSeries(p *lifecycle.PodView, add func(float64, ...string)) {
	for _, ph := range phases {
		add(b2f(p.Phase == ph), string(ph))
	}
}

// conditionSeries: 0/1 over True, False and Unknown per condition, as
// kube_pod_status_condition.
func conditionSeries(p *lifecycle.PodView, add func(float64, ...string)) {
	for _, c := range p.Conditions {
		for _, v := range []string{"True", "False", "Unknown"} {
			add(b2f(c.Status == v), c.Type, v)
		}
	}
}

// stateSeries: 0/1 over every state per container.
func stateSeries(p *lifecycle.PodView, add func(float64, ...string)) {
	for _, c := range p.Containers {
		for _, st := range containerStates {
			add(b2f(c.State == st), c.Name, string(st))
		}
	}
}

// mismatchSeries: per kind present, its number of findings.
func mismatchSeries(p *lifecycle.PodView, add func(float64, ...string)) {
	for _, k := range lifecycle.MismatchKinds {
		n := 0
		for _, m := range p.Mismatches {
			if m.Kind == k {
				n++
			}
		}
		if n > 0 {
			add(float64(n), string(k))
		}
	}
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

// latestExit is the container's latest exit: its current Terminated state,
// else its lastState (lastTermination prefers lastState, as the kubelet's
// lastState and KSM's last_terminated families do).
func latestExit(c lifecycle.ContainerView) (string, int32, bool) {
	if c.State == lifecycle.StateTerminated && c.ExitCode != nil {
		return c.Reason, *c.ExitCode, true
	}
	return lastTermination(c)
}

// podSeries is a pod's view and the text of the const metrics built from
// it: per family (by podMetrics.index), its sample lines.
type podSeries struct {
	view  lifecycle.PodView
	lines [][]byte
}

// podMetrics is the collector of the pod families, in a registry of their
// own. The const metrics of pods whose view changed are gathered together
// and encoded per pod; the text of all pods is put together from them when
// a pod's view changed, came or went, and kept until then. Set families
// (podFamiliesOf) before the first get.
type podMetrics struct {
	families []podFamily // the mode's

	mu       sync.Mutex
	registry *prometheus.Registry
	building []prometheus.Metric // of the pods being built, for Collect
	index    map[string]int      // family name -> index in headers and lines
	names    []string            // the families, sorted
	headers  [][]byte            // per family, its HELP and TYPE lines
	byUID    map[string]*podSeries
	pods     []*podSeries // of the last get, in its order
	text     []byte       // their exposition
}

// Describe implements prometheus.Collector.
func (c *podMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.families {
		ch <- f.desc
	}
}

// Collect implements prometheus.Collector: the pods being built. Only
// c.registry calls it, from build (under c.mu).
func (c *podMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.building {
		ch <- m
	}
}

// get is the pod families' exposition for a snapshot's pods: the kept text
// while every pod's view is the same, else put together again (building
// const metrics only for pods whose view changed). Families are in name
// order (as a registry gathers them), pods in the snapshot's. An error (a
// series twice) leaves that series out.
func (c *podMetrics) get(pods []*lifecycle.PodView) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]*podSeries, len(pods))
	var changed []*lifecycle.PodView
	same := c.text != nil && len(pods) == len(c.pods)
	for i, p := range pods {
		if s := c.byUID[p.UID]; s != nil && lifecycle.SameView(&s.view, p) {
			next[p.UID] = s
			same = same && c.pods[i] == s
		} else {
			changed, same = append(changed, p), false
		}
	}
	if same {
		return c.text, nil
	}
	err := c.build(changed, next)
	c.byUID, c.pods = next, c.pods[:0]
	for i := range pods {
		c.pods = append(c.pods, next[pods[i].UID])
	}
	c.text = c.join()
	return c.text, err
}

// validUTF8 is s with each invalid UTF-8 sequence replaced by U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// build gathers the const metrics of pods and encodes them per pod into
// series.
func (c *podMetrics) build(pods []*lifecycle.PodView, series map[string]*podSeries) error {
	if c.registry == nil {
		c.registry = prometheus.NewRegistry()
		c.registry.MustRegister(c)
		c.index = map[string]int{}
	}
	c.building = c.building[:0]
	byLabel := make(map[string]*podSeries, len(pods)) // by the uid label, which is valid UTF-8
	for _, p := range pods {
		s := &podSeries{view: *p, lines: make([][]byte, len(c.families))}
		series[p.UID], byLabel[validUTF8(p.UID)] = s, s
		for _, f := range c.families {
			f.series(p, func(v float64, extra ...string) {
				labels := append([]string{p.Namespace, p.Name, p.UID}, extra...)
				for i, l := range labels {
					labels[i] = validUTF8(l) // a label value must be UTF-8
				}
				c.building = append(c.building, prometheus.MustNewConstMetric(f.desc, f.typ, v, labels...))
			})
		}
	}
	if len(c.building) == 0 {
		return nil
	}
	mfs, err := c.registry.Gather()
	c.building = nil
	var buf bytes.Buffer
	for _, mf := range mfs {
		byUID := map[string][]*dto.Metric{}
		for _, m := range mf.Metric {
			uid := m.Label[slices.IndexFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == "uid" })].GetValue()
			byUID[uid] = append(byUID[uid], m)
		}
		for uid, ms := range byUID {
			buf.Reset()
			if _, err := expfmt.MetricFamilyToText(&buf, &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Metric: ms}); err != nil {
				return fmt.Errorf("encode %s: %w", mf.GetName(), err)
			}
			header, lines := splitHeader(buf.Bytes())
			byLabel[uid].lines[c.family(mf.GetName(), header)] = bytes.Clone(lines)
		}
	}
	return err
}

// splitHeader splits a family's text into its HELP and TYPE lines and its
// samples.
func splitHeader(text []byte) (header, samples []byte) {
	end := bytes.Index(text, []byte("# TYPE "))
	end += bytes.IndexByte(text[end:], '\n') + 1
	return text[:end], text[end:]
}

// family is the index of the family name, its header kept the first time.
func (c *podMetrics) family(name string, header []byte) int {
	i, ok := c.index[name]
	if !ok {
		i = len(c.headers)
		c.index[name] = i
		c.headers = append(c.headers, bytes.Clone(header))
		c.names = append(c.names, name)
		slices.Sort(c.names)
	}
	return i
}

// join puts the pods' text together, family by family.
func (c *podMetrics) join() []byte {
	size := 0
	for _, h := range c.headers {
		size += len(h)
	}
	for _, s := range c.pods {
		for _, l := range s.lines {
			size += len(l)
		}
	}
	out := make([]byte, 0, size)
	for _, name := range c.names {
		i := c.index[name]
		start := len(out)
		out = append(out, c.headers[i]...)
		empty := true
		for _, s := range c.pods {
			if i < len(s.lines) && len(s.lines[i]) > 0 {
				out, empty = append(out, s.lines[i]...), false
			}
		}
		if empty { // no pod has a series of it
			out = out[:start]
		}
	}
	return out
}

// encode writes metric families in the text format.
func encode(buf *bytes.Buffer, mfs []*dto.MetricFamily) error {
	enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return fmt.Errorf("encode %s: %w", mf.GetName(), err)
		}
	}
	return nil
}

// podsCache keeps something rendered from the latest snapshot's pods (the
// API's pods JSON): pods change only with a new correlation, while an API
// call may come at any time.
type podsCache struct {
	mu     sync.Mutex
	render func([]*lifecycle.PodView) []byte
	key    **lifecycle.PodView // the snapshot's Pods' array
	n      int
	data   []byte
}

func (c *podsCache) get(pods []*lifecycle.PodView) []byte {
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
// agent's registry, then the pod families.
func (a *Agent) exposition(buf *bytes.Buffer) error {
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		return fmt.Errorf("the agent's registry: %w", err)
	}
	if err := encode(buf, mfs); err != nil {
		return err
	}
	if s := a.Snapshot(); s != nil {
		text, err := a.podText.get(s.Pods)
		if err != nil {
			a.opts.Log.Warn("pod metrics incomplete", "err", err.Error())
		}
		buf.Write(text)
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
		var buf bytes.Buffer
		if err := a.exposition(&buf); err != nil {
			return nil, err
		}
		return scrape{plain: buf.Bytes(), gzipped: gzipped(buf.Bytes())}, nil
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
