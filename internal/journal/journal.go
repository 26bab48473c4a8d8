// Package journal is podlife's durable record of transitions: every
// transition is appended (fsynced) before it is reported upstream, delivery is
// acknowledged in order, and whatever was not delivered survives an agent
// restart or a network partition. It is bounded: past MaxEntries or MaxAge the
// oldest undelivered entries are dropped and counted, never silently.
package journal

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/podlife/podlife/lifecycle"
)

var (
	bucketEntries = []byte("entries")
	bucketMeta    = []byte("meta")
	bucketStages  = []byte("stages")
	keyID         = []byte("id")
	keyNode       = []byte("node")
	keyDelivered  = []byte("delivered")
	keyDropped    = []byte("dropped")
	keyFormat     = []byte("format")
)

// FormatVersion is the journal format this build reads and writes, kept in
// the meta bucket. A journal written before the key existed is format 1.
const FormatVersion = 1

var (
	// ErrCorrupt is returned by Open for a file that is not a readable
	// journal: truncated, damaged, or not a bbolt file at all.
	ErrCorrupt = errors.New("journal file is corrupt")
	// ErrUnknownFormat is returned by Open for a journal of a format version
	// this build does not know (written by a newer podlife).
	ErrUnknownFormat = errors.New("journal format unknown to this build")
	// ErrLocked is returned by Open while another process holds the journal.
	ErrLocked = errors.New("journal locked by another process")
)

// Options bound the journal.
type Options struct {
	// MaxEntries is the most undelivered entries kept (default 100000).
	MaxEntries int
	// MaxAge is how long an undelivered entry is kept (default 7 days).
	MaxAge time.Duration
	// OpenTimeout is how long Open waits for another process's lock (default 2s).
	OpenTimeout time.Duration
	// Node is the node the journal belongs to. A journal last written on
	// another node (a file copied with a disk image) gets a new ID, so that
	// the two never name an entry alike. Empty: keep the journal's ID.
	Node string
}

// Entry is one journaled transition.
type Entry struct {
	// Seq is the entry's position; sequences only grow, also across restarts.
	Seq uint64 `json:"seq"`
	// ID is unique across journals (the journal's random ID, then Seq) and
	// stable across retries and restarts: upstream deliveries use it as an
	// idempotency key (the Event name), so two journals must never share one.
	ID         string               `json:"id"`
	AppendedAt time.Time            `json:"appendedAt"`
	Transition lifecycle.Transition `json:"transition"`
}

// Stats describe the journal's state.
type Stats struct {
	Pending       int       `json:"pending"`
	LastSeq       uint64    `json:"lastSeq"`
	Delivered     uint64    `json:"delivered"`
	Dropped       uint64    `json:"dropped"`
	OldestPending time.Time `json:"oldestPending,omitzero"`
}

// Journal is a bbolt-backed transition log. It is safe for concurrent use.
type Journal struct {
	db   *bolt.DB
	id   string
	opts Options
}

// Open opens or creates the journal file at path. A file that is not a
// readable journal yields an error wrapping ErrCorrupt, one of another format
// ErrUnknownFormat, one held by another process ErrLocked; anything else
// (a missing or read-only directory, a full disk) is returned as it is.
func Open(path string, opts Options) (*Journal, error) {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 100000
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 7 * 24 * time.Hour
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 2 * time.Second
	}
	j := &Journal{opts: opts}
	db, err := openChecked(path, opts.OpenTimeout, func(db *bolt.DB) error { return db.Update(j.initialise) })
	if err != nil {
		return nil, err
	}
	j.db = db
	return j, nil
}

// initialise creates the buckets, the format version and the journal's ID
// where they are missing, and reads the ID.
func (j *Journal) initialise(tx *bolt.Tx) error {
	opts := j.opts
	if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
		return err
	}
	for _, b := range [][]byte{bucketStages, bucketBoxes, bucketBoxOrder} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if meta.Get(keyFormat) == nil {
		if err := meta.Put(keyFormat, seqKey(FormatVersion)); err != nil {
			return err
		}
	}
	// A new ID never duplicates anything (an entry keeps the ID it was
	// appended with), so when in doubt the journal takes a new one.
	if id := meta.Get(keyID); id != nil && (opts.Node == "" || string(meta.Get(keyNode)) == opts.Node) {
		j.id = string(id)
		return nil
	}
	// A new journal, or one last written on another node: a new random ID.
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("journal ID: %w", err)
	}
	j.id = hex.EncodeToString(b[:])
	if opts.Node != "" {
		if err := meta.Put(keyNode, []byte(opts.Node)); err != nil {
			return err
		}
	}
	return meta.Put(keyID, []byte(j.id))
}

