package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// Controller is the reportingController of podlife's Events.
const Controller = "podlife"

// ReporterConfig tunes event delivery.
type ReporterConfig struct {
	// Node is this node's name: the reportingInstance, and the subject of
	// node-level events.
	Node string
	// Batch is how many journal entries one round reads (default 100).
	Batch int
	// RetryMin and RetryMax bound the backoff after a failed delivery; each
	// wait is drawn between half the backoff and all of it, so that agents
	// cut off together do not retry together.
	RetryMin, RetryMax time.Duration
	// DeliveryJitter, when positive: after failed deliveries, the backlog
	// waits a random time below this (and below the outage's length) before
	// it is tried again, drawn again after each failure, so that the agents
	// of a healed rack do not all deliver in the same second: not even the
	// first Event, nor the series held in memory (APIUp lags a heal by up
	// to a probe interval, so it cannot say when to draw).
	DeliveryJitter time.Duration
	// LogLines, when positive, puts up to that many of the last lines the
	// crash black box kept of an ended attempt into its Event's note
	// (Reporter.LastLines). Off by default: log lines can hold secrets,
	// and whoever may list Events in the namespace would read them.
	LogLines int
	// LinesWait bounds how long, after the exit was observed, its Event
	// waits for the attempt's capture (default 5 s); after that it goes
	// without lines. Later Events wait behind it: order is kept.
	LinesWait time.Duration
}

