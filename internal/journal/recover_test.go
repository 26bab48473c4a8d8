package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/podlife/podlife/lifecycle"
)

// written makes a journal at path with n appended entries, closes it, and
// returns the size its pages need (bbolt's high-water mark).
func written(t *testing.T, path string, n int) int64 {
	t.Helper()
	j, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for i := 0; i < n; i += 10 {
		var ts []lifecycle.Transition
		for k := i; k < i+10 && k < n; k++ {
			ts = append(ts, tr(k))
		}
		if _, err := j.Append(t0, ts); err != nil {
			t.Fatal(err)
		}
	}
	var size int64
	j.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}

// rewrite opens the journal's bbolt file directly and runs f in an update.
func rewrite(t *testing.T, path string, f func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(f); err != nil {
		t.Fatal(err)
	}
}

// Every way a journal file can be unusable is recognised at Open, without a
// panic or a crash, as corrupt or of an unknown format, and leaves no lock on
// the file behind; OpenOrMoveAside keeps the bad file byte for byte under a
// new name and starts a fresh journal. The cases pin how this bbolt version
// reads its file (see openChecked): one that reads more pages inside its Open
// crashes the test, or holds a lock it cannot release.
func TestUnusableJournalIsMovedAside(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		want   error
		suffix string
		// keepsLock: the one damage that faults inside bbolt's Open, whose
		// read-only mapping and shared lock stay (see openChecked).
		keepsLock bool
	}{
		{"truncated inside its pages", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-4096); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt, ".corrupt-", false},
		{"truncated to its meta pages", func(t *testing.T, path string, _ int64) {
			if err := os.Truncate(path, 2*4096); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt, ".corrupt-", false},
		{"truncated to one page", func(t *testing.T, path string, _ int64) {
			if err := os.Truncate(path, 4096); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt, ".corrupt-", false},
		{"not a bbolt file", func(t *testing.T, path string, _ int64) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a journal\n"), 5000), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt, ".corrupt-", false},
		{"meta pages zeroed", func(t *testing.T, path string, _ int64) {
			overwrite(t, path, 0, make([]byte, 2*4096))
		}, ErrCorrupt, ".corrupt-", false},
		{"data pages overwritten with noise", func(t *testing.T, path string, size int64) {
			noise := make([]byte, size-2*4096)
			r := rand.NewChaCha8([32]byte{1})
			r.Read(noise)
			overwrite(t, path, 2*4096, noise)
		}, ErrCorrupt, ".corrupt-", false},
		{"the freelist page overwritten with noise", func(t *testing.T, path string, _ int64) {
			noise := make([]byte, 4096)
			rand.NewChaCha8([32]byte{3}).Read(noise)
			overwrite(t, path, int64(pageOfType(t, path, "freelist"))*4096, noise)
		}, ErrCorrupt, ".corrupt-", true},
		{"a leaf page overwritten with noise", func(t *testing.T, path string, _ int64) {
			noise := make([]byte, 4096-16)
			rand.NewChaCha8([32]byte{2}).Read(noise)
			overwrite(t, path, int64(pageOfType(t, path, "leaf"))*4096+16, noise)
		}, ErrCorrupt, ".corrupt-", false},
		{"a leaf element pointing a gigabyte past the file", func(t *testing.T, path string, _ int64) {
			// The first element's pos: reading its key faults (SIGSEGV) rather
			// than failing a bounds check.
			var pos [4]byte
			binary.LittleEndian.PutUint32(pos[:], 1<<30)
			overwrite(t, path, int64(pageOfType(t, path, "leaf"))*4096+16+4, pos[:])
		}, ErrCorrupt, ".corrupt-", false},
		{"an entry that is not JSON", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketEntries).Put(seqKey(3), []byte("\x00garbage")) })
		}, ErrCorrupt, ".corrupt-", false},
		{"a black box that is not JSON", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketBoxes).Put([]byte("ns\x00p\x00c\x00"), append(seqKey(1), "\x00garbage"...))
			})
		}, ErrCorrupt, ".corrupt-", false},
		{"a black box without its order entry", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketBoxes).Put([]byte("ns\x00p\x00c\x00"), append(seqKey(1), "{}"...))
			})
		}, ErrCorrupt, ".corrupt-", false},
		{"an entry under another sequence", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketEntries)
				return b.Put(seqKey(4), b.Get(seqKey(5)))
			})
		}, ErrCorrupt, ".corrupt-", false},
		{"a stage that is not JSON", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketStages).Put([]byte("uid"), []byte("{")) })
		}, ErrCorrupt, ".corrupt-", false},
		{"format version 2", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, seqKey(2)) })
		}, ErrUnknownFormat, ".unknown-format-", false},
		{"format version not a number", func(t *testing.T, path string, _ int64) {
			rewrite(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("v1")) })
		}, ErrCorrupt, ".corrupt-", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "journal.db")
			size := written(t, path, 300)
			tc.damage(t, path, size)
			bad, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// Twice: a failed Open leaves nothing behind (no lock held by a
			// mapping bbolt could not undo).
			for range 2 {
				_, err = Open(path, Options{OpenTimeout: 100 * time.Millisecond})
				if !errors.Is(err, tc.want) {
					t.Fatalf("Open: %v, want %v", err, tc.want)
				}
			}
			if held := lockHeld(t, path); held != tc.keepsLock {
				t.Errorf("a lock on the file is held after Open: %v, want %v", held, tc.keepsLock)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is not one line: %q", err)
			}
			t.Logf("Open: %v", err)

			j, moved, err := OpenOrMoveAside(path, Options{}, t0)
			if err != nil {
				t.Fatalf("OpenOrMoveAside: %v", err)
			}
			defer j.Close()
			if moved == nil || !errors.Is(moved.Err, tc.want) {
				t.Fatalf("moved %+v, want the reason %v", moved, tc.want)
			}
			if want := path + tc.suffix + "20261125T100000Z"; moved.Path != want {
				t.Errorf("moved to %s, want %s", moved.Path, want)
			}
			kept, err := os.ReadFile(moved.Path)
			if err != nil || !bytes.Equal(kept, bad) {
				t.Fatalf("the bad file was not kept as it was (%d bytes, want %d): %v", len(kept), len(bad), err)
			}
			st, err := j.Stats()
			if err != nil || st.LastSeq != 0 || st.Pending != 0 {
				t.Fatalf("the fresh journal: %+v, %v", st, err)
			}
			if _, err := j.Append(t0, []lifecycle.Transition{tr(1)}); err != nil {
				t.Fatalf("append to the fresh journal: %v", err)
			}
		})
	}
}

