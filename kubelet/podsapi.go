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
	pods := map[string]lifecycle.Pod{}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return synced, failed(err)
		}
		if start.IsZero() {
			start = time.Now()
		}
		if err := applyPodEvent(pods, ev); err != nil {
			return synced, fmt.Errorf("kubelet Pods API %s: %w", path, err)
		}
		if ev.GetType() == podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE {
			synced = true
		}
		if synced {
			// Latency: the initial list's, from the call; then each event's decoding.
			s.publishPodsAPI(pods, time.Since(start))
			start = time.Time{}
		}
	}
}

// podsAPIHeartbeat asks the kubelet for a pod that does not exist every
// PollInterval (NotFound, answered from memory): a watch stream alone cannot
// tell a quiet kubelet from a hung one, whose socket still accepts. A call
// without an answer within Timeout ends the watch with that cause.
func (s *Source) podsAPIHeartbeat(ctx context.Context, client podsv1alpha1.PodsClient, stop context.CancelCauseFunc) {
	t := time.NewTicker(s.cfg.PollInterval)
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

// applyPodEvent applies one watch event to the kubelet's pods by UID.
func applyPodEvent(pods map[string]lifecycle.Pod, ev *podsv1alpha1.WatchPodsEvent) error {
	switch ev.GetType() {
	case podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE:
		return nil
	case podsv1alpha1.EventType_ADDED, podsv1alpha1.EventType_MODIFIED, podsv1alpha1.EventType_DELETED:
	default:
		return fmt.Errorf("watch event of unknown type %d", ev.GetType())
	}
	var p corev1.Pod
	if err := p.Unmarshal(ev.GetPod()); err != nil {
		return fmt.Errorf("decode %s pod: %w", ev.GetType(), err)
	}
	if p.UID == "" {
		return fmt.Errorf("%s pod %s/%s without a UID", ev.GetType(), p.Namespace, p.Name)
	}
	if ev.GetType() == podsv1alpha1.EventType_DELETED {
		delete(pods, string(p.UID))
		return nil
	}
	pods[string(p.UID)] = PodOf(&p, lifecycle.FromKubelet)
	return nil
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
