package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podlife/podlife/cri/crilog"
	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// The crash black box: at every container exit the agent observes (stream or
// relist), it reads the tail of that attempt's log file before the kubelet
// removes the dead container and its log with it, and keeps it in the
// journal beside the transitions.

// Black box defaults.
const (
	DefaultBlackBoxLines    = 50
	DefaultBlackBoxBytes    = 8 << 10
	DefaultBlackBoxAttempts = 10
	DefaultBlackBoxMaxBytes = 32 << 20
	DefaultPodLogsDir       = "/var/log/pods"
	// MaxEventLogLines bounds --event-log-lines: an Event's note holds 1 KiB.
	MaxEventLogLines            = 20
	blackBoxQueue               = 4096
	blackBoxMaxHeld             = 1000
	blackBoxCaptureResultOK     = "captured"
	blackBoxCaptureResultNoFile = "unreadable"
	blackBoxCaptureResultLost   = "lost"
)

// BlackBoxOptions configure the crash black box. A zero Tail turns capture
// off.
type BlackBoxOptions struct {
	// Tail bounds what is read of each attempt.
	Tail crilog.Limits
	// Keep bounds what the journal keeps.
	Keep journal.BoxLimits
	// PodLogsDir is where the kubelet writes pod logs, for a runtime that
	// names a log path relative to the pod's log directory.
	PodLogsDir string
}

func (o BlackBoxOptions) on() bool { return o.Tail.Lines > 0 && o.Tail.Bytes > 0 }

var (
	descBoxCaptures  = desc("blackbox_captures_total", "Container exits whose last log lines the crash black box handled, by result: captured; unreadable (the log file was missing or unreadable: the exit is kept with why); lost (held in memory past its bound while the journal could not be written). A full capture queue loses nothing: the next correlation queues the exit again.", "result")
	descBoxEvictions = desc("blackbox_evictions_total", "Attempts removed from the crash black box, by the bound that removed them: attempts (per container), size (all boxes).", "bound")
	descBoxes        = desc("blackbox_attempts", "Container attempts the crash black box keeps in the journal.")
	descBoxBytes     = desc("blackbox_bytes", "Stored size of the crash black box in the journal.")
)

// blackBox captures exits and keeps them. observe runs on the agent's
// loop; the capture on a goroutine of its own (run), so a slow disk never
// delays a correlation.
type blackBox struct {
	opts    BlackBoxOptions
	keeper  *journalKeeper
	log     *slog.Logger
	now     func() time.Time
	queue   chan lifecycle.Container
	handled map[string]struct{} // exited container IDs queued or captured (the loop's own)

	captures  *counterVec
	evictions *counterVec
	kept      func() // called when boxes were written (nil: nothing)
	// beforeRetry waits before a missing log file is read again (tests
	// replace it).
	beforeRetry func()

	mu      sync.Mutex
	held    []journal.BlackBox // captured while the journal could not take them
	failing bool               // the last write failed (said once per outage)
}

func newBlackBox(opts BlackBoxOptions, keeper *journalKeeper, log *slog.Logger, now func() time.Time) *blackBox {
	if opts.PodLogsDir == "" {
		opts.PodLogsDir = DefaultPodLogsDir
	}
	b := &blackBox{opts: opts, keeper: keeper, log: log, now: now, queue: make(chan lifecycle.Container, blackBoxQueue),
		handled: map[string]struct{}{}, captures: newCounterVec(descBoxCaptures), evictions: newCounterVec(descBoxEvictions),
		beforeRetry: func() { time.Sleep(100 * time.Millisecond) }}
	for _, r := range []string{blackBoxCaptureResultOK, blackBoxCaptureResultNoFile, blackBoxCaptureResultLost} {
		b.captures.WithLabelValues(r)
	}
	for _, r := range []string{"attempts", "size"} {
		b.evictions.WithLabelValues(r)
	}
	return b
}