// lockHeld says whether anything holds a lock on the file at path, as
// bbolt's lock (flock) would stop another agent's Open.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); {
	case err == nil:
		return false
	case errors.Is(err, syscall.EWOULDBLOCK):
		return true
	default:
		t.Fatal(err)
		return false
	}
}

// pageOfType finds a page of the journal of the type bbolt names typ ("leaf":
// one that is not the root).
func pageOfType(t *testing.T, path, typ string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var found int
	db.View(func(tx *bolt.Tx) error {
		for id := 2; found == 0 && int64(id)*4096 < tx.Size(); id++ {
			if info, err := tx.Page(id); err == nil && info != nil && info.Type == typ && (typ != "leaf" || info.Count > 10) {
				found = id
			}
		}
		return nil
	})
	if found == 0 {
		t.Fatalf("no %s page", typ)
	}
	return found
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A good journal is opened as it is; one written before the format key
// existed is format 1 and gets the key; a second bad file in the same second
// does not overwrite the first one moved aside.
func TestFormatVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	written(t, path, 20)
	rewrite(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyFormat) })
	j, moved, err := OpenOrMoveAside(path, Options{}, t0)
	if err != nil || moved != nil {
		t.Fatalf("a journal without a format key: moved %+v, %v", moved, err)
	}
	if st, _ := j.Stats(); st.LastSeq != 20 {
		t.Fatalf("entries lost: %+v", st)
	}
	var format []byte
	j.db.View(func(tx *bolt.Tx) error { format = bytes.Clone(tx.Bucket(bucketMeta).Get(keyFormat)); return nil })
	if !bytes.Equal(format, seqKey(FormatVersion)) {
		t.Fatalf("format key %x, want %d", format, FormatVersion)
	}
	j.Close()

	var paths []string
	for range 2 {
		if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		j, moved, err := OpenOrMoveAside(path, Options{}, t0)
		if err != nil || moved == nil {
			t.Fatalf("moved %+v, %v", moved, err)
		}
		j.Close()
		paths = append(paths, moved.Path)
	}
	if paths[0] == paths[1] {
		t.Fatalf("both bad files moved to %s", paths[0])
	}
	// A journal locked by another agent is neither corrupt nor moved.
	j, _, err = OpenOrMoveAside(path, Options{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	_, moved, err = OpenOrMoveAside(path, Options{OpenTimeout: 50e6}, t0)
	if !errors.Is(err, ErrLocked) || moved != nil {
		t.Fatalf("a locked journal: moved %+v, %v", moved, err)
	}
}

// An error of the file system says nothing about the journal's content: it is
// returned as it is and nothing is moved aside (here a directory stands in
// the journal's place, which bbolt would read as an invalid database).
func TestFileSystemErrorIsNotCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, moved, err := OpenOrMoveAside(path, Options{}, t0)
	if !errors.Is(err, syscall.EISDIR) || errors.Is(err, ErrCorrupt) || moved != nil {
		t.Fatalf("a directory in the journal's place: moved %+v, %v", moved, err)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("the directory is no longer in place: %v", err)
	}
}
