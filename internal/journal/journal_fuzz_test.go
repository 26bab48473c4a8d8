package journal

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/podlife/podlife/lifecycle"
)

// FuzzJournalEntry checks the journal's entry encoding both ways, through
// the journal itself:
//   - decode(encode(x)) == x: a transition appended (text of any valid UTF-8
//     as its kind, names and detail, any times, any or no exit code) comes
//     back from Pending exactly as Append returned it;
//   - garbage never panics and yields an error: arbitrary bytes stored as
//     the first entry make Pending fail, unless they are an entry Append
//     could have written there (sequence 1, an ID) that encodes and decodes
//     to itself again; either way acknowledging it clears it.
//
// The corpus (testdata/fuzz/FuzzJournalEntry) holds entries as Append
// writes them and hand-made garbage: empty, truncated, null, an empty object,
// wrong types, deep nesting, a sequence not the entry's own.
func FuzzJournalEntry(f *testing.F) {
	f.Add([]byte(`{"seq":1,"id":"0123456789ab-1","appendedAt":"2026-11-25T10:00:00Z","transition":{"kind":"ContainerRestarted","observedAt":"2026-11-25T10:00:00Z"}}`),
		"ContainerRestarted", int32(137), t0.UnixNano())
	f.Add([]byte(`{"seq":1,"id":"x"}`), "", int32(-1), int64(0))
	j, err := Open(filepath.Join(f.TempDir(), "journal.db"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { j.Close() })
	j.db.NoSync = true // each exec appends: no fsync for a file thrown away
	f.Fuzz(func(t *testing.T, stored []byte, text string, exit int32, at int64) {
		// decode(encode(x)) == x; exit -1 stands for no exit code.
		empty(t, j)
		if utf8.ValidString(text) {
			tr := lifecycle.Transition{Kind: lifecycle.TransitionKind(text), Namespace: "ns", Pod: text, UID: text + "-uid",
				Container: "c", Source: "runtime", From: "Running", To: "Terminated", Reason: "Error", Detail: text + "\n" + text,
				ObservedAt: time.Unix(0, at).UTC(), HappenedAt: time.Unix(0, at-int64(exit)*int64(time.Millisecond)).UTC()}
			if exit != -1 {
				tr.ExitCode = &exit
			}
			es, err := j.Append(time.Unix(0, at+1).UTC(), []lifecycle.Transition{tr})
			if err != nil {
				t.Fatalf("append %+v: %v", tr, err)
			}
			got, err := j.Pending(0)
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], es[0]) {
				t.Fatalf("appended %+v, pending %+v: %v", es, got, err)
			}
			if err := j.Ack(es[0].Seq); err != nil {
				t.Fatal(err)
			}
		}

		// Garbage never panics and yields an error.
		empty(t, j)
		var seq uint64
		err := j.db.Update(func(tx *bolt.Tx) error {
			entries := tx.Bucket(bucketEntries)
			var err error
			if seq, err = entries.NextSequence(); err != nil {
				return err
			}
			return entries.Put(seqKey(seq), stored)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := j.Pending(0)
		if err == nil {
			if len(got) != 1 || got[0].Seq != seq || got[0].ID == "" {
				t.Fatalf("stored %q as entry %d, Pending accepts it as %+v", stored, seq, got)
			}
			b, err := json.Marshal(got[0])
			var again Entry
			if err != nil || json.Unmarshal(b, &again) != nil || !reflect.DeepEqual(again, got[0]) {
				t.Fatalf("stored %q as entry %d, accepted as %+v, which does not encode and decode to itself (%s, %v)", stored, seq, got[0], b, err)
			}
		}
		if err := j.Ack(seq); err != nil {
			t.Fatal(err)
		}
		if p, err := j.Pending(0); err != nil || len(p) != 0 {
			t.Fatalf("after acknowledging the stored entry: pending %+v, %v", p, err)
		}
	})
}

// empty makes j as new (but for its ID): no entries, and the next entry's
// sequence is 1, so that a stored entry's place does not depend on the
// execs before.
func empty(t *testing.T, j *Journal) {
	t.Helper()
	err := j.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketEntries); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketEntries); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		for _, k := range [][]byte{keyDelivered, keyDropped} {
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
