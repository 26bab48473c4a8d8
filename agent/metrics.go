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
	podLabels          = []string{"namespace", "pod", "uid"}
	descPodPhase       = desc("pod_phase", "The pod's phase as the kubelet reports it (1 for the current phase).", append(podLabels, "phase")...)
	descPodStage       = desc("pod_stage", "The pod's lifecycle stage (1 for the current stage).", append(podLabels, "stage")...)
	descPodCondition   = desc("pod_condition", "The pod's conditions (1 for the current status).", append(podLabels, "condition", "status")...)
	descContainerState = desc("container_state", "The container's state (1 for the current state).", append(podLabels, "container", "state")...)
	descWaitingReason  = desc("container_waiting_reason", "Why the container is waiting (1 while it waits for that reason).", append(podLabels, "container", "reason")...)
	descLastTermReason = desc("container_last_terminated_reason", "Why the container last terminated.", append(podLabels, "container", "reason")...)
	descLastExitCode   = desc("container_last_exit_code", "The exit code of the container's last termination.", append(podLabels, "container")...)
	descRestarts       = desc("container_restarts_total", "Container restarts as the kubelet counts them.", append(podLabels, "container")...)
	descMismatches     = desc("view_mismatches", "Disagreements between the kubelet's and the runtime's views, by kind.", append(podLabels, "kind")...)
	descPodsUnknown    = desc("pods_unknown", "Pods whose truth is incomplete, by cause.", "cause")
	descSourceUp       = desc("source_up", "Whether the source answered its last request.", "source")
	descSourceLast     = desc("source_last_success_timestamp_seconds", "When the source last answered.", "source")
	descJournalPending = desc("journal_pending", "Journaled transitions not yet delivered upstream.")
	descJournalDropped = desc("journal_dropped_total", "Undelivered transitions dropped because the journal was full or they were too old.")
	descEvents         = desc("upstream_events_total", "Journal entries handled by the event reporter, by outcome (delivered, skipped, suppressed, rejected).", "outcome")
	descEventFailures  = desc("upstream_event_failures_total", "Failed event deliveries (retried).")
)

// metrics holds the agent's registry: a collector that builds const metrics
// from the current snapshot at scrape time, plus event counters.
type metrics struct {
	agent           *Agent
	registry        *prometheus.Registry
	transitions     *prometheus.CounterVec
	watchDropped    prometheus.Counter
	requestDuration *prometheus.HistogramVec
	startup         prometheus.Histogram
	startupStep     *prometheus.HistogramVec
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
	}
	for _, k := range lifecycle.TransitionKinds {
		m.transitions.WithLabelValues(string(k))
	}
	m.registry.MustRegister(m, m.transitions, m.watchDropped, m.requestDuration, m.startup, m.startupStep,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPodPhase, descPodStage, descPodCondition, descContainerState, descWaitingReason,
		descLastTermReason, descLastExitCode, descRestarts, descMismatches, descPodsUnknown, descSourceUp, descSourceLast,
		descJournalPending, descJournalDropped, descEvents, descEventFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from the current snapshot.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	if s := m.agent.Snapshot(); s != nil {
		collectSnapshot(s, ch)
	}
	if j := m.agent.opts.Journal; j != nil {
		if st, err := j.Stats(); err == nil {
			gauge(ch, descJournalPending, float64(st.Pending))
			ch <- prometheus.MustNewConstMetric(descJournalDropped, prometheus.CounterValue, float64(st.Dropped))
		}
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

// collectSnapshot is the pure mapping from a snapshot to its metrics.
func collectSnapshot(s *lifecycle.Snapshot, ch chan<- prometheus.Metric) {
	unknown := map[lifecycle.Cause]int{}
	for i := range s.Pods {
		p := &s.Pods[i]
		pl := []string{p.Namespace, p.Name, p.UID}
		with := func(extra ...string) []string { return append(append([]string{}, pl...), extra...) }
		for _, ph := range phases {
			gauge(ch, descPodPhase, b2f(p.Phase == ph), with(string(ph))...)
		}
		for _, st := range lifecycle.Stages {
			gauge(ch, descPodStage, b2f(p.Stage == st), with(string(st))...)
		}
		for _, c := range p.Conditions {
			for _, v := range []string{"True", "False", "Unknown"} {
				gauge(ch, descPodCondition, b2f(c.Status == v), with(c.Type, v)...)
			}
		}
		for _, c := range p.Containers {
			for _, st := range containerStates {
				gauge(ch, descContainerState, b2f(c.State == st), with(c.Name, string(st))...)
			}
			if c.State == lifecycle.StateWaiting && c.Reason != "" {
				gauge(ch, descWaitingReason, 1, with(c.Name, c.Reason)...)
			}
			if c.LastState != nil && c.LastState.Kind == lifecycle.StateTerminated {
				gauge(ch, descLastTermReason, 1, with(c.Name, c.LastState.Reason)...)
				gauge(ch, descLastExitCode, float64(c.LastState.ExitCode), with(c.Name)...)
			} else if c.State == lifecycle.StateTerminated && c.ExitCode != nil {
				gauge(ch, descLastTermReason, 1, with(c.Name, c.Reason)...)
				gauge(ch, descLastExitCode, float64(*c.ExitCode), with(c.Name)...)
			}
			ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(c.RestartCount), with(c.Name)...)
		}
		counts := map[lifecycle.MismatchKind]int{}
		for _, mm := range p.Mismatches {
			counts[mm.Kind]++
		}
		for _, k := range lifecycle.MismatchKinds { // only the kinds present: absent means none
			if counts[k] > 0 {
				gauge(ch, descMismatches, float64(counts[k]), with(string(k))...)
			}
		}
		if p.UnknownCause != lifecycle.CauseNone {
			unknown[p.UnknownCause]++
		}
	}
	for _, c := range lifecycle.Causes {
		gauge(ch, descPodsUnknown, float64(unknown[c]), string(c))
	}
	for _, name := range []string{lifecycle.SourceRuntime, lifecycle.SourceKubelet, lifecycle.SourceAPIServer} {
		h := s.Sources[name]
		if !h.Configured {
			continue
		}
		gauge(ch, descSourceUp, b2f(h.Up), name)
		if !h.LastSuccess.IsZero() {
			gauge(ch, descSourceLast, float64(h.LastSuccess.UnixNano())/1e9, name)
		}
	}
}