func (c *ReporterConfig) defaults() {
	if c.Batch <= 0 {
		c.Batch = 100
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.LinesWait <= 0 {
		c.LinesWait = 5 * time.Second
	}
}

// ReporterStats count what the reporter did.
type ReporterStats struct {
	Delivered uint64 // events created (or found already created)
	Skipped   uint64 // journal entries that are not worth an event
	Folded    uint64 // journal entries counted into an Event's series (a repeat of its pod and reason)
	Rejected  uint64 // events the API server refused for good (invalid, namespace gone)
	Failures  uint64 // failed delivery attempts (retried)
	// PartitionSince is when deliveries started failing (zero when healthy).
	PartitionSince time.Time
	// LastPartition is when the last partition that healed began, and
	// LastPartitionSummary its length and what the pods did meanwhile.
	LastPartition        time.Time
	LastPartitionSummary string
}

// Reporter delivers journaled transitions to the API server as
// events.k8s.io/v1 Events, in journal order, at least once. Each event is
// named after its journal entry, so a retry after a lost answer or an agent
// restart finds the event already there instead of creating a duplicate.
// A repeat of an Event's pod, reason and type within SeriesWindow is counted
// into that Event's series, as client-go's events/v1 recorder does: a crash
// loop is one Event with a count (MaxSeries at most). A round's repeats are
// written once per series at its end, before the round's entries are
// acknowledged: nothing acknowledged is only in memory.
type Reporter struct {
	cs  EventCreator
	j   Journal
	cfg ReporterConfig
	log *slog.Logger
	// Now is the clock (tests replace it).
	Now func() time.Time

	mu     sync.Mutex
	stats  ReporterStats
	series map[seriesKey]*series
	newest time.Time // the newest Event time folded or started
	// partition accounting, per pod UID, while deliveries fail and until the
	// backlog has drained.
	partition map[string]*podPartition
	// kubelet-cut accounting, per pod UID, from the journaled SourceDown of
	// the kubelet's link to the API server until its SourceUp.
	kubeletCutSince time.Time
	kubeletCut      map[string]*podPartition
	// The last entry counted into each window: an entry tried again after
	// a failure is counted once.
	partitionSeq, kubeletCutSeq uint64
	// Running, when set, tells how many of a pod's containers run now
	// (for the partition summary).
	Running func(uid string) (running, total int)
	// APIUID, when set, maps the UID the kubelet knows a pod by to the UID
	// of the API server's object for it: a static pod's config hash to its
	// mirror pod's UID, so that kubectl describe shows the Events.
	APIUID func(uid string) string
	// LastLines, with ReporterConfig.LogLines, returns the last lines the
	// crash black box kept of the attempt an exit transition ended, and
	// whether that attempt's capture is kept yet.
	LastLines func(t lifecycle.Transition) (lines []string, kept bool)

	linesDue time.Time // when the Event waiting for its lines goes without them
	// resumeAt holds the backlog back after the first delivery that followed
	// failures (DeliveryJitter); jittered says it was drawn for this outage.
	resumeAt time.Time
	jittered bool
	// APIUp, when set, tells whether the API server answers (the API
	// view's health): while deliveries fail, only then does a wake-up retry
	// before the backoff ends.
	APIUp func() bool
	// Rand draws a duration in [0, n) (tests replace it).
	Rand func(n time.Duration) time.Duration
}

// errLinesPending stops a delivery round at an Event whose attempt's last
// lines are not captured yet (ReporterConfig.LogLines).
var errLinesPending = errors.New("waiting for the attempt's last lines")

type podPartition struct {
	ref      corev1.ObjectReference
	restarts int
	exits    int
	lastExit string
}

// Journal is what the reporter needs of the journal (a *journal.Journal, or
// the agent's keeper of it).
type Journal interface {
	// Pending returns up to limit undelivered entries, oldest first.
	Pending(limit int) ([]journal.Entry, error)
	// Ack marks every entry up to seq delivered.
	Ack(seq uint64) error
}

// NewReporter builds a reporter over a journal; cs is usually a *Client.
func NewReporter(cs EventCreator, j Journal, cfg ReporterConfig, log *slog.Logger) *Reporter {
	cfg.defaults()
	return &Reporter{cs: cs, j: j, cfg: cfg, log: log, Now: time.Now, Rand: rand.N[time.Duration],
		series: map[seriesKey]*series{}, partition: map[string]*podPartition{}, kubeletCut: map[string]*podPartition{}}
}

// Stats returns the reporter's counters.
func (r *Reporter) Stats() ReporterStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run delivers until ctx is done: whenever wake is signalled, and with capped
// exponential backoff while the API server fails. While it backs off, a wake
// cuts the wait short only if APIUp says the API server answers again: new
// transitions alone do not make an agent ask a failing API server sooner.
func (r *Reporter) Run(ctx context.Context, wake <-chan struct{}) {
	backoff := time.Duration(0)
	for {
		n, err := r.DeliverOnce(ctx)
		wait := 5 * time.Second // also retry periodically without a wake-up
		woken := wake
		switch {
		case err != nil:
			backoff = min(max(backoff*2, r.cfg.RetryMin), r.cfg.RetryMax)
			wait = backoff/2 + r.Rand(backoff/2+1)
			// The API server's Retry-After (a 429, or a 5xx that names one)
			// is a floor that new transitions do not cut short.
			if s, ok := apierrors.SuggestsClientDelay(err); ok && time.Duration(s)*time.Second > wait {
				wait, woken = time.Duration(s)*time.Second, nil
			}
			r.log.Warn("event delivery failed; will retry", "err", oneLine(err), "retryIn", wait)
		case n == r.cfg.Batch:
			backoff, wait = 0, 0 // more pending
		default:
			backoff = 0
			for _, due := range []time.Time{r.waitingForLines(), r.resumeAt} {
				if !due.IsZero() {
					wait = min(wait, max(due.Sub(r.Now()), 10*time.Millisecond))
				}
			}
		}
		if !r.sleep(ctx, wait, woken, err != nil) {
			return
		}
	}
}

// sleep waits wait, or until woken; after a failure a wake counts only once
// the API server answers again. It reports false when ctx is done.
func (r *Reporter) sleep(ctx context.Context, wait time.Duration, woken <-chan struct{}, failed bool) bool {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-woken:
			if failed && r.APIUp != nil && !r.APIUp() {
				continue
			}
			return true
		case <-t.C:
			return true
		}
	}
}

