// Package agent wires podlife together: it runs the runtime and kubelet
// sources (and, when configured, the API server view), correlates on every
// change into a node snapshot, derives transitions, journals them, keeps a
// bounded history, and serves it all over HTTP and as Prometheus metrics.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// RuntimeSource is what the agent needs of the CRI source.
type RuntimeSource interface {
	Run(ctx context.Context) error
	State() cri.State
	Updates() <-chan struct{}
}

// KubeletSource is what the agent needs of the kubelet source.
type KubeletSource interface {
	Run(ctx context.Context) error
	State() kubelet.State
	Updates() <-chan struct{}
}

// Upstream is the optional connection to the API server.
type Upstream struct {
	View       *upstream.APIView
	Reporter   *upstream.Reporter
	Conditions *upstream.NodeConditions
	// Heartbeat, when set, keeps the node's heartbeat Lease.
	Heartbeat *upstream.Heartbeat
}

// Options are the agent's parts and limits.
type Options struct {
	Node    string
	Runtime RuntimeSource
	Kubelet KubeletSource
	// Journal, when set, records every transition before anything reports it.
	Journal *journal.Journal
	// OpenJournal, when Journal is nil, opens the journal: once in New, and
	// again, with backoff, until it succeeds. The agent closes a journal it
	// opened (Close).
	OpenJournal JournalOpener
	// MaxUnwritten bounds the transitions held in memory while the journal
	// cannot be written (0: DefaultMaxUnwritten).
	MaxUnwritten int
	Upstream     *Upstream
	// HistorySize bounds the node history and each pod's history.
	HistorySize int
	// Pprof serves /debug/pprof/ on the HTTP API.
	Pprof bool
	// MaxRequestsInFlight bounds the API reads served at once and MaxWatches
	// the open transition watches; past them a request is refused with 429
	// (0: DefaultMaxRequestsInFlight, DefaultMaxWatches).
	MaxRequestsInFlight int
	MaxWatches          int
	// StuckAfter raises StageStuck after this long in a transient stage (0: off).
	StuckAfter time.Duration
	// BlackBox configures the crash black box (it needs a journal).
	BlackBox BlackBoxOptions
	// PodMetrics is the pod metrics mode: PodMetricsPodlife (the default,
	// also for "") or PodMetricsKSM.
	PodMetrics string
	// MismatchGrace is how long the kubelet's copy may lag the runtime
	// before it is a mismatch (0: lifecycle.DefaultMismatchGrace).
	MismatchGrace time.Duration
	Log           *slog.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time
}

// Agent is one node's podlife.
type Agent struct {
	opts     Options
	journal  *journalKeeper // nil without a journal
	box      *blackBox      // nil without a journal, or with capture off
	wake     chan struct{}  // the reporter: new journal entries or black boxes
	metrics  *metrics
	admit    *admission
	scrapes  singleflight.Group // concurrent /metrics scrapes share one rendering
	podText  podMetrics         // the metrics' pod families
	podJSON  podsCache          // the pods of GET /api/v1/pods
	podsGzip snapshotCache      // GET /api/v1/pods gzipped
	views    viewJSONCache

	corrMu sync.Mutex
	corr   lifecycle.Correlator // reuses unchanged pods' views between correlations

	clockMu   sync.Mutex
	lastSeen  time.Time // the latest observedAt recorded
	clockBack bool      // the clock is behind lastSeen (it stepped back)

	mu       sync.RWMutex
	snap     *lifecycle.Snapshot
	seq      uint64
	history  []Record            // node-wide ring, oldest first
	pods     map[string][]Record // per pod UID
	watchers map[*watcher]struct{}
	clock    lifecycle.StageClock
	reported lifecycle.Reported // container transitions already recorded
	started  map[string]startup // pods whose start-up this agent follows
	// startupsSeen are the pods of the last snapshot observeStartups saw.
	startupsSeen []*lifecycle.PodView
	lastOK       map[string]time.Time
}

