package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/podlife/podlife/internal/journal"
	"github.com/podlife/podlife/lifecycle"
)

// DefaultMaxUnwritten bounds the transitions the agent holds in memory while
// its journal cannot be written (a full or read-only disk, a journal it
// cannot open): about 300 bytes each.
const DefaultMaxUnwritten = 20000

// JournalOpener opens the agent's journal; moved tells of an unusable file
// it moved aside before starting a fresh one (journal.OpenOrMoveAside).
type JournalOpener func() (j *journal.Journal, moved *journal.MovedAside, err error)

// journalKeeper stands between the agent and its journal. It writes
// transitions in the order they were observed and, while the journal cannot
// take them (it cannot be opened, or a write fails), holds them in memory,
// bounded, and writes them, still in order, once it can: on the next
// transitions or the agent's next tick. Every transition is journaled once,
// or counted as lost; none is dropped silently.
type journalKeeper struct {
	open    JournalOpener // nil: the journal was given open and is not reopened
	owned   bool          // the keeper opened the journal and closes it
	log     *slog.Logger
	maxHeld int

	mu     sync.Mutex
	j      *journal.Journal
	held   []lifecycle.Transition
	health JournalHealth
	// A failed write may still have reached the disk (its commit failed
	// after the meta page was written): the first inDoubt held transitions
	// are taken as written if the journal's last sequence moved from
	// doubtSeq by exactly that many.
	inDoubt  int
	doubtSeq uint64
	// Reopening: one attempt at a time, off the agent's loop, with backoff.
	opening  bool
	nextOpen time.Time
	backoff  time.Duration
	closed   bool
	// stages are the pods' stages as the journal had them when it opened
	// (after writing what was held), for the stage clock to take once.
	stages    map[string]lifecycle.StageSince
	stagesErr error
}

const (
	reopenMin = time.Second
	reopenMax = time.Minute
)

// newJournalKeeper keeps j, or, when j is nil and open is set, opens the
// journal once now and keeps trying later if that fails.
func newJournalKeeper(j *journal.Journal, open JournalOpener, maxHeld int, log *slog.Logger, now time.Time) *journalKeeper {
	if maxHeld <= 0 {
		maxHeld = DefaultMaxUnwritten
	}
	k := &journalKeeper{j: j, open: open, log: log, maxHeld: maxHeld}
	k.health.Up = j != nil
	if j != nil {
		k.stages, k.stagesErr = j.Stages()
	}
	if j == nil && open != nil {
		k.mu.Lock()
		k.opened(open())(now)
		k.mu.Unlock()
	}
	return k
}

// opened takes the result of an open attempt; it returns a function to
// call with the time, with k.mu held.
func (k *journalKeeper) opened(j *journal.Journal, moved *journal.MovedAside, err error) func(now time.Time) {
	return func(now time.Time) {
		if moved != nil {
			k.health.MovedAside = append(k.health.MovedAside, MovedAside{Path: moved.Path, Reason: oneLine(moved.Err), At: now})
			k.log.Error("journal unusable: moved aside and started afresh; its undelivered transitions are in the file moved aside",
				"movedTo", moved.Path, "err", oneLine(moved.Err))
		}
		if err != nil {
			k.fail(now, fmt.Errorf("open: %w", err), "journal cannot be opened; transitions are kept in memory until it can")
			k.backoff = min(max(2*k.backoff, reopenMin), reopenMax)
			k.nextOpen = now.Add(k.backoff)
			return
		}
		k.j, k.owned, k.backoff = j, true, 0
		if k.health.DownSince.IsZero() {
			k.health.Up = true // opened at the first attempt
		}
		k.flush(now)
		if len(k.held) == 0 {
			k.recovered(now, 0)
		}
		k.stages, k.stagesErr = j.Stages()
	}
}

// takeStages returns, once, the stages the journal held when it opened (nil
// before it has, and after).
func (k *journalKeeper) takeStages() (map[string]lifecycle.StageSince, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, err := k.stages, k.stagesErr
	k.stages, k.stagesErr = nil, nil
	return st, err
}

// fail records a failure; the first one of an outage is logged as what.
func (k *journalKeeper) fail(now time.Time, err error, what string) {
	k.health.Errors++
	k.health.Error, k.health.ErrorAt = oneLine(err), now
	if k.health.Up || k.health.DownSince.IsZero() {
		k.health.DownSince = now
		k.log.Error(what, "err", k.health.Error, "unwritten", len(k.held))
	}
	k.health.Up = false
}

