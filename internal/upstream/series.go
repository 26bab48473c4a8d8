package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations of a podlife Event beside its podlife.dev/seq label (the
// journal entry that created it).
const (
	// AnnotationSeqs lists every journal sequence the Event stands for, as
	// ranges ("101-105,110"): the first and the repeats folded into its series.
	AnnotationSeqs = "podlife.dev/seqs"
	// AnnotationLast is the newest repeat's note: an Event's own note is
	// immutable.
	AnnotationLast = "podlife.dev/last"
)

// MaxSeries ends a series after this many occurrences, and the next repeat
// starts a new Event: its podlife.dev/seqs stays small, and an Event whose
// series never pauses (a crash loop at its 5-minute back-off) still expires.
const MaxSeries = 100

// SeriesWindow is how long after an Event's last occurrence a repeat (same
// pod, reason and type) still joins its series rather than making a new
// Event: client-go's events/v1 recorder finishes a series after 6 minutes
// without one (k8s.io/client-go/tools/events/event_broadcaster.go,
// finishTime).
const SeriesWindow = 6 * time.Minute

// seriesKey is what makes two Events isomorphic, as client-go's eventKey
// without the note (the action, controller and instance are podlife's own).
type seriesKey struct{ uid, object, reason, typ string }

// series is one Event and the repeats folded into it.
type series struct {
	ev      *eventsv1.Event // as created
	count   int32           // occurrences, the first included
	written int32           // the count the Event shows
	last    time.Time       // the newest occurrence
	seqs    []uint64        // journal sequences, ascending
	lastID  string          // the newest occurrence's entry ID
	note    string          // the newest occurrence's note
}

func keyOf(ev *eventsv1.Event) seriesKey {
	return seriesKey{string(ev.Regarding.UID), ev.Regarding.Namespace + "/" + ev.Regarding.Name, ev.Reason, ev.Type}
}

// fold adds an entry's Event to its series, or reports that it starts a new
// one (an Event to create), with the series it ends if that one has repeats
// not written yet (to write first). A sequence already in the series (an
// entry delivered again after a failed round) is not counted twice.
func (r *Reporter) fold(seq uint64, id string, ev *eventsv1.Event) (joined bool, ended *series) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series[keyOf(ev)]
	when := ev.EventTime.Time
	if when.After(r.newest) {
		r.newest = when
	}
	if s == nil || s.written == 0 {
		return false, nil
	}
	if len(s.seqs) > 0 && seq <= s.seqs[len(s.seqs)-1] {
		return true, nil // counted already
	}
	if when.Sub(s.last) > SeriesWindow || s.count >= MaxSeries {
		if s.count > s.written {
			return false, s
		}
		return false, nil
	}
	s.count++
	s.seqs = append(s.seqs, seq)
	s.last, s.lastID, s.note = when, id, ev.Note
	r.stats.Folded++
	return true, nil
}

// started records the Event just created as the start of a series.
func (r *Reporter) started(seq uint64, id string, ev *eventsv1.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := keyOf(ev)
	r.series[k] = &series{ev: ev, count: 1, written: 1, last: ev.EventTime.Time, seqs: []uint64{seq}, lastID: id, note: ev.Note}
}