// observe queues every exited container not handled yet. A full queue
// leaves the container unhandled: the next correlation tries again.
func (b *blackBox) observe(cs []*lifecycle.Container) {
	if !b.opts.on() {
		return
	}
	exited := 0
	for _, c := range cs {
		if c.State != lifecycle.RuntimeExited {
			continue
		}
		exited++
		if _, ok := b.handled[c.ID]; ok {
			continue
		}
		select {
		case b.queue <- *c:
			b.handled[c.ID] = struct{}{}
		default:
		}
	}
	if len(b.handled) > 2*exited+64 {
		b.forgetGone(cs)
	}
}

// forgetGone drops handled IDs the runtime no longer lists.
func (b *blackBox) forgetGone(cs []*lifecycle.Container) {
	listed := make(map[string]struct{}, len(cs))
	for i := range cs {
		listed[cs[i].ID] = struct{}{}
	}
	for id := range b.handled {
		if _, ok := listed[id]; !ok {
			delete(b.handled, id)
		}
	}
}

// run captures queued exits until ctx is done, a batch at a time.
func (b *blackBox) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-b.queue:
			batch := []lifecycle.Container{c}
		drain:
			for len(batch) < 64 {
				select {
				case c := <-b.queue:
					batch = append(batch, c)
				default:
					break drain
				}
			}
			b.keep(b.captureAll(batch))
		}
	}
}

// captureAll reads the attempts of batch that the journal does not hold yet.
func (b *blackBox) captureAll(batch []lifecycle.Container) []journal.BlackBox {
	j, _ := b.keeper.snapshot()
	out := make([]journal.BlackBox, 0, len(batch))
	for i := range batch {
		c := &batch[i]
		if j != nil {
			if has, err := j.HasBlackBox(c.PodNamespace, c.PodName, c.Name, c.ID); err == nil && has {
				continue // captured before the agent restarted
			}
		}
		box := b.capture(c)
		result := blackBoxCaptureResultOK
		if box.CaptureError != "" {
			result = blackBoxCaptureResultNoFile
		}
		b.captures.WithLabelValues(result).Inc()
		out = append(out, box)
	}
	return out
}

// capture reads the tail of c's log file into its box; a file that cannot
// be read leaves the box without lines and says why.
func (b *blackBox) capture(c *lifecycle.Container) journal.BlackBox {
	box := journal.BlackBox{Namespace: c.PodNamespace, Pod: c.PodName, UID: c.PodUID, Container: c.Name, ContainerID: c.ID,
		Attempt: c.Attempt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, ExitCode: c.ExitCode, Reason: c.Reason,
		Message: c.Message, LogPath: b.logPath(c), CapturedAt: b.now()}
	if box.LogPath == "" {
		box.CaptureError = "the runtime names no log file for this container"
		return box
	}
	res, err := crilog.Tail(box.LogPath, b.opts.Tail)
	if errors.Is(err, fs.ErrNotExist) && dirExists(filepath.Dir(box.LogPath)) {
		// The kubelet's log rotation may have just renamed the file: for an
		// exited container it renames it back (kubernetes/kubernetes
		// pkg/kubelet/logs/container_log_manager.go, rotateLatestLog). Once
		// more after that window; not where the directory itself is
		// missing (no mount, or the pod is gone).
		b.beforeRetry()
		res, err = crilog.Tail(box.LogPath, b.opts.Tail)
	}
	if err != nil {
		box.CaptureError = oneLine(err)
		if errors.Is(err, fs.ErrNotExist) {
			box.CaptureError = fmt.Sprintf("log file %s is gone (removed with the container, or never written)", box.LogPath)
		}
	}
	box.Truncated, box.ReadBytes = res.Truncated, res.Read
	for _, l := range res.Lines {
		line := journal.BoxLine{Time: l.Time, Stream: l.Stream, Text: crilog.Display(l.Text), Partial: l.Partial}
		if line.Text != string(l.Text) {
			line.Raw = l.Text
		}
		box.Lines = append(box.Lines, line)
	}
	return box
}