// New builds an agent.
func New(opts Options) *Agent {
	if opts.HistorySize <= 0 {
		opts.HistorySize = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxRequestsInFlight <= 0 {
		opts.MaxRequestsInFlight = DefaultMaxRequestsInFlight
	}
	if opts.MaxWatches <= 0 {
		opts.MaxWatches = DefaultMaxWatches
	}
	a := &Agent{opts: opts, pods: map[string][]Record{}, watchers: map[*watcher]struct{}{},
		started: map[string]startup{}, lastOK: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	if opts.Journal != nil || opts.OpenJournal != nil {
		a.journal = newJournalKeeper(opts.Journal, opts.OpenJournal, opts.MaxUnwritten, opts.Log, opts.Now())
		if opts.BlackBox.on() {
			a.box = newBlackBox(opts.BlackBox, a.journal, opts.Log, opts.Now)
			a.box.kept = a.wakeReporter // an Event may wait for its lines
		}
	}
	a.admit = newAdmission(opts.MaxRequestsInFlight, opts.MaxWatches, opts.Log)
	a.metrics = newMetrics(a)
	a.podText.families = podFamiliesOf(opts.PodMetrics)
	a.podJSON.render = a.views.render
	a.seedClock()
	return a
}

// seedClock lets the stuck-stage clock go on from where the journal left it,
// once the journal is open: at start, or later when it could not be opened
// then. Called with a.mu held (or before the agent runs).
func (a *Agent) seedClock() {
	if a.journal == nil {
		return
	}
	stages, err := a.journal.takeStages()
	if err != nil {
		a.opts.Log.Warn("stage clock goes on without the journal's stages: unreadable", "err", err.Error())
		return
	}
	a.clock.Seed(stages)
}

// Run runs the sources and correlates until ctx is done.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(func(ctx context.Context) { a.opts.Runtime.Run(ctx) })
	run(func(ctx context.Context) { a.opts.Kubelet.Run(ctx) })
	if a.box != nil {
		run(a.box.run)
	}
	var apiUpdates <-chan struct{}
	if u := a.opts.Upstream; u != nil {
		run(u.View.Run)
		apiUpdates = u.View.Updates()
		if u.Reporter != nil {
			run(func(ctx context.Context) { u.Reporter.Run(ctx, a.wake) })
		}
		if u.Heartbeat != nil {
			run(a.heartbeat)
		}
	}
	// Staleness, graces and stuck stages move with time alone: every tick
	// correlates, whether or not a source changed (lifecycle.Correlator
	// keeps that cheap: it builds again only the views that changed or that
	// change with time).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-a.opts.Runtime.Updates():
			a.coalesce(apiUpdates)
		case <-a.opts.Kubelet.Updates():
			a.coalesce(apiUpdates)
		case <-apiUpdates:
		case <-tick.C:
			if a.journal != nil {
				a.journal.retry(a.opts.Now())
			}
			if a.box != nil {
				a.box.keep(nil) // what was held while the journal was down
			}
		}
		if a.Correlate(ctx) {
			a.wakeReporter()
		}
	}
}

// wakeReporter tells the Events reporter there is something new to look at.
func (a *Agent) wakeReporter() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Correlate builds a new snapshot from the sources, records its transitions
// and reports whether there were any.
func (a *Agent) Correlate(ctx context.Context) bool {
	now := a.opts.Now()
	rs, ks := a.opts.Runtime.State(), a.opts.Kubelet.State()
	if a.box != nil {
		a.box.observe(rs.Containers)
	}
	// Until both sources have been asked once, "no answer yet" is not "down".
	attempted := func(h lifecycle.SourceHealth) bool { return !h.LastSuccess.IsZero() || h.LastError != "" }
	if !attempted(rs.Health) || !attempted(ks.Health) {
		return false
	}
	in := lifecycle.Input{Node: a.opts.Node, Now: now, Pods: ks.Pods, PodsGeneration: ks.Generation, Kubelet: ks.Health,
		Sandboxes: rs.Sandboxes, Containers: rs.Containers, RuntimeGeneration: rs.Generation, Runtime: rs.Health, RuntimeName: rs.RuntimeName,
		KubeletLink: ks.Link, MismatchGrace: a.opts.MismatchGrace, Readiness: ks.Readiness,
		PodsChanges: ks.Changes, RuntimeChanges: rs.Changes}
	if u := a.opts.Upstream; u != nil {
		in.APIServer, in.APIPods, in.APINode = u.View.Health(), u.View.Pods(), u.View.Node()
		in.KubeletLink = linkFromLease(in.KubeletLink, u.View.Lease(), in.APIServer, now)
	}
	start := time.Now()
	a.corrMu.Lock()
	snap := a.corr.Correlate(in)
	a.corrMu.Unlock()
	a.mu.Lock()
	prev := a.snap
	trs := lifecycle.Diff(prev, &snap)
	a.metrics.correlation.Observe(time.Since(start).Seconds())
	a.seedClock()
	trs = append(trs, a.clock.Stuck(&snap, a.opts.StuckAfter)...)
	trs = a.reported.Fresh(trs) // a start or exit reported again is not news twice
	a.snap = &snap
	a.observeSources(&snap)
	a.observeStartups(&snap)
	a.mu.Unlock()
	if len(trs) > 0 {
		a.journalAndRecord(now, trs)
	}
	a.syncConditions(ctx, snap.Sources, in.APIServer.Up, len(trs) > 0, now)
	return len(trs) > 0
}