// DeliverOnce delivers up to one batch of pending entries in order and
// acknowledges each as soon as it is delivered. It stops at the first
// entry that cannot be delivered now, so order is kept.
func (r *Reporter) DeliverOnce(ctx context.Context) (int, error) {
	if r.holdBacklog() {
		return 0, nil // after failures, every retry waits its turn first
	}
	if !r.resumeAt.IsZero() {
		if r.Now().Before(r.resumeAt) {
			return 0, nil // Run waits until resumeAt
		}
		r.resumeAt = time.Time{}
	}
	pending, err := r.j.Pending(r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	n, err := r.deliverAll(ctx, pending)
	// The repeats folded into series are written before any entry is
	// acknowledged: an entry is delivered when the API server has it.
	if ferr := r.flushSeries(ctx); ferr != nil {
		// The repeats of a crash loop fold into series: a cut may show
		// here first, and its backlog then waits its turn as any other.
		if err == nil && len(pending) > 0 {
			r.failed(ferr, pending[0].Transition.ObservedAt)
		}
		return 0, ferr
	}
	if n > 0 {
		if aerr := r.j.Ack(pending[n-1].Seq); aerr != nil {
			return 0, aerr
		}
	}
	if err != nil || n < len(pending) {
		return n, err
	}
	if len(pending) < r.cfg.Batch {
		if err := r.finishPartition(ctx); err != nil {
			return len(pending), err
		}
	}
	return len(pending), nil
}

// deliverAll delivers entries in order until one fails or waits for its
// lines, and returns how many were delivered.
func (r *Reporter) deliverAll(ctx context.Context, pending []journal.Entry) (int, error) {
	for i, e := range pending {
		err := r.deliver(ctx, e)
		if errors.Is(err, errLinesPending) {
			return i, nil // woken when the capture is kept, or at linesDue
		}
		if err != nil {
			r.failed(err, e.Transition.ObservedAt)
			return i, err
		}
	}
	return len(pending), nil
}

// failed records a delivery that failed: unless the API server throttled it
// (a 429 with Retry-After: nothing cut it off), a partition starts at the
// oldest transition not delivered, if none has. A wait drawn before it was
// drawn while the API server only seemed back (APIUp lags a cut): it is
// drawn again when it is.
func (r *Reporter) failed(err error, oldest time.Time) {
	r.mu.Lock()
	r.stats.Failures++
	if _, throttled := apierrors.SuggestsClientDelay(err); !throttled && r.stats.PartitionSince.IsZero() {
		r.stats.PartitionSince = oldest
	}
	r.mu.Unlock()
	r.jittered = false
}

// holdBacklog, before the first try that follows a failure, draws the wait
// before the backlog (DeliveryJitter) and reports whether there is one.
func (r *Reporter) holdBacklog() bool {
	r.mu.Lock()
	since := r.stats.PartitionSince
	r.mu.Unlock()
	if since.IsZero() || r.jittered || r.cfg.DeliveryJitter <= 0 {
		return false
	}
	r.jittered = true
	now := r.Now()
	limit := min(r.cfg.DeliveryJitter, now.Sub(since))
	if limit <= 0 {
		return false
	}
	r.resumeAt = now.Add(r.Rand(limit))
	r.log.Info("API server reached again; the backlog waits its turn", "until", r.resumeAt.Format(time.RFC3339Nano))
	return true
}

// deliver turns one entry into an event (or decides it is not worth one).
func (r *Reporter) deliver(ctx context.Context, e journal.Entry) error {
	ev, ok := r.eventFor(e)
	var lines []string
	if ok && endsAttempt(ev.Reason) {
		var err error
		if lines, err = r.lastLines(e.Transition); err != nil {
			return err
		}
	}
	r.account(e)
	if !ok {
		r.mu.Lock()
		r.stats.Skipped++
		r.mu.Unlock()
		return nil
	}
	ev.Note = withLines(ev.Note, lines, noteLimit)
	joined, ended := r.fold(e.Seq, e.ID, ev)
	if ended != nil {
		if err := r.writeSeries(ctx, ended); err != nil {
			return err
		}
	}
	if !joined {
		ev.Annotations = map[string]string{AnnotationSeqs: fmt.Sprint(e.Seq)}
		if err := r.create(ctx, ev); err != nil {
			return err
		}
		r.started(e.Seq, e.ID, ev)
	}
	if t := e.Transition; t.Kind == lifecycle.TransitionSourceUp && t.Source == lifecycle.SourceKubeletLink {
		return r.finishKubeletCut(ctx)
	}
	return nil
}

// lastLines returns the lines to put in the Event of exit transition t:
// none unless ReporterConfig.LogLines is set; errLinesPending while the
// attempt's capture is not kept and LinesWait has not passed since t was
// observed.
func (r *Reporter) lastLines(t lifecycle.Transition) ([]string, error) {
	if r.cfg.LogLines <= 0 || r.LastLines == nil {
		return nil, nil
	}
	lines, kept := r.LastLines(t)
	due := t.ObservedAt.Add(r.cfg.LinesWait)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !kept && r.Now().Before(due) {
		r.linesDue = due
		return nil, errLinesPending
	}
	r.linesDue = time.Time{}
	return lines[max(0, len(lines)-r.cfg.LogLines):], nil
}

// waitingForLines is when the Event waiting for its lines goes without them
// (zero when none waits).
func (r *Reporter) waitingForLines() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.linesDue
}

// noteLimit is the most an Event's note may hold, in bytes
// (kubernetes/kubernetes pkg/apis/core/validation/events.go,
// NoteLengthLimit, checked as len(event.Message)).
const noteLimit = 1024