// flushSeries writes the count of every series with unwritten repeats, and
// forgets the series that ended. A round's repeats thus cost one write per
// series, not one each.
func (r *Reporter) flushSeries(ctx context.Context) error {
	r.mu.Lock()
	var due []*series
	for k, s := range r.series {
		switch {
		case s.count > s.written:
			due = append(due, s)
		case s.count == s.written && r.newest.Sub(s.last) > SeriesWindow:
			// Ended on the transitions' own clock: a backlog replayed
			// long after still folds as it happened.
			delete(r.series, k)
		}
	}
	r.mu.Unlock()
	for _, s := range due {
		if err := r.writeSeries(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// writeSeries patches a series' count onto its Event; an Event gone (its
// TTL passed) is created again for the unwritten repeats.
func (r *Reporter) writeSeries(ctx context.Context, s *series) error {
	r.mu.Lock()
	count, seqs, last, note, id := s.count, append([]uint64(nil), s.seqs...), s.last, s.note, s.lastID
	r.mu.Unlock()
	patch, err := json.Marshal(map[string]any{
		"series":   eventsv1.EventSeries{Count: count, LastObservedTime: metav1.NewMicroTime(last)},
		"metadata": map[string]any{"annotations": map[string]string{AnnotationSeqs: seqRanges(seqs), AnnotationLast: note}},
	})
	if err != nil {
		return fmt.Errorf("encode event series patch: %w", err)
	}
	err = r.cs.PatchEvent(ctx, s.ev.Namespace, s.ev.Name, patch)
	switch {
	case err == nil:
		r.mu.Lock()
		s.written = max(s.written, count)
		r.mu.Unlock()
		return nil
	case apierrors.IsNotFound(err):
		return r.recreate(ctx, s, id)
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		r.mu.Lock()
		s.written = max(s.written, count)
		r.stats.Rejected++
		r.mu.Unlock()
		r.log.Error("API server rejected an event series update; dropping it", "event", s.ev.Name, "err", oneLine(err))
		return nil
	}
	return fmt.Errorf("patch event %s/%s series: %w", s.ev.Namespace, s.ev.Name, err)
}

// recreate makes a new Event of a series whose Event is gone, standing for
// the repeats it never showed, named after the newest of them.
func (r *Reporter) recreate(ctx context.Context, s *series, id string) error {
	r.mu.Lock()
	unwritten := s.seqs[len(s.seqs)-int(s.count-s.written):]
	ev := s.ev.DeepCopy()
	ev.ObjectMeta = metav1.ObjectMeta{Name: eventName(ev.Regarding.Name, id), Namespace: ev.Namespace,
		Labels: map[string]string{"podlife.dev/seq": fmt.Sprint(unwritten[0])}, Annotations: map[string]string{AnnotationSeqs: seqRanges(unwritten)}}
	ev.EventTime, ev.Series, ev.Note = metav1.NewMicroTime(s.last), nil, s.note
	if n := int32(len(unwritten)); n > 1 {
		ev.Series = &eventsv1.EventSeries{Count: n, LastObservedTime: metav1.NewMicroTime(s.last)}
	}
	r.mu.Unlock()
	if err := r.create(ctx, ev); err != nil {
		return err
	}
	r.mu.Lock()
	s.ev, s.seqs = ev, append([]uint64(nil), unwritten...)
	s.count, s.written = int32(len(unwritten)), int32(len(unwritten))
	r.mu.Unlock()
	return nil
}

// seqRanges writes ascending sequences as ranges: 101-105,110.
func seqRanges(seqs []uint64) string {
	var b strings.Builder
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", seqs[i], seqs[j])
		} else {
			fmt.Fprint(&b, seqs[i])
		}
		i = j + 1
	}
	return b.String()
}

// ParseSeqRanges reads an AnnotationSeqs value back into sequences.
func ParseSeqRanges(s string) ([]uint64, error) {
	var out []uint64
	for part := range strings.SplitSeq(s, ",") {
		if part == "" {
			continue
		}
		var lo, hi uint64
		if a, b, ok := strings.Cut(part, "-"); ok {
			if _, err := fmt.Sscan(a, &lo); err != nil {
				return nil, fmt.Errorf("seqs %q: %w", s, err)
			}
			if _, err := fmt.Sscan(b, &hi); err != nil {
				return nil, fmt.Errorf("seqs %q: %w", s, err)
			}
		} else if _, err := fmt.Sscan(part, &lo); err != nil {
			return nil, fmt.Errorf("seqs %q: %w", s, err)
		} else {
			hi = lo
		}
		if hi < lo || hi-lo > 1<<20 {
			return nil, fmt.Errorf("seqs %q: bad range %q", s, part)
		}
		for v := lo; v <= hi; v++ {
			out = append(out, v)
		}
	}
	return out, nil
}