// syncConditions patches podlife's node conditions after a correlation that
// changed something (Sync patches only what changed), and again when a patch
// failed RetryAfter ago, so that a quiet node's conditions still land.
func (a *Agent) syncConditions(ctx context.Context, sources map[string]lifecycle.SourceHealth, apiUp, changed bool, now time.Time) {
	u := a.opts.Upstream
	if u == nil || u.Conditions == nil || !apiUp || !(changed || u.Conditions.Due(now)) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := u.Conditions.Sync(cctx, sources, now); err != nil {
		a.opts.Log.Warn("node conditions not updated", "err", err.Error())
	}
}

// linkFromLease adds to what the kubelet's metrics say of its link to the
// API server what its node Lease says: a Lease not renewed for its whole
// duration, read from an API server podlife reaches, means the kubelet cannot
// reach it (the kubelet renews every quarter of the duration).
func linkFromLease(link lifecycle.KubeletLink, l upstream.NodeLease, api lifecycle.SourceHealth, now time.Time) lifecycle.KubeletLink {
	if link.CutOff || l.RenewTime.IsZero() || l.Duration <= 0 || !api.Up || now.Sub(l.RenewTime) <= l.Duration {
		return link
	}
	return lifecycle.KubeletLink{CutOff: true, Since: l.RenewTime,
		Evidence: fmt.Sprintf("the node's Lease has not been renewed since %s (duration %s)", l.RenewTime.UTC().Format(time.RFC3339), l.Duration)}
}

// coalesceWindow bounds how long a correlation waits for a burst of changes
// to settle (coalesce). At one P a yield may give the thread to another
// goroutine for its whole turn, so the bound is checked between yields.
const coalesceWindow = 3 * time.Millisecond

// coalesce lets changes on their way become one correlation (a restart is a
// stop and a start event, read together): it yields the thread to the
// goroutines ready to run, a source applying the next event it received,
// until two yields in a row bring no change, for at most coalesceWindow. It
// used to sleep the whole window: every correlation was then one more
// wake-up of the agent's thread, which cost more than the correlations it
// saved (BENCHMARKS.md, "Coalescing").
func (a *Agent) coalesce(api <-chan struct{}) {
	settle([]<-chan struct{}{a.opts.Runtime.Updates(), a.opts.Kubelet.Updates(), api}, runtime.Gosched,
		time.Now().Add(coalesceWindow), time.Now)
}

// settle calls yield until two calls in a row bring no signal on chans, or
// until now reaches the deadline, consuming the signals; it returns how many
// times it yielded.
func settle(chans []<-chan struct{}, yield func(), deadline time.Time, now func() time.Time) int {
	n := 0
	for quiet := 0; quiet < 2 && now().Before(deadline); n++ {
		yield()
		quiet++
		for _, ch := range chans {
			select {
			case <-ch:
				quiet = 0
			default:
			}
		}
	}
	return n
}

// journalAndRecord journals transitions, then records them. A journal that
// cannot take them now has them held in memory, in order, until it can: the
// agent goes on serving either way.
func (a *Agent) journalAndRecord(now time.Time, trs []lifecycle.Transition) {
	a.inOrder(trs)
	if a.journal != nil {
		a.journal.write(now, trs)
	}
	a.record(trs)
}