// withLines appends the last of lines that fit in limit bytes to note,
// newest kept first, each line cut at 256 bytes; the note is cut to limit
// first when it is over.
func withLines(note string, lines []string, limit int) string {
	note = truncate(note, limit)
	const head, sep = "; ended with: ", " | "
	room := limit - len(note) - len(head)
	var kept []string
	for i := len(lines) - 1; i >= 0; i-- {
		l := truncate(lines[i], 256)
		if len(l)+len(sep) > room {
			break
		}
		room -= len(l) + len(sep)
		kept = append(kept, l)
	}
	if len(kept) == 0 {
		return note
	}
	slices.Reverse(kept)
	return note + head + strings.Join(kept, sep)
}

// create creates an event; an event that already exists was delivered by an
// earlier attempt.
func (r *Reporter) create(ctx context.Context, ev *eventsv1.Event) error {
	err := r.cs.CreateEvent(ctx, ev)
	switch {
	case err == nil || apierrors.IsAlreadyExists(err):
		r.mu.Lock()
		r.stats.Delivered++
		r.mu.Unlock()
		return nil
	case apierrors.IsInvalid(err) || apierrors.IsNotFound(err) || apierrors.IsBadRequest(err):
		// Retrying cannot help: say so once and move on.
		r.mu.Lock()
		r.stats.Rejected++
		r.mu.Unlock()
		r.log.Error("API server rejected event; dropping it", "event", ev.Name, "err", oneLine(err))
		return nil
	default:
		return fmt.Errorf("create event %s/%s: %w", ev.Namespace, ev.Name, err)
	}
}

// eventFor maps a journal entry to an event; false when the transition is
// not one that matters upstream.
func (r *Reporter) eventFor(e journal.Entry) (*eventsv1.Event, bool) {
	t := e.Transition
	reason, typ, note := classifyTransition(t)
	if reason == "" {
		return nil, false
	}
	when := t.HappenedAt
	if when.IsZero() {
		when = t.ObservedAt
	}
	uid := t.UID
	if r.APIUID != nil {
		if u := r.APIUID(uid); u != "" {
			uid = u
		}
	}
	ref := corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: t.Namespace, Name: t.Pod, UID: types.UID(uid)}
	ns := t.Namespace
	if t.Pod == "" { // node-level
		ref = corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: r.cfg.Node, UID: types.UID(r.cfg.Node)}
		ns = metav1.NamespaceDefault
	}
	name := eventName(ref.Name, e.ID)
	if endsAttempt(reason) {
		note += lastLinesHint(t)
	}
	if !t.HappenedAt.IsZero() {
		note += fmt.Sprintf(" [happened %s, observed %s]", t.HappenedAt.UTC().Format(time.RFC3339Nano), t.ObservedAt.UTC().Format(time.RFC3339Nano))
	}
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"podlife.dev/seq": fmt.Sprint(e.Seq)}},
		EventTime:           metav1.NewMicroTime(when),
		ReportingController: Controller,
		ReportingInstance:   r.cfg.Node,
		Action:              "Observed",
		Reason:              reason,
		Regarding:           ref,
		Note:                truncate(note, noteLimit),
		Type:                typ,
	}, true
}

// eventName is "<object>.podlife.<entry ID>", a valid DNS subdomain unique per
// journal entry.
func eventName(object, id string) string {
	suffix := ".podlife." + id
	if len(object)+len(suffix) > 253 {
		object = object[:253-len(suffix)]
	}
	return object + suffix
}

// Reportable tells whether a transition becomes a Kubernetes Event.
func Reportable(t lifecycle.Transition) bool {
	reason, _, _ := classifyTransition(t)
	return reason != ""
}

// attemptEndReasons are the Events of an ended attempt: their note names
// the command that shows its last lines (the crash black box), and only
// with ReporterConfig.LogLines carries some of them.
var attemptEndReasons = map[string]bool{"OOMKilled": true, "ContainerRestarted": true, "ContainerExited": true, "ContainerFailed": true}

// endsAttempt tells whether an Event of reason is about an ended attempt.
func endsAttempt(reason string) bool { return attemptEndReasons[reason] }

// lastLinesHint names the command that shows an ended attempt's last lines.
func lastLinesHint(t lifecycle.Transition) string {
	return fmt.Sprintf("; last lines: podlife logs %s/%s -c %s --all (kubectl podlife logs ... --node NODE)", t.Namespace, t.Pod, t.Container)
}

