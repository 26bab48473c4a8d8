package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/podlife/podlife/lifecycle"
)

// phases are exported as 0/1 series over every value.
var phases = []lifecycle.Phase{lifecycle.PhasePending, lifecycle.PhaseRunning, lifecycle.PhaseSucceeded,
	lifecycle.PhaseFailed, lifecycle.PhaseUnknown}

var containerStates = []lifecycle.StateKind{lifecycle.StateWaiting, lifecycle.StateRunning,
	lifecycle.StateTerminated, lifecycle.StateUnknown}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("podlife_"+name, help, labels, nil)
}

var (
	descJournalPending = desc("journal_pending", "Journaled transitions not yet delivered upstream.")
	descJournalDropped = desc("journal_dropped_total", "Undelivered transitions dropped because the journal was full or they were too old.")
	descJournalUp      = desc("journal_up", "Whether the journal is open and its last write succeeded (0: transitions are held in memory until it can be written).")
	descJournalErrors  = desc("journal_errors_total", "Failed opens of and writes to the journal.")
	descJournalHeld    = desc("journal_unwritten", "Transitions held in memory because the journal could not take them yet.")
	descJournalLost    = desc("journal_lost_total", "Transitions never journaled: held in memory past the bound while the journal was down, or when the agent stopped.")
	descEvents         = desc("upstream_events_total", "Journal entries handled by the event reporter, by outcome (delivered, skipped, suppressed, rejected).", "outcome")
	descEventFailures  = desc("upstream_event_failures_total", "Failed event deliveries (retried).")
	descHTTPInFlight   = desc("http_requests_in_flight", "Requests being served, by admission class (api: pods, one pod, transitions, journal; watch: transition watches).", "class")
	descHTTPRejected   = desc("http_requests_rejected_total", "Requests refused with 429 because their admission class was at its limit (max-requests-inflight, max-watches).", "class")
	descKubeletTLS     = desc("kubelet_tls_verified", "Whether the last connection to the kubelet was verified (1) or not (0: kubelet-insecure-skip-verify, plain HTTP, or verification failed), by how it is checked (mode).", "mode")
	descKubeletMode    = desc("kubelet_source_mode", "How the kubelet is read (1 for the mode in use): pods-api, its own live status over the Pods API (Kubernetes 1.37+), or pods-http, /pods (the API server's copy of API-managed pods' status).", "mode")
)

// metrics holds the agent's registry: event counters, histograms, the Go
// and process collectors, and a collector of the journal and reporter
// counters. The snapshot's families are written by exposition.go.
type metrics struct {
	agent           *Agent
	registry        *prometheus.Registry
	transitions     *prometheus.CounterVec
	watchDropped    prometheus.Counter
	requestDuration *prometheus.HistogramVec
	startup         prometheus.Histogram
	startupStep     *prometheus.HistogramVec
	correlation     prometheus.Histogram
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{agent: a, registry: prometheus.NewRegistry(),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "podlife_transitions_total",
			Help: "Transitions observed, by kind."}, []string{"kind"}),
		watchDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "podlife_watch_dropped_total",
			Help: "Transitions not delivered to a slow watch client."}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podlife_source_request_duration_seconds",
			Help:    "Duration of a source's requests (a CRI relist, a kubelet /pods poll, an API server probe).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"source"}),
		startup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "podlife_pod_startup_duration_seconds",
			Help: "Pod creation to first Ready.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)}),
		startupStep: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "podlife_pod_startup_step_duration_seconds",
			Help:    "Pod creation to each start-up condition turning True (scheduled, initialized, containers_ready, ready).",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)}, []string{"step"}),
		correlation: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "podlife_correlation_duration_seconds",
			Help:    "Duration of one correlation of the node: join, classification and diff.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 8)}),
	}
	for _, k := range lifecycle.TransitionKinds {
		m.transitions.WithLabelValues(string(k))
	}
	m.registry.MustRegister(m, m.transitions, m.watchDropped, m.requestDuration, m.startup, m.startupStep, m.correlation,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJournalPending, descJournalDropped, descJournalUp, descJournalErrors, descJournalHeld,
		descJournalLost, descEvents, descEventFailures, descKubeletTLS, descKubeletMode, descHTTPInFlight, descHTTPRejected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: admission, the journal and
// reporter counters, and whether the kubelet is verified.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
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
	if k := m.agent.journal; k != nil {
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
	if u := m.agent.opts.Upstream; u != nil && u.Reporter != nil {
		st := u.Reporter.Stats()
		for outcome, v := range map[string]uint64{"delivered": st.Delivered, "skipped": st.Skipped,
			"suppressed": st.Suppressed, "rejected": st.Rejected} {
			ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(v), outcome)
		}
		ch <- prometheus.MustNewConstMetric(descEventFailures, prometheus.CounterValue, float64(st.Failures))
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