// inOrder keeps observation times in sequence order. A transition's
// observedAt is the clock's time at the correlation that saw it; when the
// wall clock steps back, that would be before the previous transition's, so
// it takes the previous one's instead until the clock has caught up: in the
// history, the journal, the stream and ?since=, sequence order is time order.
// A step forward is taken as it comes (times jump ahead, as after a pause).
// happenedAt is the sources' own and stays as they say. The correlation
// itself (staleness, graces) runs on the clock as it is. Said once per step.
func (a *Agent) inOrder(trs []lifecycle.Transition) {
	a.clockMu.Lock()
	defer a.clockMu.Unlock()
	for i := range trs {
		t := &trs[i]
		t.ObservedAt = t.ObservedAt.Round(0) // the wall clock: a monotonic reading would hide the step
		if t.ObservedAt.Before(a.lastSeen) {
			if !a.clockBack {
				a.clockBack = true
				a.opts.Log.Warn("clock stepped back: transitions keep the last observation time until it catches up",
					"by", a.lastSeen.Sub(t.ObservedAt).String(), "holding", a.lastSeen.UTC().Format(time.RFC3339Nano))
			}
			t.ObservedAt = a.lastSeen
			continue
		}
		if a.clockBack && t.ObservedAt.After(a.lastSeen) {
			a.clockBack = false
			a.opts.Log.Info("clock caught up after stepping back", "at", t.ObservedAt.UTC().Format(time.RFC3339Nano))
		}
		a.lastSeen = t.ObservedAt
	}
}

// Close writes to the journal what it can and closes the journal if the
// agent opened it (Options.OpenJournal). Transitions the journal could not
// take are counted lost and logged.
func (a *Agent) Close() error {
	if a.journal == nil {
		return nil
	}
	return a.journal.close(a.opts.Now())
}

// JournalEntries is the journal as the upstream reporter reads it: nothing
// pending while it is not open.
func (a *Agent) JournalEntries() upstream.Journal {
	if a.journal == nil {
		return nil
	}
	return a.journal
}

// record appends transitions to the histories and fans them out.
func (a *Agent) record(trs []lifecycle.Transition) {
	a.mu.Lock()
	defer a.mu.Unlock()
	limit := a.opts.HistorySize
	for _, t := range trs {
		a.seq++
		r := Record{Seq: a.seq, Transition: t}
		a.history = appendBounded(a.history, r, limit)
		if t.UID != "" {
			a.pods[t.UID] = appendBounded(a.pods[t.UID], r, limit)
		}
		if t.Kind == lifecycle.TransitionPodRemoved {
			delete(a.pods, t.UID)
		}
		a.metrics.transitions.WithLabelValues(string(t.Kind)).Inc()
		for w := range a.watchers {
			w.offer(r, a.metrics.watchDropped)
		}
	}
}

// appendBounded appends r to a history that keeps the last limit records
// (read it with lastN). It holds up to an eighth more, so that dropping the
// oldest moves the history once every limit/8 appends rather than on each
// (a 1000-record node history moved 300 kB per transition).
func appendBounded(h []Record, r Record, limit int) []Record {
	if len(h) >= limit+max(limit/8, 1) {
		n := copy(h, h[len(h)-limit+1:])
		clear(h[n:]) // what was dropped is not kept alive
		h = h[:n]
	}
	return append(h, r)
}

// lastN is a bounded history's last limit records.
func lastN(h []Record, limit int) []Record {
	return h[max(len(h)-limit, 0):]
}

// observeSources feeds request latencies into the histogram, once per answer.
func (a *Agent) observeSources(s *lifecycle.Snapshot) {
	for name, h := range s.Sources {
		// A success with no latency timed no request (an API server heard
		// through its watches).
		if h.Configured && h.Latency > 0 && !h.LastSuccess.IsZero() && !h.LastSuccess.Equal(a.lastOK[name]) {
			a.lastOK[name] = h.LastSuccess
			a.metrics.requestDuration.WithLabelValues(name).Observe(h.Latency.Seconds())
		}
	}
}