// write journals trs after whatever is held, in one transaction.
func (k *journalKeeper) write(now time.Time, trs []lifecycle.Transition) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hold(trs)
	k.flush(now)
}

// hold appends trs to the held transitions, dropping (and counting) the
// oldest past the bound.
func (k *journalKeeper) hold(trs []lifecycle.Transition) {
	k.held = append(k.held, trs...)
	if over := len(k.held) - k.maxHeld; over > 0 {
		if k.health.Lost == 0 {
			k.log.Error("journal down too long: the oldest unwritten transitions are being dropped", "bound", k.maxHeld)
		}
		k.health.Lost += uint64(over)
		k.held = append(k.held[:0], k.held[over:]...)
		k.inDoubt = max(0, k.inDoubt-over)
	}
	k.health.Unwritten = len(k.held)
}

// flush writes the held transitions, if the journal is open.
func (k *journalKeeper) flush(now time.Time) {
	if k.j == nil || len(k.held) == 0 {
		return
	}
	if k.inDoubt > 0 {
		if st, err := k.j.Stats(); err == nil && st.LastSeq == k.doubtSeq+uint64(k.inDoubt) {
			k.log.Warn("a journal write reported as failed had reached the disk: not writing it twice", "transitions", k.inDoubt)
			k.held = append(k.held[:0], k.held[k.inDoubt:]...)
		}
		k.inDoubt = 0
		if len(k.held) == 0 {
			k.recovered(now, 0)
			return
		}
	}
	var before uint64
	if st, err := k.j.Stats(); err == nil {
		before = st.LastSeq
	}
	if _, err := k.j.Append(now, k.held); err != nil {
		k.inDoubt, k.doubtSeq = len(k.held), before
		k.fail(now, err, "journal write failed; transitions are kept in memory until it can be written")
		return
	}
	n := len(k.held)
	k.held = k.held[:0]
	k.recovered(now, n)
}

// recovered marks the journal up after a successful write of n.
func (k *journalKeeper) recovered(now time.Time, n int) {
	k.health.Unwritten = len(k.held)
	if !k.health.Up && !k.health.DownSince.IsZero() {
		k.log.Info("journal writable again", "written", n, "downFor", now.Sub(k.health.DownSince).Round(time.Millisecond).String(),
			"lost", k.health.Lost)
	}
	k.health.Up, k.health.DownSince = true, time.Time{}
}

// retry writes what is held, and reopens the journal when it could not be
// opened (in the background: an open may wait for another process's lock).
func (k *journalKeeper) retry(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.j != nil {
		k.flush(now)
		return
	}
	if k.open == nil || k.opening || now.Before(k.nextOpen) {
		return
	}
	k.opening = true
	go func() {
		j, moved, err := k.open()
		k.mu.Lock()
		defer k.mu.Unlock()
		k.opening = false
		if k.closed { // the agent stopped meanwhile
			if j != nil {
				j.Close()
			}
			return
		}
		k.opened(j, moved, err)(time.Now())
	}()
}

// snapshot returns the journal (nil while it is not open) and its health.
func (k *journalKeeper) snapshot() (*journal.Journal, JournalHealth) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h := k.health
	h.MovedAside = append([]MovedAside(nil), h.MovedAside...)
	return k.j, h
}

// Pending returns undelivered journal entries (none while the journal is not open).
func (k *journalKeeper) Pending(limit int) ([]journal.Entry, error) {
	if j, _ := k.snapshot(); j != nil {
		return j.Pending(limit)
	}
	return nil, nil
}

// Ack acknowledges delivered entries.
func (k *journalKeeper) Ack(seq uint64) error {
	j, _ := k.snapshot()
	if j == nil {
		return errors.New("journal not open")
	}
	return j.Ack(seq)
}

// close writes what it can and closes a journal the keeper opened. What
// cannot be written is counted lost, and said so.
func (k *journalKeeper) close(now time.Time) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	k.flush(now)
	if n := len(k.held); n > 0 {
		k.health.Lost += uint64(n)
		k.log.Error("agent stopping with transitions the journal could not take: they are lost", "lost", n, "err", k.health.Error)
		k.held = nil
	}
	if k.j == nil || !k.owned {
		return nil
	}
	err := k.j.Close()
	k.j = nil
	return err
}
