package agent

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/podlife/podlife/lifecycle"
)

// podlife exports its metrics one way, as node_exporter's collectors do: the
// agent keeps the state (counts below, the snapshot, the sources' and
// journal's own counters), and collectors build const metrics from it at
// scrape, in private registries. The pod families (exposition.go) are built
// once per pod view and their text kept until a view changes.

// phases are exported as 0/1 series over every value.
var phases = []lifecycle.Phase{lifecycle.PhasePending, lifecycle.PhaseRunning, lifecycle.PhaseSucceeded,
	lifecycle.PhaseFailed, lifecycle.PhaseUnknown}

var containerStates = []lifecycle.StateKind{lifecycle.StateWaiting, lifecycle.StateRunning,
	lifecycle.StateTerminated, lifecycle.StateUnknown}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("podlife_"+name, help, labels, nil)
}

var (
	descTransitions    = desc("transitions_total", "Transitions observed, by kind.", "kind")
	descWatchDropped   = desc("watch_dropped_total", "Transitions not delivered to a slow watch client.")
	descJournalPending = desc("journal_pending", "Journaled transitions not yet delivered upstream.")
	descJournalDropped = desc("journal_dropped_total", "Undelivered transitions dropped because the journal was full or they were too old.")
	descJournalUp      = desc("journal_up", "Whether the journal is open and its last write succeeded (0: transitions are held in memory until it can be written).")
	descJournalErrors  = desc("journal_errors_total", "Failed opens of and writes to the journal.")
	descJournalHeld    = desc("journal_unwritten", "Transitions held in memory because the journal could not take them yet.")
	descJournalLost    = desc("journal_lost_total", "Transitions never journaled: held in memory past the bound while the journal was down, or when the agent stopped.")
	descEvents         = desc("upstream_events_total", "Journal entries handled by the event reporter, by outcome (delivered: a new Event; folded: counted into an Event's series; skipped; rejected).", "outcome")
	descEventFailures  = desc("upstream_event_failures_total", "Failed event deliveries (retried).")
	descHTTPInFlight   = desc("http_requests_in_flight", "Requests being served, by admission class (api: pods, one pod, transitions, journal; watch: transition watches).", "class")
	descHTTPRejected   = desc("http_requests_rejected_total", "Requests refused with 429 because their admission class was at its limit (max-requests-inflight, max-watches).", "class")
	descKubeletTLS     = desc("kubelet_tls_verified", "Whether the last connection to the kubelet was verified (1) or not (0: kubelet-insecure-skip-verify, plain HTTP, or verification failed), by how it is checked (mode).", "mode")
	descKubeletMode    = desc("kubelet_source_mode", "How the kubelet is read (1 for the mode in use): pods-api, its own live status over the Pods API (Kubernetes 1.37+), or pods-http, /pods (the API server's copy of API-managed pods' status).", "mode")
	descPodsUnknown    = desc("pods_unknown", "Pods whose truth is incomplete, by cause.", "cause")
	descSourceUp       = desc("source_up", "Whether the source answered its last request.", "source")
	descSourceLastOK   = desc("source_last_success_timestamp_seconds", "When the source last answered.", "source")
	descCorrelations   = desc("correlations_total", "Correlations of the node, by path (changed: only the pods the sources said changed, or whose views change with time, were looked at; all: every pod was).", "path")
)