// openChecked opens the bbolt file at path for writing once every page it
// references lies within the file, every entry and stage decodes and the
// format is one this build knows, and runs init on it.
//
// bbolt trusts its file: on a damaged one it panics, or faults reading a page
// past the end of a truncated file or through a damaged pointer. Both are
// turned into ErrCorrupt here (SetPanicOnFault and recover), which is undone
// cleanly only once bolt.Open has returned a DB to close: a fault inside Open
// leaves its mapping, and the file's lock with it, behind for good. So the
// file is first read through read-only opens, with bbolt's public API alone:
//   - a plain read-only Open, which reads nothing but the two meta pages (it
//     refuses a file shorter than that); verify then checks that the pages
//     they name (tx.Size) fit in the file, and reads every bucket;
//   - then one that loads the freelist, all Open reads besides the meta pages.
//
// A freelist page damaged so that loading it panics or faults is the one
// fault left inside Open: that read-only mapping, its descriptor and the shared
// lock it holds (no reader is blocked) stay until the agent exits; the file is
// still reported corrupt, and moved aside. tx.Check is not used: it reads on a goroutine of its own,
// where a fault on the very damage it looks for cannot be recovered and would
// end the agent.
func openChecked(path string, timeout time.Duration, init func(*bolt.DB) error) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				closeQuietly(db)
			}
			db, err = nil, fmt.Errorf("open journal %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	// A missing or empty file bbolt creates; anything but a file it refuses.
	if fi, serr := os.Stat(path); serr == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
		if db, err = openBolt(path, &bolt.Options{ReadOnly: true, Timeout: timeout}); err != nil {
			return nil, err
		}
		err = db.View(verify)
		db.Close()
		if db = nil; err != nil {
			return nil, fmt.Errorf("open journal %s: %w", path, err)
		}
		if db, err = openBolt(path, &bolt.Options{ReadOnly: true, PreLoadFreelist: true, Timeout: timeout}); err != nil {
			return nil, err
		}
		db.Close()
	}
	if db, err = openBolt(path, &bolt.Options{Timeout: timeout}); err != nil {
		return nil, err
	}
	if err := init(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise journal %s: %w", path, err)
	}
	return db, nil
}

// openBolt opens the bbolt file at path, telling bbolt's errors about the
// file's content (ErrCorrupt) and its lock (ErrLocked) from those of the
// file system (permissions, a full disk), which say nothing about the journal.
func openBolt(path string, opts *bolt.Options) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, opts)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("open journal %s: %w (is another podlife agent running?)", path, ErrLocked)
	case errors.As(err, new(syscall.Errno)):
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	default: // ErrInvalid, ErrVersionMismatch, ErrChecksum, "file size too small"...
		return nil, fmt.Errorf("open journal %s: %w: %v", path, ErrCorrupt, err)
	}
}

// closeQuietly closes a database that faulted, which may fault again.
func closeQuietly(db *bolt.DB) {
	defer func() { recover() }()
	db.Close()
}

