package kubelet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/podlife/podlife/internal/localgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	podsv1alpha1 "k8s.io/kubelet/pkg/apis/pods/v1alpha1"

	"github.com/podlife/podlife/lifecycle"
)

// The kubelet's Pods API (feature gate PodsAPI: alpha in 1.36, beta and on by
// default in 1.37; k8s.io/kubernetes pkg/kubelet/apis/pods/server.go) is a
// gRPC service on a unix socket under the kubelet's root directory
// (getPodsAPIDir: <root>/pods-api; util.LocalEndpoint: <dir>/pods-api.sock),
// with no token and no TLS: filesystem permissions only. Each pod it serves
// carries the status manager's status (statusProvider.GetPodStatus): the
// kubelet's own live status, for API-managed pods too, whether or not the
// API server is reachable — where /pods serves the API server's copy; only a
// pod the kubelet has not synced since it started is served as the API
// server's copy with Ready forced False (see podsAPIStatusFrom).

// DefaultPodsAPISocket is the Pods API socket of a kubelet with the default
// root directory (/var/lib/kubelet).
const DefaultPodsAPISocket = "/var/lib/kubelet/pods-api/pods-api.sock"

// Kubelet source modes, as State.Health.Mode names them.
const (
	// ModePodsAPI follows the kubelet's Pods API watch: its live status.
	ModePodsAPI = "pods-api"
	// ModePodsHTTP polls /pods: the pod manager, whose status for
	// API-managed pods is the API server's copy.
	ModePodsHTTP = "pods-http"
)

// Pods API reconnection: a broken watch is retried at once and then with a
// doubling delay up to podsAPIMaxBackoff; where the Pods API is not there
// (no socket, refused, Unimplemented), /pods is polled and the socket tried
// again every podsAPIRetry.
const (
	podsAPIMinBackoff = 250 * time.Millisecond
	podsAPIMaxBackoff = 5 * time.Second
	podsAPIRetry      = 10 * time.Second
	// podsAPIHeartbeatMin bounds the period of the list (reconciliation and
	// heartbeat) from below.
	podsAPIHeartbeatMin = 5 * time.Second
	// podsAPIListSoon is how soon a DELETED event is followed by a list.
	podsAPIListSoon = 200 * time.Millisecond
	// podsAPIPlaceholderMessage is the Ready condition's message of a pod the
	// kubelet has not synced since it started (server.go getEffectivePodStatus).
	podsAPIPlaceholderMessage = "Kubelet is initializing pod containers"
	// fieldListedPods is ListPodsResponse's repeated pods field (api.proto).
	fieldListedPods = 1
	// podsAPIMaxMessage bounds one watch event (a pod); the kubelet's
	// objects are at most ~1.5 MiB (etcd's limit) and usually a few KiB.
	podsAPIMaxMessage = 16 << 20
)

// absent marks the failures that mean "this kubelet serves no Pods API here"
// (no socket, refused, Unimplemented), as opposed to a watch that broke:
// the source falls back to /pods.
type absent struct{ error }

func (a absent) Unwrap() error { return a.error }

// isAbsent reports whether err says there is no Pods API to follow.
func isAbsent(err error) bool {
	var a absent
	return errors.As(err, &a)
}