// dirExists reports whether dir is a directory that can be seen.
func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// logPath is c's log file: the runtime's path, resolved in the pod's log
// directory (the kubelet's /var/log/pods/NAMESPACE_NAME_UID) when relative.
func (b *blackBox) logPath(c *lifecycle.Container) string {
	if c.LogPath == "" || filepath.IsAbs(c.LogPath) {
		return c.LogPath
	}
	return filepath.Join(b.opts.PodLogsDir, c.PodNamespace+"_"+c.PodName+"_"+c.PodUID, c.LogPath)
}

// keep writes boxes, and whatever is held, to the journal; while it cannot,
// they are held in memory (bounded, the oldest lost first).
func (b *blackBox) keep(boxes []journal.BlackBox) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held = append(b.held, boxes...)
	if over := len(b.held) - blackBoxMaxHeld; over > 0 {
		b.held = b.held[over:]
		b.captures.WithLabelValues(blackBoxCaptureResultLost).Add(uint64(over))
		b.log.Warn("crash black box: attempts lost while the journal could not take them", "lost", over)
	}
	if len(b.held) == 0 {
		return
	}
	j, _ := b.keeper.snapshot()
	if j == nil {
		return
	}
	ev, err := j.PutBlackBoxes(b.held, b.opts.Keep)
	if err != nil {
		if !b.failing {
			b.log.Warn("crash black box not written to the journal; held in memory until it can be", "attempts", len(b.held), "err", oneLine(err))
		}
		b.failing = true
		return
	}
	if b.failing {
		b.log.Info("crash black box written to the journal again", "attempts", len(b.held))
	}
	b.failing, b.held = false, b.held[:0]
	if b.kept != nil {
		b.kept()
	}
	b.evictions.WithLabelValues("attempts").Add(uint64(ev.PerContainer))
	b.evictions.WithLabelValues("size").Add(uint64(ev.Size))
}

// boxes returns the kept and held attempts of namespace/pod, of container
// when set.
func (b *blackBox) boxes(namespace, pod, container string) ([]journal.BlackBox, error) {
	var out []journal.BlackBox
	if j, _ := b.keeper.snapshot(); j != nil {
		kept, err := j.BlackBoxes(namespace, pod, container)
		if err != nil {
			return nil, err
		}
		out = kept
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.held {
		if h.Namespace == namespace && h.Pod == pod && (container == "" || h.Container == container) {
			out = append(out, h)
		}
	}
	return out, nil
}

// lastLines returns the lines kept of the attempt that exit transition t
// ended, and whether that attempt is kept (a capture that found no file is
// kept, without lines). It is the latest box of t's container that finished
// when t says, to the second (the kubelet's times have no finer grain), or,
// when t does not say, the latest that finished by the time t was observed.
// A journal that cannot be read has nothing to wait for: kept.
func (b *blackBox) lastLines(t lifecycle.Transition) ([]string, bool) {
	boxes, err := b.boxes(t.Namespace, t.Pod, t.Container)
	if err != nil {
		return nil, true
	}
	for i := len(boxes) - 1; i >= 0; i-- {
		box := &boxes[i]
		if t.UID != "" && box.UID != "" && box.UID != t.UID {
			continue
		}
		match := box.FinishedAt.Truncate(time.Second).Equal(t.HappenedAt.Truncate(time.Second))
		if t.HappenedAt.IsZero() {
			match = !box.FinishedAt.After(t.ObservedAt)
		}
		if match {
			lines := make([]string, len(box.Lines))
			for i, l := range box.Lines {
				lines[i] = l.Text
			}
			return lines, true
		}
	}
	return nil, false
}

// collect exports the black box's counters and what the journal keeps.
func (b *blackBox) collect(ch chan<- prometheus.Metric) {
	b.captures.collect(ch)
	b.evictions.collect(ch)
	if j, _ := b.keeper.snapshot(); j != nil {
		if st, err := j.BlackBoxStats(); err == nil {
			gauge(ch, descBoxes, float64(st.Boxes))
			gauge(ch, descBoxBytes, float64(st.Bytes))
		}
	}
}