// verify reads the whole journal in tx, once the pages its meta names are
// known to lie within the file.
func verify(tx *bolt.Tx) error {
	fi, err := os.Stat(tx.DB().Path())
	if err != nil {
		return err
	}
	if fi.Size() < tx.Size() {
		return fmt.Errorf("%w: truncated: the file has %d bytes, its pages need %d", ErrCorrupt, fi.Size(), tx.Size())
	}
	if meta := tx.Bucket(bucketMeta); meta != nil {
		if v := meta.Get(keyFormat); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("%w: format version %q", ErrCorrupt, v)
			}
			if f := binary.BigEndian.Uint64(v); f != FormatVersion {
				return fmt.Errorf("%w: format version %d (this build reads %d)", ErrUnknownFormat, f, FormatVersion)
			}
		}
	}
	if entries := tx.Bucket(bucketEntries); entries != nil {
		last := entries.Sequence()
		err := entries.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("%w: entry key %x", ErrCorrupt, k)
			}
			seq := binary.BigEndian.Uint64(k)
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrCorrupt, seq, err)
			}
			if e.Seq != seq || e.ID == "" || seq > last {
				return fmt.Errorf("%w: entry %d: not a journal entry (seq %d, id %q, last %d)", ErrCorrupt, seq, e.Seq, e.ID, last)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if stages := tx.Bucket(bucketStages); stages != nil {
		err := stages.ForEach(func(k, v []byte) error {
			var s lifecycle.StageSince
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("%w: stage of %s: %v", ErrCorrupt, k, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return verifyBoxes(tx)
}

// MovedAside says what OpenOrMoveAside did with a journal it could not use.
type MovedAside struct {
	// Path is where the unusable file is now (it is never deleted).
	Path string
	// Err is why it could not be used (wraps ErrCorrupt or ErrUnknownFormat).
	Err error
}

// OpenOrMoveAside opens the journal at path; a corrupt one, or one of a
// format this build does not know, is renamed to path.corrupt-TIME or
// path.unknown-format-TIME (kept, never deleted) and a fresh journal is
// started in its place. moved says so; it is nil when the file was fine.
func OpenOrMoveAside(path string, opts Options, now time.Time) (j *Journal, moved *MovedAside, err error) {
	j, err = Open(path, opts)
	suffix := ".corrupt-"
	switch {
	case errors.Is(err, ErrUnknownFormat):
		suffix = ".unknown-format-"
	case errors.Is(err, ErrCorrupt):
	default:
		return j, nil, err
	}
	base := path + suffix + now.UTC().Format("20060102T150405Z")
	to := base
	for i := 2; ; i++ {
		if _, serr := os.Lstat(to); errors.Is(serr, os.ErrNotExist) {
			break
		}
		to = fmt.Sprintf("%s.%d", base, i)
	}
	if rerr := os.Rename(path, to); rerr != nil {
		return nil, nil, fmt.Errorf("%w; moving it aside failed: %v", err, rerr)
	}
	moved = &MovedAside{Path: to, Err: err}
	j, err = Open(path, opts)
	if err != nil {
		return nil, moved, fmt.Errorf("fresh journal after moving %s aside: %w", to, err)
	}
	return j, moved, nil
}

// ID is the journal's random identity, the prefix of its entries' IDs.
func (j *Journal) ID() string { return j.id }

// Close closes the journal file.
func (j *Journal) Close() error { return j.db.Close() }

// Path is the journal's file.
func (j *Journal) Path() string { return j.db.Path() }

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// Append durably records transitions in order, in one fsynced transaction,
// and returns their entries. now is the append time, used for MaxAge. Entries
// past the bounds are dropped oldest first and counted in Stats.Dropped.
func (j *Journal) Append(now time.Time, ts []lifecycle.Transition) ([]Entry, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	out := make([]Entry, 0, len(ts))
	err := j.db.Update(func(tx *bolt.Tx) error {
		entries, meta := tx.Bucket(bucketEntries), tx.Bucket(bucketMeta)
		out = out[:0]
		for _, t := range ts {
			seq, err := entries.NextSequence()
			if err != nil {
				return err
			}
			e := Entry{Seq: seq, ID: fmt.Sprintf("%s-%d", j.id, seq), AppendedAt: now, Transition: t}
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode entry %d: %w", seq, err)
			}
			if err := entries.Put(seqKey(seq), b); err != nil {
				return err
			}
			if err := putStage(tx.Bucket(bucketStages), t); err != nil {
				return err
			}
			out = append(out, e)
		}
		return j.enforceBounds(entries, meta, now)
	})
	if err != nil {
		return nil, fmt.Errorf("append %d transitions: %w", len(ts), err)
	}
	return out, nil
}

// putStage keeps, for every pod, the stage it is in and since when, so the
// agent's stuck-stage clock survives a restart. Delivery does not remove it;
// the pod's removal does.
func putStage(b *bolt.Bucket, t lifecycle.Transition) error {
	if t.UID == "" {
		return nil // node-level
	}
	key := []byte(t.UID)
	switch t.Kind {
	case lifecycle.TransitionPodAdded, lifecycle.TransitionStageChanged:
		var s lifecycle.StageSince
		if t.Kind == lifecycle.TransitionPodAdded && json.Unmarshal(b.Get(key), &s) == nil && string(s.Stage) == t.To {
			// A restarted agent sees the pod anew: the same stay goes on,
			// its since and reported kept for the next restart.
			return nil
		}
		v, err := json.Marshal(lifecycle.StageSince{Stage: lifecycle.Stage(t.To), Since: t.ObservedAt})
		if err != nil {
			return err
		}
		return b.Put(key, v)
	case lifecycle.TransitionStageStuck:
		var s lifecycle.StageSince
		if json.Unmarshal(b.Get(key), &s) != nil || string(s.Stage) != t.To {
			s = lifecycle.StageSince{Stage: lifecycle.Stage(t.To), Since: t.HappenedAt}
		}
		s.Reported = true
		v, err := json.Marshal(s)
		if err != nil {
			return err
		}
		return b.Put(key, v)
	case lifecycle.TransitionPodRemoved:
		return b.Delete(key)
	}
	return nil
}

// Stages returns every known pod's stage and since when, by pod UID, as the
// journaled transitions left them.
func (j *Journal) Stages() (map[string]lifecycle.StageSince, error) {
	out := map[string]lifecycle.StageSince{}
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStages).ForEach(func(k, v []byte) error {
			var s lifecycle.StageSince
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode stage of %s: %w", k, err)
			}
			out[string(k)] = s
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read stages: %w", err)
	}
	return out, nil
}

// enforceBounds drops the oldest entries past MaxEntries or MaxAge.
func (j *Journal) enforceBounds(entries, meta *bolt.Bucket, now time.Time) error {
	excess := pendingCount(entries) - j.opts.MaxEntries
	cutoff := now.Add(-j.opts.MaxAge)
	var dropped uint64
	c := entries.Cursor()
	for k, v := c.First(); k != nil; k, v = c.First() {
		if excess <= 0 {
			var e Entry
			if err := json.Unmarshal(v, &e); err == nil && !e.AppendedAt.Before(cutoff) {
				break
			}
		}
		if err := c.Delete(); err != nil {
			return err
		}
		excess--
		dropped++
	}
	if dropped == 0 {
		return nil
	}
	return meta.Put(keyDropped, seqKey(getUint(meta, keyDropped)+dropped))
}

// pendingCount counts entries in O(log n): they are always a contiguous run
// of sequences, since acks and drops only ever remove the oldest.
func pendingCount(entries *bolt.Bucket) int {
	k, _ := entries.Cursor().First()
	if k == nil {
		return 0
	}
	return int(entries.Sequence() - binary.BigEndian.Uint64(k) + 1)
}

// Pending returns up to limit undelivered entries, oldest first (limit <= 0:
// all of them).
func (j *Journal) Pending(limit int) ([]Entry, error) {
	var out []Entry
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			// Delivery acknowledges by e.Seq: an entry that is not the one
			// Append wrote here (null, {}, another sequence) would never be
			// removed, or would remove undelivered ones.
			if seq := binary.BigEndian.Uint64(k); e.Seq != seq || e.ID == "" {
				return fmt.Errorf("decode entry %d: not a journal entry (seq %d, id %q)", seq, e.Seq, e.ID)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read pending: %w", err)
	}
	return out, nil
}

// ErrAckAhead is returned when acknowledging a sequence never appended.
var ErrAckAhead = errors.New("acknowledged a sequence past the last appended")

// Ack marks every entry up to and including seq delivered and removes them.
// Acknowledging an already delivered sequence is a no-op, so a retried
// delivery cannot move the journal backwards.
func (j *Journal) Ack(seq uint64) error {
	err := j.db.Update(func(tx *bolt.Tx) error {
		entries, meta := tx.Bucket(bucketEntries), tx.Bucket(bucketMeta)
		if seq > entries.Sequence() {
			return fmt.Errorf("%w: %d > %d", ErrAckAhead, seq, entries.Sequence())
		}
		if seq <= getUint(meta, keyDelivered) {
			return nil
		}
		c := entries.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return meta.Put(keyDelivered, seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("ack %d: %w", seq, err)
	}
	return nil
}

// Stats reads the journal's counters.
func (j *Journal) Stats() (Stats, error) {
	var s Stats
	err := j.db.View(func(tx *bolt.Tx) error {
		entries, meta := tx.Bucket(bucketEntries), tx.Bucket(bucketMeta)
		s.Pending = pendingCount(entries)
		s.LastSeq = entries.Sequence()
		s.Delivered = getUint(meta, keyDelivered)
		s.Dropped = getUint(meta, keyDropped)
		if _, v := entries.Cursor().First(); v != nil {
			var e Entry
			if err := json.Unmarshal(v, &e); err == nil {
				s.OldestPending = e.AppendedAt
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("journal stats: %w", err)
	}
	return s, nil
}