// classifyTransition picks the transitions that matter upstream and names
// their event: reason, type and note.
func classifyTransition(t lifecycle.Transition) (reason, typ, note string) {
	const warn, normal = corev1.EventTypeWarning, corev1.EventTypeNormal
	exit := ""
	if t.ExitCode != nil {
		exit = fmt.Sprintf(" exit %d", *t.ExitCode)
	}
	who := fmt.Sprintf("container %q", t.Container)
	switch t.Kind {
	case lifecycle.TransitionStageChanged:
		typ = normal
		if t.To == string(lifecycle.StageFailing) || t.To == string(lifecycle.StageUnknown) {
			typ = warn
		}
		return "Stage" + t.To, typ, fmt.Sprintf("stage %s -> %s: %s", t.From, t.To, t.Reason)
	case lifecycle.TransitionContainerRestarted:
		if t.Reason == lifecycle.ReasonOOMKilled {
			return "OOMKilled", warn, fmt.Sprintf("%s restarted (%s -> %s) after OOM kill%s", who, t.From, t.To, exit)
		}
		return "ContainerRestarted", warn, fmt.Sprintf("%s restarted (%s -> %s): %s", who, t.From, t.To, t.Detail)
	case lifecycle.TransitionContainerState:
		switch {
		case t.To == "Waiting/"+lifecycle.ReasonCrashLoopBackOff:
			return "CrashLoopBackOff", warn, fmt.Sprintf("%s entered CrashLoopBackOff", who)
		case strings.HasPrefix(t.To, "Waiting/") && isImageFailure(t.Reason):
			return "ImagePullFailed", warn, fmt.Sprintf("%s %s", who, t.Reason)
		case t.Reason == lifecycle.ReasonOOMKilled:
			return "OOMKilled", warn, fmt.Sprintf("%s was OOM-killed%s (seen by the %s)", who, exit, t.Source)
		case t.Source == lifecycle.SourceRuntime && t.To == string(lifecycle.RuntimeExited) && t.ExitCode != nil && *t.ExitCode != 0:
			return "ContainerExited", warn, fmt.Sprintf("%s exited%s %s (seen by the runtime)", who, exit, t.Reason)
		case t.Source == lifecycle.SourceKubelet && strings.HasPrefix(t.To, "Terminated") && t.ExitCode != nil && *t.ExitCode != 0:
			return "ContainerFailed", warn, fmt.Sprintf("%s terminated%s %s", who, exit, t.Reason)
		}
	case lifecycle.TransitionStageStuck:
		return "StuckIn" + t.To, warn, fmt.Sprintf("%s: %s", t.Detail, t.Reason)
	case lifecycle.TransitionMismatchAppeared:
		return "ViewsDisagree", warn, fmt.Sprintf("%s: %s", t.To, t.Detail)
	case lifecycle.TransitionSourceDown:
		return sourceReason(t.Source) + "Unreachable", warn, fmt.Sprintf("%s unreachable: %s", t.Source, t.Detail)
	case lifecycle.TransitionSourceUp:
		return sourceReason(t.Source) + "Recovered", normal, fmt.Sprintf("%s reachable again", t.Source)
	}
	return "", "", ""
}

func sourceReason(s string) string {
	switch s {
	case lifecycle.SourceRuntime:
		return "ContainerRuntime"
	case lifecycle.SourceKubelet:
		return "Kubelet"
	case lifecycle.SourceKubeletLink:
		return "KubeletAPIServer"
	}
	return "APIServer"
}

func isImageFailure(r string) bool {
	return r == lifecycle.ReasonErrImagePull || r == lifecycle.ReasonImagePullBackOff ||
		r == lifecycle.ReasonInvalidImageName || r == lifecycle.ReasonErrImageNeverPull
}

// truncate cuts s to at most n bytes, marking the cut with "...", on a
// character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut-- // never half a character: the API server would count its replacement
	}
	return s[:cut] + "..."
}

// account keeps per-pod statistics of what happened during a partition, for
// the summary event once it heals.
func (r *Reporter) account(e journal.Entry) {
	t := e.Transition
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.Kind == lifecycle.TransitionSourceDown && t.Source == lifecycle.SourceKubeletLink && r.kubeletCutSince.IsZero() {
		r.kubeletCutSince = t.ObservedAt
	}
	if t.Pod == "" {
		return
	}
	if since := r.stats.PartitionSince; !since.IsZero() && !t.ObservedAt.Before(since) && e.Seq > r.partitionSeq {
		accountPod(r.partition, t)
		r.partitionSeq = e.Seq
	}
	if since := r.kubeletCutSince; !since.IsZero() && !t.ObservedAt.Before(since) && e.Seq > r.kubeletCutSeq {
		accountPod(r.kubeletCut, t)
		r.kubeletCutSeq = e.Seq
	}
}