// podsAPIWatch follows one WatchPods stream until it ends. It publishes the
// initial list once, at INITIAL_SYNC_COMPLETE, then every change as it
// arrives; synced reports whether it got that far.
func (s *Source) podsAPIWatch(ctx context.Context) (synced bool, err error) {
	path := s.cfg.PodsAPISocket
	if _, err := os.Stat(path); err != nil {
		return false, absent{fmt.Errorf("kubelet Pods API: %w", err)}
	}
	conn, err := grpc.NewClient("unix://"+path, append(localgrpc.DialOptions(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(podsAPIMaxMessage)))...)
	if err != nil {
		return false, absent{fmt.Errorf("kubelet Pods API %s: %w", path, err)}
	}
	defer conn.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &podsAPIFeed{s: s, client: podsv1alpha1.NewPodsClient(conn), pods: map[string]*lifecycle.Pod{},
		touched: map[string]bool{}, listPods: func(ctx context.Context, answer *[]byte) error {
			return localgrpc.InvokeRaw(ctx, conn, podsv1alpha1.Pods_ListPods_FullMethodName, &podsv1alpha1.ListPodsRequest{}, answer)
		}}
	stream, err := f.client.WatchPods(wctx, &podsv1alpha1.WatchPodsRequest{})
	if err != nil {
		return false, f.failed(ctx, err)
	}
	events := make(chan recvResult)
	go func() {
		for {
			ev, err := stream.Recv()
			select {
			case events <- recvResult{ev, err}:
			case <-wctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	start := time.Now()
	list := time.NewTicker(s.heartbeatEvery())
	defer list.Stop()
	var soon <-chan time.Time // a list asked for by a DELETED event
	// pending are the pods changed since the last publication; the first
	// of a watch publishes records all new.
	var pending []string
	published := false
	for {
		changed := false
		select {
		case <-wctx.Done():
			return synced, nil
		case r := <-events:
			if r.err != nil {
				return synced, f.failed(ctx, r.err)
			}
			if start.IsZero() {
				start = time.Now()
			}
			uid, deleted, err := applyPodEvent(f.pods, r.ev)
			if err != nil {
				return synced, fmt.Errorf("kubelet Pods API %s: %w", path, err)
			}
			if uid != "" {
				f.touched[uid] = true // its listed bytes no longer say what the feed holds
				if !deleted {
					f.revise(uid)
					pending = append(pending, uid)
				}
			}
			if deleted && soon == nil {
				soon = time.After(podsAPIListSoon)
			}
			synced = synced || r.ev.GetType() == podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE
			changed = true
		case <-soon:
			soon = nil
			if changed, err = f.reconcile(wctx, &pending); err != nil && !errors.Is(err, errListUnanswered) {
				return synced, err
			}
		case <-list.C:
			changed, err = f.reconcile(wctx, &pending)
			switch {
			case errors.Is(err, errListUnanswered): // no heartbeat: the next period tries again
			case err != nil:
				return synced, err
			case synced && !changed:
				// The kubelet answered, nothing changed: still its
				// answer. A quiet node's pods must not go stale.
				s.alive()
			}
		}
		if synced && changed {
			// Latency: the initial list's, from the call; then each event's decoding.
			s.publishPodsAPI(f.list(), pending, !published, time.Since(start))
			start, pending, published = time.Time{}, pending[:0], true
		}
	}
}

type recvResult struct {
	ev  *podsv1alpha1.WatchPodsEvent
	err error
}

// podsAPIFeed is one watch's view of the kubelet's pods. The watch alone
// cannot be trusted to end right, so every heartbeatEvery (and soon after
// a DELETED) the kubelet's list replaces it (reconcile):
//   - DELETED means the pod has finished, not that the kubelet forgot it: the
//     status manager sends it from TerminatePod (pkg/kubelet/status
//     status_manager.go sendNotification), with a bare pod and no final
//     status, while the pod stays in the pod manager (listed, with that
//     status) until the API server deletes it — which sends nothing
//     (pkg/kubelet/kubelet.go HandlePodRemoves). A finished pod listed at
//     the start of a watch gets no event at all.
//   - the status manager notifies after releasing its lock, so two updates of
//     one pod can arrive in the wrong order, and the broadcaster drops an
//     event for a full client buffer (pkg/kubelet/apis/pods/server.go).
//
// The list is also the heartbeat: a kubelet whose socket accepts but which
// answers nothing is hung. One call per period, where the kubelet allows 100
// per second for all its clients and logs each at its default verbosity.
type podsAPIFeed struct {
	s      *Source
	client podsv1alpha1.PodsClient // its watch
	// listPods lists the kubelet's pods into *answer, an undecoded
	// ListPodsResponse (localgrpc.InvokeRaw): the list is mostly pods whose
	// bytes did not change, which need no decoding, and a 500 kB answer
	// every period is received into the same array (answer).
	listPods func(ctx context.Context, answer *[]byte) error
	answer   []byte
	pods     map[string]*lifecycle.Pod    // records never modified once listed
	listed   map[[sha256.Size]byte]string // the digest of each pod's bytes as last listed -> its UID
	touched  map[string]bool              // pods an event changed since the last list
	// uids are the pods' UIDs in order: nil once a pod is gone, sorted
	// again when a pod came or went.
	uids []string
}

// revise gives the pod's new record its revision (lifecycle.Pod.Revision):
// each pod an event or a list changed gets the source's next. The record
// is the one the event or the list just made, not yet listed (a listed
// record is never modified).
func (f *podsAPIFeed) revise(uid string) {
	f.s.podRev++
	f.pods[uid].Revision = f.s.podRev
}

// list is the pods sorted by UID, as the kubelet lists them.
func (f *podsAPIFeed) list() []*lifecycle.Pod {
	if len(f.uids) != len(f.pods) {
		f.uids = slices.Sorted(maps.Keys(f.pods))
	}
	list := make([]*lifecycle.Pod, len(f.uids))
	for i, uid := range f.uids {
		list[i] = f.pods[uid]
	}
	return list
}

// reconcile makes the kubelet's list the feed's pods, decoding only the pods
// whose bytes changed since the last list or that an event touched since. It
// reports whether the pods changed, adding the UIDs of those that did to
// changed. Its error ends the watch, except errListUnanswered: a list
// rate-limited (ResourceExhausted), refused while the kubelet initializes
// (FailedPrecondition) or cut by a closing connection (which the stream
// reports) waits for the next period, and is no heartbeat; a kubelet that
// gives no answer within the timeout is hung.
func (f *podsAPIFeed) reconcile(ctx context.Context, changedPods *[]string) (bool, error) {
	lctx, cancel := context.WithTimeout(ctx, f.s.cfg.Timeout)
	defer cancel()
	if err := f.listPods(lctx, &f.answer); err != nil {
		if status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil {
			return false, fmt.Errorf("kubelet Pods API %s: no answer within %s (a hung kubelet?)", f.s.cfg.PodsAPISocket, f.s.cfg.Timeout)
		}
		return false, fmt.Errorf("%w: %w", errListUnanswered, err)
	}
	listed := make(map[[sha256.Size]byte]string, len(f.listed))
	changed := false
	err := localgrpc.Items(f.answer, fieldListedPods, func(b []byte) error {
		key := sha256.Sum256(b) // not the bytes: a list is 2 kB a pod
		uid, same := f.listed[key]
		if !same || f.touched[uid] {
			var took bool
			var err error
			if uid, took, err = f.take(b); err != nil {
				return err
			}
			if took {
				changed = true
				*changedPods = append(*changedPods, uid)
			}
		}
		listed[key] = uid
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("kubelet Pods API %s: ListPods: %w", f.s.cfg.PodsAPISocket, err)
	}
	kept := make(map[string]bool, len(listed))
	for _, uid := range listed {
		kept[uid] = true
	}
	for uid := range f.pods {
		if !kept[uid] {
			delete(f.pods, uid)
			changed, f.uids = true, nil
			*changedPods = append(*changedPods, uid)
		}
	}
	f.listed, f.touched = listed, map[string]bool{}
	return changed, nil
}

// take decodes a listed pod and makes it the feed's record unless the one
// held says the same, reporting its UID and whether it took it.
func (f *podsAPIFeed) take(b []byte) (uid string, took bool, err error) {
	var p corev1.Pod
	if err := p.Unmarshal(b); err != nil || p.UID == "" {
		return "", false, fmt.Errorf("a pod that does not decode (%v)", err)
	}
	uid = string(p.UID)
	pod := PodOf(&p, podsAPIStatusFrom(&p))
	old, ok := f.pods[uid]
	if ok {
		pod.Revision = old.Revision
		if reflect.DeepEqual(*old, pod) {
			return uid, false, nil
		}
	}
	f.pods[uid] = &pod
	f.revise(uid)
	return uid, true, nil
}

// errListUnanswered is a list the kubelet refused or did not finish
// (rate-limited, initializing, a closing connection): the watch goes on, and
// the list is no heartbeat.
var errListUnanswered = errors.New("the kubelet did not answer the list")

// failed says why the watch ended: nothing when podlife is stopping, else
// the stream's error in one line.
func (f *podsAPIFeed) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return podsAPIError(f.s.cfg.PodsAPISocket, err)
}

// podsAPIStatusFrom is where a Pods API pod's status comes from: the status
// manager's (FromKubelet), except before the kubelet has synced the pod
// once (just after it started), when it serves the API server's copy with
// Ready forced False (server.go getEffectivePodStatus): FromKubeletCache.
func podsAPIStatusFrom(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Message == podsAPIPlaceholderMessage {
			return lifecycle.FromKubeletCache
		}
	}
	return lifecycle.FromKubelet
}

// heartbeatEvery is the period of the list that reconciles the watch and
// tells a hung kubelet: the poll interval, at least 5 s.
func (s *Source) heartbeatEvery() time.Duration {
	return max(s.cfg.PollInterval, podsAPIHeartbeatMin)
}

// applyPodEvent applies one watch event to the kubelet's pods by UID and
// returns the pod's UID. A DELETED event changes nothing: the caller lists
// the kubelet's pods soon (see podsAPIFeed).
func applyPodEvent(pods map[string]*lifecycle.Pod, ev *podsv1alpha1.WatchPodsEvent) (uid string, deleted bool, err error) {
	switch ev.GetType() {
	case podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE:
		return "", false, nil
	case podsv1alpha1.EventType_ADDED, podsv1alpha1.EventType_MODIFIED, podsv1alpha1.EventType_DELETED:
	default:
		return "", false, fmt.Errorf("watch event of unknown type %d", ev.GetType())
	}
	var p corev1.Pod
	if err := p.Unmarshal(ev.GetPod()); err != nil {
		return "", false, fmt.Errorf("decode %s pod: %w", ev.GetType(), err)
	}
	if p.UID == "" {
		return "", false, fmt.Errorf("%s pod %s/%s without a UID", ev.GetType(), p.Namespace, p.Name)
	}
	if ev.GetType() == podsv1alpha1.EventType_DELETED {
		return string(p.UID), true, nil
	}
	pod := PodOf(&p, podsAPIStatusFrom(&p))
	pods[string(p.UID)] = &pod
	return string(p.UID), false, nil
}

// podsAPIError says in one line why the watch failed, and marks the failures
// that mean the kubelet serves no Pods API on this socket.
func podsAPIError(path string, err error) error {
	st, _ := status.FromError(err)
	msg := strings.Join(strings.Fields(st.Message()), " ")
	switch st.Code() {
	case codes.Unimplemented:
		return absent{fmt.Errorf("kubelet Pods API %s: Unimplemented (%s)", path, msg)}
	case codes.Unavailable:
		return absent{fmt.Errorf("kubelet Pods API %s: unavailable (%s)", path, msg)}
	case codes.ResourceExhausted:
		return fmt.Errorf("kubelet Pods API %s: the kubelet dropped this watch, it fell behind or is shutting down (%s)", path, msg)
	case codes.FailedPrecondition:
		return fmt.Errorf("kubelet Pods API %s: the kubelet is initializing, it has not listed its pods from all its sources yet (%s)", path, msg)
	}
	return fmt.Errorf("kubelet Pods API %s: %s: %s", path, st.Code(), msg)
}

// publishPodsAPI makes the watched pods the state; changed are the UIDs of
// the pods that changed since the watch's last publication (first: none
// yet, what changed is told by comparing with the state's pods).
func (s *Source) publishPodsAPI(list []*lifecycle.Pod, changed []string, first bool, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if first {
		changed = changedPods(s.state.Pods, list)
	}
	h := &s.state.Health
	if h.Mode != ModePodsAPI {
		s.log.Info("kubelet source mode", "mode", ModePodsAPI, "socket", s.cfg.PodsAPISocket)
		h.Mode, h.ModeReason = ModePodsAPI, "the kubelet's Pods API answers on "+s.cfg.PodsAPISocket
	}
	s.record(nil, latency, "unix://"+s.cfg.PodsAPISocket)
	s.setPods(list, changed)
}

// alive records a heartbeat list that changed nothing: the kubelet answers.
func (s *Source) alive() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.record(nil, 0, "unix://"+s.cfg.PodsAPISocket) {
		s.bump()
	}
}

// podsAPIFailed records a watch that broke or was refused (the kubelet
// restarting, initializing, or dropping a reader that fell behind).
func (s *Source) podsAPIFailed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.record(err, 0, "unix://"+s.cfg.PodsAPISocket) {
		s.bump()
	}
}