// observeStartups measures, once per pod, creation to first Ready and its
// steps. It looks only at the views the last snapshot it saw did not hold.
func (a *Agent) observeStartups(s *lifecycle.Snapshot) {
	defer func() { a.startupsSeen = s.Pods }()
	for i := range s.Pods {
		if lifecycle.Unchanged(a.startupsSeen, s, i) {
			continue
		}
		p := s.Pods[i]
		st := a.started[p.UID]
		if p.Stage != lifecycle.StageServing {
			if st == startupUnseen {
				a.started[p.UID] = startupWatched
			}
			continue
		}
		a.started[p.UID] = startupDone
		// Only a start-up this agent watched is measured: a pod already
		// Serving when first seen (after an agent restart, say) started
		// before, and its Ready time may be a later flip.
		if st != startupWatched || p.Created.IsZero() {
			continue
		}
		for _, c := range p.Conditions {
			step := map[string]string{lifecycle.CondPodScheduled: "scheduled", lifecycle.CondInitialized: "initialized",
				lifecycle.CondContainersReady: "containers_ready", lifecycle.CondReady: "ready"}[c.Type]
			if step == "" || c.Status != "True" || c.LastTransitionTime.Before(p.Created) {
				continue
			}
			d := c.LastTransitionTime.Sub(p.Created).Seconds()
			if step == "ready" {
				a.metrics.startup.Observe(d)
			}
			a.metrics.startupStep.WithLabelValues(step).Observe(d)
		}
	}
	lifecycle.ForgetOthers(a.started, s)
}

// startup is where a pod's start-up stands for the startup metrics.
type startup uint8

const (
	startupUnseen  startup = iota
	startupWatched         // seen before it served
	startupDone            // serving: measured, or not to be
)

// Snapshot is the latest node snapshot (nil before the first correlation).
func (a *Agent) Snapshot() *lifecycle.Snapshot {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.snap
}

// Ready reports whether both local sources have answered at least once.
func (a *Agent) Ready() bool {
	s := a.Snapshot()
	return s != nil && s.Sources[lifecycle.SourceRuntime].Synced() && s.Sources[lifecycle.SourceKubelet].Synced()
}

// Since returns the node's transitions observed at or after t, oldest first.
func (a *Agent) Since(t time.Time) []Record {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := []Record{}
	for _, r := range lastN(a.history, a.opts.HistorySize) {
		if !r.ObservedAt.Before(t) {
			out = append(out, r)
		}
	}
	return out
}

// PodHistory returns one pod's recorded transitions, oldest first.
func (a *Agent) PodHistory(uid string) []Record {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]Record{}, lastN(a.pods[uid], a.opts.HistorySize)...)
}

// WatchBuffer is how many transitions a watcher may fall behind by. Past
// it the agent drops what the watcher cannot take, counts it, and tells the
// watcher it overflowed; it never waits for a watcher.
const WatchBuffer = 1024

// watcher is one subscriber to new transitions.
type watcher struct {
	ch chan Record
	// over is closed at the first transition the buffer had no room for;
	// from then on every transition is dropped (counted), none delivered,
	// so that what the watcher got is a gapless prefix.
	over    chan struct{}
	dropped uint64 // guarded by Agent.mu
}

// offer hands r to the watcher, or counts it dropped. Called with Agent.mu held.
func (w *watcher) offer(r Record, dropped interface{ Inc() }) {
	if w.dropped == 0 {
		select {
		case w.ch <- r:
			return
		default:
			close(w.over)
		}
	}
	w.dropped++
	dropped.Inc()
}

// Subscription is a stream of new transitions (Agent.Subscribe).
type Subscription struct {
	// C delivers transitions in order.
	C <-chan Record
	// Overflow is closed once the subscriber fell WatchBuffer behind: C then
	// holds what was delivered before, and nothing after.
	Overflow <-chan struct{}
	a        *Agent
	w        *watcher
}

// Subscribe starts a subscription to new transitions, with a buffer of
// WatchBuffer (or buffer, when positive).
func (a *Agent) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = WatchBuffer
	}
	w := &watcher{ch: make(chan Record, buffer), over: make(chan struct{})}
	a.mu.Lock()
	a.watchers[w] = struct{}{}
	a.mu.Unlock()
	return &Subscription{C: w.ch, Overflow: w.over, a: a, w: w}
}

// Stop ends the subscription and returns how many transitions it dropped.
// C keeps what was delivered before.
func (s *Subscription) Stop() (dropped uint64) {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	delete(s.a.watchers, s.w)
	return s.w.dropped
}