// metrics is the agent's collector and its private registry (with the Go
// and process collectors): what the agent counts itself, admission, the
// kubelet's TLS and mode, the journal and reporter counters, and the
// snapshot's node families. The pod families have their own (exposition.go).
type metrics struct {
	agent    *Agent
	registry *prometheus.Registry

	transitions     *counterVec
	watchDropped    *counter
	requestDuration *histogram
	startup         *histogram
	startupStep     *histogram
	correlation     *histogram
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{agent: a, registry: prometheus.NewRegistry(),
		transitions:  newCounterVec(descTransitions),
		watchDropped: &counter{},
		requestDuration: newHistogram(prometheus.HistogramOpts{Name: "podlife_source_request_duration_seconds",
			Help:    "Duration of a source's requests (a CRI relist, a kubelet /pods poll, an API server probe).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, "source"),
		startup: newHistogram(prometheus.HistogramOpts{Name: "podlife_pod_startup_duration_seconds",
			Help: "Pod creation to first Ready.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)}),
		startupStep: newHistogram(prometheus.HistogramOpts{Name: "podlife_pod_startup_step_duration_seconds",
			Help:    "Pod creation to each start-up condition turning True (scheduled, initialized, containers_ready, ready).",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)}, "step"),
		correlation: newHistogram(prometheus.HistogramOpts{Name: "podlife_correlation_duration_seconds",
			Help:    "Duration of one correlation of the node: join, classification and diff.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 8)}),
	}
	for _, k := range lifecycle.TransitionKinds {
		m.transitions.WithLabelValues(string(k))
	}
	m.registry.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTransitions, descWatchDropped, m.requestDuration.desc, m.startup.desc,
		m.startupStep.desc, m.correlation.desc, descJournalPending, descJournalDropped, descJournalUp, descJournalErrors,
		descJournalHeld, descJournalLost, descEvents, descEventFailures, descKubeletTLS, descKubeletMode, descHTTPInFlight,
		descHTTPRejected, descPodsUnknown, descSourceUp, descSourceLastOK, descBoxCaptures, descBoxEvictions, descBoxes, descBoxBytes,
		descCorrelations} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.transitions.collect(ch)
	ch <- prometheus.MustNewConstMetric(descWatchDropped, prometheus.CounterValue, float64(m.watchDropped.n.Load()))
	for _, h := range []*histogram{m.requestDuration, m.startup, m.startupStep, m.correlation} {
		h.collect(ch)
	}
	m.collectSources(ch)
	m.collectJournal(ch)
	m.agent.corrMu.Lock()
	changed, all := m.agent.corr.Paths()
	m.agent.corrMu.Unlock()
	ch <- prometheus.MustNewConstMetric(descCorrelations, prometheus.CounterValue, float64(changed), "changed")
	ch <- prometheus.MustNewConstMetric(descCorrelations, prometheus.CounterValue, float64(all), "all")
	if b := m.agent.box; b != nil {
		b.collect(ch)
	}
	if s := m.agent.Snapshot(); s != nil {
		collectNode(ch, s)
	}
}

// collectSources: admission, the kubelet's TLS and mode, the reporter.
func (m *metrics) collectSources(ch chan<- prometheus.Metric) {
	for c := range numClasses {
		gauge(ch, descHTTPInFlight, float64(m.agent.admit.inFlight(c)), classNames[c])
		ch <- prometheus.MustNewConstMetric(descHTTPRejected, prometheus.CounterValue, float64(m.agent.admit.rejectedTotal(c)), classNames[c])
	}
	if k := m.agent.opts.Kubelet; k != nil {
		st := k.State()
		if st.TLS.Mode != "" {
			gauge(ch, descKubeletTLS, b2f(st.TLS.Verified), st.TLS.Mode)
		}
		if st.Health.Mode != "" {
			gauge(ch, descKubeletMode, 1, st.Health.Mode)
		}
	}
	if u := m.agent.opts.Upstream; u != nil && u.Reporter != nil {
		st := u.Reporter.Stats()
		for outcome, v := range map[string]uint64{"delivered": st.Delivered, "skipped": st.Skipped,
			"folded": st.Folded, "rejected": st.Rejected} {
			ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(v), outcome)
		}
		ch <- prometheus.MustNewConstMetric(descEventFailures, prometheus.CounterValue, float64(st.Failures))
	}
}

// collectJournal: the journal's own counters and its keeper's health.
func (m *metrics) collectJournal(ch chan<- prometheus.Metric) {
	k := m.agent.journal
	if k == nil {
		return
	}
	j, h := k.snapshot()
	if j != nil {
		if st, err := j.Stats(); err == nil {
			gauge(ch, descJournalPending, float64(st.Pending))
			ch <- prometheus.MustNewConstMetric(descJournalDropped, prometheus.CounterValue, float64(st.Dropped))
		}
	}
	gauge(ch, descJournalUp, b2f(h.Up))
	gauge(ch, descJournalHeld, float64(h.Unwritten))
	ch <- prometheus.MustNewConstMetric(descJournalErrors, prometheus.CounterValue, float64(h.Errors))
	ch <- prometheus.MustNewConstMetric(descJournalLost, prometheus.CounterValue, float64(h.Lost))
}

// collectNode: the snapshot's node families (pods without their truth by
// cause, and each configured source's health).
func collectNode(ch chan<- prometheus.Metric, s *lifecycle.Snapshot) {
	unknown := map[lifecycle.Cause]int{}
	for i := range s.Pods {
		if c := s.Pods[i].UnknownCause; c != lifecycle.CauseNone {
			unknown[c]++
		}
	}
	for _, c := range lifecycle.Causes {
		gauge(ch, descPodsUnknown, float64(unknown[c]), string(c))
	}
	for _, name := range lifecycle.SourceNames {
		h := s.Sources[name]
		if !h.Configured {
			continue
		}
		gauge(ch, descSourceUp, b2f(h.Up), name)
		if !h.LastSuccess.IsZero() {
			// To the millisecond, as it always was.
			ms, _ := strconv.ParseFloat(strconv.FormatFloat(float64(h.LastSuccess.UnixNano())/1e9, 'f', 3, 64), 64)
			gauge(ch, descSourceLastOK, ms, name)
		}
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// counter is a count the agent keeps, such as the transitions a slow watch
// client missed.
type counter struct{ n atomic.Uint64 }

// Inc adds one.
func (c *counter) Inc() { c.n.Add(1) }

// Add adds n.
func (c *counter) Add(n uint64) { c.n.Add(n) }

// counterVec is a count per label value. WithLabelValues(v).Inc() reads as
// client_golang's CounterVec does; a value asked for once is exported from
// then on, even at 0.
type counterVec struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	n    map[string]*counter
}

func newCounterVec(d *prometheus.Desc) *counterVec {
	return &counterVec{desc: d, n: map[string]*counter{}}
}

// WithLabelValues is the count of one label value.
func (v *counterVec) WithLabelValues(value string) *counter {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.n[value]
	if c == nil {
		c = &counter{}
		v.n[value] = c
	}
	return c
}

func (v *counterVec) collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for value, c := range v.n {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, float64(c.n.Load()), value)
	}
}

// histogram is a distribution the agent keeps: observations counted per
// bucket, by the value of at most one label, exported as const histograms.
// Without a label the one series is exported from the start; with one, a
// label value from its first observation (as client_golang's Histogram and
// HistogramVec).
type histogram struct {
	desc     *prometheus.Desc
	upper    []float64 // bucket upper bounds, ascending, +Inf implicit
	labelled bool

	mu     sync.Mutex
	series map[string]*histogramSeries
}

type histogramSeries struct {
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

func newHistogram(o prometheus.HistogramOpts, label ...string) *histogram {
	h := &histogram{desc: prometheus.NewDesc(o.Name, o.Help, label, nil), upper: o.Buckets, labelled: len(label) > 0,
		series: map[string]*histogramSeries{}}
	if !h.labelled {
		h.series[""] = &histogramSeries{counts: make([]uint64, len(h.upper))}
	}
	return h
}

// Observe adds one observation to the series without a label.
func (h *histogram) Observe(v float64) { h.observe("", v) }

// histogramLabel is one label value's series of a histogram.
type histogramLabel struct {
	h     *histogram
	value string
}

// WithLabelValues is the series of one label value.
func (h *histogram) WithLabelValues(value string) histogramLabel { return histogramLabel{h, value} }

// Observe adds one observation.
func (l histogramLabel) Observe(v float64) { l.h.observe(l.value, v) }

func (h *histogram) observe(label string, v float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[label]
	if s == nil {
		s = &histogramSeries{counts: make([]uint64, len(h.upper))}
		h.series[label] = s
	}
	// A bucket counts observations up to and including its bound.
	if i, _ := slices.BinarySearch(h.upper, v); i < len(h.upper) {
		s.counts[i]++
	}
	s.sum += v
	s.count++
}

func (h *histogram) collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for label, s := range h.series {
		buckets := make(map[float64]uint64, len(h.upper))
		var cum uint64
		for i, le := range h.upper {
			cum += s.counts[i]
			buckets[le] = cum
		}
		var labels []string
		if h.labelled {
			labels = []string{label}
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, s.count, s.sum, buckets, labels...)
	}
}
