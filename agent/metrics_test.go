package agent

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/podlife/podlife/lifecycle"
)

// nodeFamilies are the agent registry's families built from the snapshot.
var nodeFamilies = []string{"podlife_pods_unknown", "podlife_source_last_success_timestamp_seconds", "podlife_source_up"}

// snapshotText is the exposition of the families built from the snapshot:
// the pods' (as kept for scrapes), then the node's.
func snapshotText(t *testing.T, a *Agent) (pods, node []byte) {
	t.Helper()
	pods, err := a.podText.get(a.Snapshot().Pods)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs = slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return !slices.Contains(nodeFamilies, mf.GetName()) })
	var buf bytes.Buffer
	if err := encode(&buf, mfs); err != nil {
		t.Fatal(err)
	}
	return pods, buf.Bytes()
}

// gathered is the agent registry's families by name.
func gathered(t *testing.T, a *Agent) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := a.metrics.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

// The generated node's metrics match the golden exposition of each mode,
// parse, and lint clean.
func TestMetricsGolden(t *testing.T) {
	for _, tc := range []struct{ mode, golden string }{
		{PodMetricsPodlife, "metrics.golden"},
		{PodMetricsKSM, "metrics-ksm.golden"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			a, _ := generatedAgent(t, func(o *Options) { o.PodMetrics = tc.mode })
			checkExposition(t, a, tc.golden)
		})
	}
}

func checkExposition(t *testing.T, a *Agent, goldenFile string) {
	t.Helper()
	snap := a.Snapshot()
	pods, node := snapshotText(t, a)
	golden(t, goldenFile, append(slices.Clip(pods), node...))

	var full bytes.Buffer
	if err := a.exposition(&full); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(full.Bytes(), pods) || !strings.Contains(full.String(), "podlife_transitions_total") {
		t.Fatal("/metrics lacks the pod families or the registry's")
	}
	for _, family := range bytes.SplitAfter(node, []byte("\n# HELP ")) {
		if family = bytes.TrimSuffix(family, []byte("# HELP ")); !bytes.Contains(full.Bytes(), family) {
			t.Fatalf("/metrics lacks the node family %s", family)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(full.Bytes()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	if n := len(mfs["podlife_pod_stage"].GetMetric()); n != len(snap.Pods) {
		t.Fatalf("%d stage series, want one per pod (its current stage)", n)
	}
	problems, err := promlint.New(bytes.NewReader(full.Bytes())).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
	// The pod text is rendered once per snapshot, not per scrape.
	again, twice := a.podJSON.get(snap.Pods), a.podJSON.get(snap.Pods)
	if first, _ := a.podText.get(snap.Pods); &first[0] != &pods[0] || &again[0] != &twice[0] {
		t.Fatal("pod metrics re-rendered for an unchanged snapshot")
	}
}

// The pod families are gathered again only when a pod's view changed: a new
// snapshot of the same views (every correlation makes one) keeps the text,
// and a changed view, a pod gone or a pod come shows in the next scrape.
func TestPodMetricsFollowViews(t *testing.T) {
	a, _ := generatedAgent(t, func(o *Options) { o.PodMetrics = PodMetricsKSM }) // phase is KSM-compatible
	pods := a.Snapshot().Pods
	get := func(pods []*lifecycle.PodView) []byte {
		t.Helper()
		text, err := a.podText.get(pods)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}
	before := get(pods)
	if again := get(slices.Clone(pods)); &again[0] != &before[0] {
		t.Fatal("pod metrics gathered again for a new snapshot of the same views")
	}
	changed := slices.Clone(pods)
	i := slices.IndexFunc(changed, func(p *lifecycle.PodView) bool { return p.Phase == lifecycle.PhaseRunning })
	failed := *changed[i] // views are never modified: a new one
	failed.Phase = lifecycle.PhaseFailed
	changed[i] = &failed
	series := func(p *lifecycle.PodView, phase lifecycle.Phase) string {
		return `podlife_pod_phase{namespace="` + p.Namespace + `",phase="` + string(phase) + `",pod="` + p.Name + `",uid="` + p.UID + `"} `
	}
	if text := string(get(changed)); !strings.Contains(text, series(changed[i], lifecycle.PhaseFailed)+"1") ||
		!strings.Contains(text, series(changed[i], lifecycle.PhaseRunning)+"0") {
		t.Fatalf("a pod's new phase is not in the pod metrics:\n%s", text)
	}
	gone := slices.Delete(slices.Clone(pods), i, i+1)
	if text := string(get(gone)); strings.Contains(text, `uid="`+pods[i].UID+`"`) {
		t.Fatal("a gone pod's series are still exported")
	}
	if text := get(pods); !bytes.Equal(text, before) {
		t.Fatalf("the pods back: text differs from before:\n%s", text)
	}
}

// A pod whose strings are not valid UTF-8 (the kubelet's JSON can carry
// anything) is exported with each invalid sequence replaced, not a failed or
// panicking scrape.
func TestPodMetricsInvalidUTF8(t *testing.T) {
	a, _ := generatedAgent(t)
	pods := slices.Clone(a.Snapshot().Pods)
	pods[0].UID, pods[0].Name = "uid-\xff", "pod-\xfe"
	text, err := a.podText.get(pods)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "pod=\"pod-\uFFFD\",stage=\"Terminated\",uid=\"uid-\uFFFD\"") {
		t.Fatalf("no series of the pod with replaced labels:\n%s", text)
	}
}

// The agent's histograms export as client_golang's would, given the same
// observations (bounds count as inside their bucket).
func TestHistogramAsClientGolang(t *testing.T) {
	opts := prometheus.HistogramOpts{Name: "podlife_test_seconds", Help: "h", Buckets: []float64{.5, 1, 2.5}}
	ours, ref := newHistogram(opts, "l"), prometheus.NewHistogramVec(opts, []string{"l"})
	for _, v := range []float64{0, .1, .5, .50001, 1, 2.5, 3, 1e9} {
		ours.WithLabelValues("a").Observe(v)
		ref.WithLabelValues("a").Observe(v)
	}
	ours.WithLabelValues("b").Observe(2)
	ref.WithLabelValues("b").Observe(2)
	plain, refPlain := newHistogram(opts), prometheus.NewHistogram(opts) // exported before any observation
	for _, c := range []struct {
		name      string
		ours, ref prometheus.Collector
	}{{"labelled", collectorFunc(ours.collect), ref}, {"no label", collectorFunc(plain.collect), refPlain}} {
		got, want := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
		got.MustRegister(c.ours)
		want.MustRegister(c.ref)
		var g, w bytes.Buffer
		for _, x := range []struct {
			r   *prometheus.Registry
			buf *bytes.Buffer
		}{{got, &g}, {want, &w}} {
			mfs, err := x.r.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if err := encode(x.buf, mfs); err != nil {
				t.Fatal(err)
			}
		}
		if g.String() != w.String() {
			t.Errorf("%s: got\n%s\nwant (client_golang)\n%s", c.name, g.String(), w.String())
		}
	}
}

// collectorFunc is an unchecked collector (no Describe) of a collect func.
type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
