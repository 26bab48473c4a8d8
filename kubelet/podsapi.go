package kubelet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
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
// API server is reachable — where /pods serves the API server's copy.

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
	// podsAPIHeartbeatMin bounds the heartbeat period from below.
	podsAPIHeartbeatMin = 5 * time.Second
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
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(podsAPIMaxMessage)))
	if err != nil {
		return false, absent{fmt.Errorf("kubelet Pods API %s: %w", path, err)}
	}
	defer conn.Close()
	client := podsv1alpha1.NewPodsClient(conn)
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.podsAPIHeartbeat(wctx, client, cancel)
	start := time.Now()
	// failed says why the watch ended: the heartbeat's cause where it
	// stopped the watch, else the stream's own error.
	failed := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		if wctx.Err() != nil {
			return context.Cause(wctx)
		}
		return podsAPIError(path, err)
	}
	stream, err := client.WatchPods(wctx, &podsv1alpha1.WatchPodsRequest{})
	if err != nil {
		return false, failed(err)
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
	f := finishedPods{s: s, client: client, pods: map[string]lifecycle.Pod{}, uids: map[string]bool{}}
	recheck := time.NewTicker(s.heartbeatEvery())
	defer recheck.Stop()
	for {
		select {
		case <-wctx.Done():
			return synced, failed(wctx.Err())
		case r := <-events:
			if r.err != nil {
				return synced, failed(r.err)
			}
			if start.IsZero() {
				start = time.Now()
			}
			finished, err := applyPodEvent(f.pods, r.ev)
			if err == nil && finished != "" {
				err = f.confirm(wctx, finished)
			}
			if err != nil {
				return synced, fmt.Errorf("kubelet Pods API %s: %w", path, err)
			}
			synced = synced || r.ev.GetType() == podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE
		case <-recheck.C:
			if !f.recheck(wctx) {
				continue
			}
		}
		if synced {
			// Latency: the initial list's, from the call; then each event's decoding.
			s.publishPodsAPI(f.pods, time.Since(start))
			start = time.Time{}
		}
	}
}

type recvResult struct {
	ev  *podsv1alpha1.WatchPodsEvent
	err error
}

// finishedPods keeps the pods a watch says DELETED of while the kubelet still
// has them. The kubelet's status manager sends DELETED when a pod has
// finished (TerminatePod: its containers are gone, pkg/kubelet/status
// status_manager.go sendNotification), not when the kubelet forgets it: the
// pod, with its final status, stays in the pod manager (ListPods and GetPod
// return it, and a new watch lists it as ADDED) until the API server deletes
// it, which sends nothing. So a DELETED pod is asked for (GetPod): kept with
// its final status while the kubelet has it, dropped once NotFound.
type finishedPods struct {
	s      *Source
	client podsv1alpha1.PodsClient
	pods   map[string]lifecycle.Pod
	uids   map[string]bool // the finished pods, asked for again every heartbeat
}

// confirm asks the kubelet for a pod the watch said DELETED of.
func (f *finishedPods) confirm(ctx context.Context, uid string) error {
	p, err := f.get(ctx, uid)
	switch {
	case status.Code(err) == codes.NotFound:
		delete(f.pods, uid)
		delete(f.uids, uid)
	case err != nil:
		return fmt.Errorf("GetPod %s after its DELETED event: %w", uid, err)
	default:
		f.pods[uid], f.uids[uid] = p, true
	}
	return nil
}

// recheck drops the finished pods the kubelet no longer has; it reports
// whether any went.
func (f *finishedPods) recheck(ctx context.Context) bool {
	changed := false
	for uid := range f.uids {
		if _, err := f.get(ctx, uid); status.Code(err) == codes.NotFound {
			delete(f.pods, uid)
			delete(f.uids, uid)
			changed = true
		}
	}
	return changed
}

