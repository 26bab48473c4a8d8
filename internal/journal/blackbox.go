package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The crash black box: the last lines of every container attempt, kept
// beside the transitions so that they survive restarts and partitions.
//
// boxes holds one value per attempt under the key
// namespace \0 pod \0 container \0 finishedAt (8 bytes) \0 containerID, so
// that one pod's attempts, and one container's oldest first, are a prefix
// scan (every incarnation of a pod name: a StatefulSet's pod recreated keeps
// its predecessors' boxes). A value is its capture sequence (8 bytes) and
// the JSON of the BlackBox. boxOrder maps the sequence back to the key, so
// that the size bound evicts the oldest captured first.
var (
	bucketBoxes    = []byte("boxes")
	bucketBoxOrder = []byte("boxorder")
	keyBoxBytes    = []byte("boxbytes")
	keyBoxCount    = []byte("boxcount")
)

// BlackBox is one container attempt as it ended: when it ran, how it ended,
// and the last lines it wrote.
type BlackBox struct {
	Namespace   string    `json:"namespace"`
	Pod         string    `json:"pod"`
	UID         string    `json:"uid"`
	Container   string    `json:"container"`
	ContainerID string    `json:"containerID"`
	Attempt     uint32    `json:"attempt"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
	ExitCode    int32     `json:"exitCode"`
	Reason      string    `json:"reason,omitempty"`
	Message     string    `json:"message,omitempty"`
	// LogPath is the attempt's log file as the runtime named it.
	LogPath string    `json:"logPath,omitempty"`
	Lines   []BoxLine `json:"lines"`
	// Truncated: the attempt wrote more than Lines holds.
	Truncated bool `json:"truncated,omitempty"`
	// ReadBytes is how much of the log file(s) the capture read.
	ReadBytes int64 `json:"readBytes,omitempty"`
	// CaptureError says why no lines were kept (the file was missing or
	// unreadable); the attempt is kept all the same.
	CaptureError string    `json:"captureError,omitempty"`
	CapturedAt   time.Time `json:"capturedAt"`
}

// BoxLine is one line an attempt wrote.
type BoxLine struct {
	Time   time.Time `json:"time,omitzero"`
	Stream string    `json:"stream"`
	// Text is the line for display: invalid UTF-8 and control characters
	// other than tab escaped as \xNN. Raw holds the exact bytes where they
	// differ from Text.
	Text    string `json:"text"`
	Raw     []byte `json:"raw,omitempty"`
	Partial bool   `json:"partial,omitempty"`
}

// BoxLimits bound the black boxes kept.
type BoxLimits struct {
	// PerContainer is the most attempts kept per pod and container name.
	PerContainer int
	// MaxBytes bounds the stored size of all boxes together.
	MaxBytes int64
}

// Evicted counts the boxes a Put removed, by the bound that removed them.
type Evicted struct {
	PerContainer int
	Size         int
}

// BoxStats is what the black box holds.
type BoxStats struct {
	Boxes int   `json:"boxes"`
	Bytes int64 `json:"bytes"`
}

func boxPrefix(ns, pod, container string) []byte {
	k := []byte(ns + "\x00" + pod + "\x00")
	if container != "" {
		k = append(k, container+"\x00"...)
	}
	return k
}

func boxKey(b *BlackBox) []byte {
	k := boxPrefix(b.Namespace, b.Pod, b.Container)
	k = binary.BigEndian.AppendUint64(k, uint64(max(b.FinishedAt.UnixNano(), 0)))
	return append(append(k, 0), b.ContainerID...)
}

// PutBlackBoxes keeps boxes, in one transaction, then evicts past lim:
// first a container's oldest attempts past PerContainer, then the oldest
// captured past MaxBytes (never the box just put). A box already kept (the
// same pod, container, finish and container ID) is not put again.
func (j *Journal) PutBlackBoxes(boxes []BlackBox, lim BoxLimits) (Evicted, error) {
	var ev Evicted
	err := j.db.Update(func(tx *bolt.Tx) error {
		ev = Evicted{}
		bb, order, meta := tx.Bucket(bucketBoxes), tx.Bucket(bucketBoxOrder), tx.Bucket(bucketMeta)
		size, count := int64(getUint(meta, keyBoxBytes)), int(getUint(meta, keyBoxCount))
		var last []byte
		for i := range boxes {
			key := boxKey(&boxes[i])
			if bb.Get(key) != nil {
				continue
			}
			seq, err := order.NextSequence()
			if err != nil {
				return err
			}
			v, err := json.Marshal(&boxes[i])
			if err != nil {
				return fmt.Errorf("encode black box %s: %w", boxes[i].ContainerID, err)
			}
			v = append(seqKey(seq), v...)
			if err := bb.Put(key, v); err != nil {
				return err
			}
			if err := order.Put(seqKey(seq), key); err != nil {
				return err
			}
			size += int64(len(v))
			count++
			last = seqKey(seq)
			n, freed, err := evictPerContainer(bb, order, boxPrefix(boxes[i].Namespace, boxes[i].Pod, boxes[i].Container), lim.PerContainer)
			if err != nil {
				return err
			}
			ev.PerContainer += n
			size -= freed
		}
		n, size, err := evictBySize(bb, order, size, lim.MaxBytes, last)
		if err != nil {
			return err
		}
		ev.Size = n
		count -= ev.PerContainer + ev.Size
		if err := meta.Put(keyBoxCount, seqKey(uint64(max(count, 0)))); err != nil {
			return err
		}
		return meta.Put(keyBoxBytes, seqKey(uint64(max(size, 0))))
	})
	if err != nil {
		return Evicted{}, fmt.Errorf("keep %d black boxes: %w", len(boxes), err)
	}
	return ev, nil
}

// evictPerContainer deletes the oldest attempts under prefix past keep.
func evictPerContainer(bb, order *bolt.Bucket, prefix []byte, keep int) (n int, freed int64, err error) {
	if keep <= 0 {
		return 0, 0, nil
	}
	count := 0
	c := bb.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		count++
	}
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && count > keep; k, v = c.Seek(prefix) {
		freed += int64(len(v))
		if err := deleteBox(bb, order, k, v); err != nil {
			return n, freed, err
		}
		count--
		n++
	}
	return n, freed, nil
}

// evictBySize deletes the oldest captured boxes while size exceeds max,
// stopping at the sequence keep.
func evictBySize(bb, order *bolt.Bucket, size, maxBytes int64, keep []byte) (n int, left int64, err error) {
	if maxBytes <= 0 {
		return 0, size, nil
	}
	c := order.Cursor()
	for k, key := c.First(); k != nil && size > maxBytes && !bytes.Equal(k, keep); k, key = c.First() {
		v := bb.Get(key)
		size -= int64(len(v))
		if err := deleteBox(bb, order, key, v); err != nil {
			return n, size, err
		}
		n++
	}
	return n, size, nil
}

// deleteBox removes the box at key, whose stored value is v, and its order entry.
func deleteBox(bb, order *bolt.Bucket, key, v []byte) error {
	key = bytes.Clone(key) // the cursor's key is invalid after a delete
	if len(v) >= 8 {
		if err := order.Delete(v[:8]); err != nil {
			return err
		}
	}
	return bb.Delete(key)
}

// BlackBoxes returns the boxes of the pod named namespace/pod (of every
// incarnation), by container, each container's oldest first; container ""
// means all of them.
func (j *Journal) BlackBoxes(namespace, pod, container string) ([]BlackBox, error) {
	var out []BlackBox
	prefix := boxPrefix(namespace, pod, container)
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBoxes).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var b BlackBox
			if len(v) < 8 {
				return fmt.Errorf("black box %q: %d bytes", k, len(v))
			}
			if err := json.Unmarshal(v[8:], &b); err != nil {
				return fmt.Errorf("black box %q: %w", k, err)
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read black boxes of %s/%s: %w", namespace, pod, err)
	}
	return out, nil
}

// HasBlackBox reports whether the attempt with containerID of the named
// pod's container is kept.
func (j *Journal) HasBlackBox(namespace, pod, container, containerID string) (bool, error) {
	found := false
	prefix := boxPrefix(namespace, pod, container)
	err := j.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketBoxes).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) >= len(prefix)+9 && string(k[len(prefix)+9:]) == containerID {
				found = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("look up black box %s: %w", containerID, err)
	}
	return found, nil
}

// BlackBoxStats counts the boxes kept and their stored size.
func (j *Journal) BlackBoxStats() (BoxStats, error) {
	var s BoxStats
	err := j.db.View(func(tx *bolt.Tx) error {
		s.Boxes = int(getUint(tx.Bucket(bucketMeta), keyBoxCount))
		s.Bytes = int64(getUint(tx.Bucket(bucketMeta), keyBoxBytes))
		return nil
	})
	if err != nil {
		return BoxStats{}, fmt.Errorf("black box stats: %w", err)
	}
	return s, nil
}

// verifyBoxes checks that every box decodes and has its order entry.
func verifyBoxes(tx *bolt.Tx) error {
	bb, order := tx.Bucket(bucketBoxes), tx.Bucket(bucketBoxOrder)
	if bb == nil {
		return nil
	}
	return bb.ForEach(func(k, v []byte) error {
		var b BlackBox
		if len(v) < 8 || json.Unmarshal(v[8:], &b) != nil {
			return fmt.Errorf("%w: black box %q does not decode", ErrCorrupt, k)
		}
		if order == nil || !bytes.Equal(order.Get(v[:8]), k) {
			return fmt.Errorf("%w: black box %q has no order entry", ErrCorrupt, k)
		}
		return nil
	})
}