// accountPod counts a pod's restarts and exits into one window's statistics.
func accountPod(pods map[string]*podPartition, t lifecycle.Transition) {
	p := pods[t.UID]
	if p == nil {
		p = &podPartition{ref: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: t.Namespace, Name: t.Pod, UID: types.UID(t.UID)}}
		pods[t.UID] = p
	}
	switch {
	case t.Kind == lifecycle.TransitionContainerRestarted:
		p.restarts++
		if t.ExitCode != nil {
			p.lastExit = fmt.Sprintf("%d %s", *t.ExitCode, t.Reason)
		}
	case t.Kind == lifecycle.TransitionContainerState && t.Source == lifecycle.SourceRuntime && t.To == string(lifecycle.RuntimeExited):
		p.exits++
		if t.ExitCode != nil {
			p.lastExit = fmt.Sprintf("%d %s", *t.ExitCode, t.Reason)
		}
	}
}

// finishPartition sends one summary event per pod affected by a partition
// of podlife's own once the backlog has drained.
func (r *Reporter) finishPartition(ctx context.Context) error {
	r.mu.Lock()
	since, pods := r.stats.PartitionSince, r.partition
	r.mu.Unlock()
	if since.IsZero() {
		return nil
	}
	r.mu.Lock()
	n, restarts, exits := len(pods), 0, 0
	for _, p := range pods {
		restarts, exits = restarts+p.restarts, exits+p.exits
	}
	r.mu.Unlock()
	dur, err := r.summarize(ctx, pods, since, "PartitionSummary", "the node was unreachable")
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.stats.PartitionSince = time.Time{}
	r.stats.LastPartition = since
	r.stats.LastPartitionSummary = fmt.Sprintf("%s; %d pods, %d restarts, %d exits", dur, n, restarts, exits)
	r.mu.Unlock()
	r.jittered = false
	r.log.Info("partition healed; backlog delivered", "duration", dur.String())
	return nil
}

// finishKubeletCut sends one summary event per pod that restarted or exited
// while the kubelet was cut off from the API server, once the cut's SourceUp
// is delivered: what the cluster did not hear while it lasted.
func (r *Reporter) finishKubeletCut(ctx context.Context) error {
	r.mu.Lock()
	since, pods := r.kubeletCutSince, r.kubeletCut
	r.mu.Unlock()
	if since.IsZero() {
		return nil
	}
	if _, err := r.summarize(ctx, pods, since, "KubeletPartitionSummary", "the kubelet was cut off from the API server"); err != nil {
		return err
	}
	r.mu.Lock()
	r.kubeletCutSince = time.Time{}
	r.mu.Unlock()
	return nil
}

// summarize posts one Normal event per pod of a window (a partition, a
// kubelet cut) and forgets each pod once its event is created.
func (r *Reporter) summarize(ctx context.Context, pods map[string]*podPartition, since time.Time, reason, while string) (time.Duration, error) {
	now := r.Now()
	dur := now.Sub(since).Round(time.Second)
	for uid, p := range pods {
		note := fmt.Sprintf("while %s for %s: %d restarts, %d exits", while, dur, p.restarts, p.exits)
		if r.Running != nil {
			if run, total := r.Running(uid); total > 0 {
				note = fmt.Sprintf("%d/%d containers kept running for %s while %s; %d restarts, %d exits",
					run, total, dur, while, p.restarts, p.exits)
			}
		}
		if p.lastExit != "" {
			note += ", last exit " + strings.TrimSpace(p.lastExit)
		}
		ev := &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: eventName(p.ref.Name, fmt.Sprintf("%s-%d-%s", strings.ToLower(reason), since.Unix(), uid[:min(8, len(uid))])), Namespace: p.ref.Namespace},
			EventTime:           metav1.NewMicroTime(now),
			ReportingController: Controller, ReportingInstance: r.cfg.Node,
			Action: "Observed", Reason: reason, Regarding: p.ref, Type: corev1.EventTypeNormal,
			Note: truncate(note, noteLimit),
		}
		if err := r.create(ctx, ev); err != nil {
			return dur, err
		}
		r.mu.Lock()
		delete(pods, uid)
		r.mu.Unlock()
	}
	return dur, nil
}