func (f *finishedPods) get(ctx context.Context, uid string) (lifecycle.Pod, error) {
	gctx, cancel := context.WithTimeout(ctx, f.s.cfg.Timeout)
	defer cancel()
	resp, err := f.client.GetPod(gctx, &podsv1alpha1.GetPodRequest{PodUID: uid})
	if err != nil {
		return lifecycle.Pod{}, err
	}
	var p corev1.Pod
	if err := p.Unmarshal(resp.GetPod()); err != nil {
		return lifecycle.Pod{}, fmt.Errorf("decode GetPod %s: %w", uid, err)
	}
	return PodOf(&p, lifecycle.FromKubelet), nil
}

// heartbeatEvery is the period of the heartbeat and of the finished pods'
// recheck: the poll interval, at least 5 s (the kubelet logs every Pods API
// call at its default verbosity).
func (s *Source) heartbeatEvery() time.Duration {
	return max(s.cfg.PollInterval, podsAPIHeartbeatMin)
}

// podsAPIHeartbeat asks the kubelet for a pod that does not exist every
// heartbeatEvery (NotFound, answered from memory): a watch stream alone cannot
// tell a quiet kubelet from a hung one, whose socket still accepts. A call
// without an answer within Timeout ends the watch with that cause.
func (s *Source) podsAPIHeartbeat(ctx context.Context, client podsv1alpha1.PodsClient, stop context.CancelCauseFunc) {
	t := time.NewTicker(s.heartbeatEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		_, err := client.GetPod(hctx, &podsv1alpha1.GetPodRequest{PodUID: "podlife-heartbeat"})
		cancel()
		switch status.Code(err) {
		case codes.OK, codes.NotFound, codes.FailedPrecondition, codes.Canceled:
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.DeadlineExceeded {
			err = fmt.Errorf("kubelet Pods API %s: no answer within %s (a hung kubelet?)", s.cfg.PodsAPISocket, s.cfg.Timeout)
		} else {
			err = podsAPIError(s.cfg.PodsAPISocket, err)
		}
		stop(err)
		return
	}
}

// applyPodEvent applies one watch event to the kubelet's pods by UID. A
// DELETED event changes nothing: it returns the pod's UID, for the caller to
// ask the kubelet whether it still has the pod (see finishedPods).
func applyPodEvent(pods map[string]lifecycle.Pod, ev *podsv1alpha1.WatchPodsEvent) (deleted string, err error) {
	switch ev.GetType() {
	case podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE:
		return "", nil
	case podsv1alpha1.EventType_ADDED, podsv1alpha1.EventType_MODIFIED, podsv1alpha1.EventType_DELETED:
	default:
		return "", fmt.Errorf("watch event of unknown type %d", ev.GetType())
	}
	var p corev1.Pod
	if err := p.Unmarshal(ev.GetPod()); err != nil {
		return "", fmt.Errorf("decode %s pod: %w", ev.GetType(), err)
	}
	if p.UID == "" {
		return "", fmt.Errorf("%s pod %s/%s without a UID", ev.GetType(), p.Namespace, p.Name)
	}
	if ev.GetType() == podsv1alpha1.EventType_DELETED {
		return string(p.UID), nil
	}
	pods[string(p.UID)] = PodOf(&p, lifecycle.FromKubelet)
	return "", nil
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
		return fmt.Errorf("kubelet Pods API %s: the kubelet dropped this watch, it fell behind (%s)", path, msg)
	}
	return fmt.Errorf("kubelet Pods API %s: %s: %s", path, st.Code(), msg)
}

// publishPodsAPI makes the watched pods the state, sorted by UID as the
// kubelet lists them.
func (s *Source) publishPodsAPI(pods map[string]lifecycle.Pod, latency time.Duration) {
	uids := make([]string, 0, len(pods))
	for uid := range pods {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	list := make([]lifecycle.Pod, len(uids))
	for i, uid := range uids {
		list[i] = pods[uid]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &s.state.Health
	if h.Mode != ModePodsAPI {
		s.log.Info("kubelet source mode", "mode", ModePodsAPI, "socket", s.cfg.PodsAPISocket)
		h.Mode, h.ModeReason = ModePodsAPI, "the kubelet's Pods API answers on "+s.cfg.PodsAPISocket
	}
	s.record(nil, latency, "unix://"+s.cfg.PodsAPISocket)
	s.state.Pods = list
	s.bump()
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
