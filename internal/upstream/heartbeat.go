package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The heartbeat Lease's annotations: what `kubectl podlife nodes` shows of a
// node without asking its agent.
const (
	AnnotationPodsFailing   = "podlife.dev/pods-failing"
	AnnotationPodsUnknown   = "podlife.dev/pods-unknown"
	AnnotationKubeletLink   = "podlife.dev/kubelet-link"
	AnnotationLastPartition = "podlife.dev/last-partition"
	// AnnotationLastPartitionSummary: "<duration>; <pods> pods, <restarts>
	// restarts, <exits> exits".
	AnnotationLastPartitionSummary = "podlife.dev/last-partition-summary"
)

// HeartbeatLeasePrefix names a node's heartbeat Lease: podlife-<node>.
const HeartbeatLeasePrefix = "podlife-"

// NodeSummary is what an agent says of its node in its heartbeat Lease.
type NodeSummary struct {
	Failing, Unknown int
	// KubeletLink is "up", "cut-off" or "" (unknown).
	KubeletLink string
	// LastPartition is when podlife's last partition began (zero: none
	// since the agent started), and Partition what it summed up.
	LastPartition time.Time
	Partition     string
}

func (s NodeSummary) annotations() map[string]string {
	a := map[string]string{AnnotationPodsFailing: strconv.Itoa(s.Failing), AnnotationPodsUnknown: strconv.Itoa(s.Unknown)}
	if s.KubeletLink != "" {
		a[AnnotationKubeletLink] = s.KubeletLink
	}
	if !s.LastPartition.IsZero() {
		a[AnnotationLastPartition] = s.LastPartition.UTC().Format(time.RFC3339)
		a[AnnotationLastPartitionSummary] = s.Partition
	}
	return a
}

// LeaseWriter reads and writes Leases; *Client is the real one.
type LeaseWriter interface {
	GetLease(ctx context.Context, namespace, name string) (*coordinationv1.Lease, error)
	CreateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error)
	UpdateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error)
}

// Heartbeat keeps the agent's Lease podlife-<node> in its namespace: renewed
// every Interval (its duration is two), and rewritten when the summary
// changes, at most once per MinGap. A fleet of N agents thus costs N/Interval
// writes at rest, and one list answers for all of them.
type Heartbeat struct {
	cs        LeaseWriter
	namespace string
	node      string
	every     time.Duration
	gap       time.Duration
	log       *slog.Logger

	mu      sync.Mutex
	lease   *coordinationv1.Lease // as last written or read
	exists  bool                  // lease is in the API server
	written time.Time
	sent    map[string]string
	// After a failed write, none before retryAt; backoff doubles from
	// MinGap/6 to Interval (a missing Role must not cost a fleet a request
	// every few seconds per node).
	retryAt time.Time
	backoff time.Duration
}

// MinGap is the least time between two heartbeat writes for a change.
const MinGap = time.Minute

// NewHeartbeat builds the heartbeat of node in namespace.
func NewHeartbeat(cs LeaseWriter, namespace, node string, every time.Duration, log *slog.Logger) *Heartbeat {
	return &Heartbeat{cs: cs, namespace: namespace, node: node, every: every, gap: MinGap, log: log}
}

// Due reports whether Sync would write now.
func (h *Heartbeat) Due(s NodeSummary, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dueLocked(s.annotations(), now)
}

func (h *Heartbeat) dueLocked(a map[string]string, now time.Time) bool {
	switch {
	case now.Before(h.retryAt):
		return false
	case h.written.IsZero() || now.Sub(h.written) >= h.every:
		return true
	case now.Sub(h.written) < h.gap:
		return false
	}
	if len(a) != len(h.sent) {
		return true
	}
	for k, v := range a {
		if h.sent[k] != v {
			return true
		}
	}
	return false
}

// Sync writes the Lease when it is due: the first time (reading the Lease
// an earlier agent left, or creating it), every Interval, or on a change
// of the summary after MinGap.
func (h *Heartbeat) Sync(ctx context.Context, s NodeSummary, now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := s.annotations()
	if !h.dueLocked(a, now) {
		return nil
	}
	err := h.write(ctx, a, now)
	if err != nil {
		h.backoff = min(max(2*h.backoff, h.gap/6), h.every)
		h.retryAt = now.Add(h.backoff)
		return err
	}
	h.backoff, h.retryAt = 0, time.Time{}
	return nil
}

// write reads the Lease once (an earlier agent's) and writes it. Called with
// mu held.
func (h *Heartbeat) write(ctx context.Context, a map[string]string, now time.Time) error {
	name := HeartbeatLeasePrefix + h.node
	if h.lease == nil {
		l, err := h.cs.GetLease(ctx, h.namespace, name)
		switch {
		case apierrors.IsNotFound(err):
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.namespace}}
		case err != nil:
			return fmt.Errorf("heartbeat lease %s/%s: %w", h.namespace, name, err)
		}
		h.lease, h.exists = l, err == nil
	}
	l := h.lease.DeepCopy()
	secs := int32(2 * h.every / time.Second)
	holder := h.node
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds = &holder, &secs
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	l.Annotations = a
	var out *coordinationv1.Lease
	var err error
	if !h.exists {
		out, err = h.cs.CreateLease(ctx, l)
	} else {
		out, err = h.cs.UpdateLease(ctx, l)
	}
	if err != nil {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			h.lease = nil // read it again next time
		}
		return fmt.Errorf("heartbeat lease %s/%s: %w", h.namespace, name, err)
	}
	h.lease, h.exists, h.written, h.sent = out, true, now, a
	return nil
}
