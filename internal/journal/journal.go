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

// Open opens or creates the journal file at path.
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
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open journal %s: locked by another process (is another podlife agent running?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &Journal{db: db, opts: opts}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketStages); err != nil {
			return err
		}
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
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
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise journal %s: %w", path, err)
	}
	return j, nil
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
