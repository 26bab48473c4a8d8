package simnode

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	podsv1alpha1 "k8s.io/kubelet/pkg/apis/pods/v1alpha1"
)

// podsAPI is the simulated kubelet's Pods API (Kubernetes 1.37, on a unix
// socket): the same lagged view as /pods, each pod as v1.Pod protobuf bytes,
// a watch that starts with ADDED for every pod and INITIAL_SYNC_COMPLETE, then
// ADDED / MODIFIED / DELETED as the view moves. A watcher that falls behind
// is dropped with ResourceExhausted, as the kubelet's broadcaster does
// (k8s.io/kubernetes pkg/kubelet/apis/pods/server.go).
type podsAPI struct {
	podsv1alpha1.UnimplementedPodsServer
	path string

	mu       sync.Mutex
	pods     map[string][]byte // UID -> marshalled pod, as of the last update
	watchers map[chan *podsv1alpha1.WatchPodsEvent]struct{}
	srv      *grpc.Server
}

// podsAPIWatchBuffer is how many events a watcher may trail by.
const podsAPIWatchBuffer = 1000

func newPodsAPI(path string) *podsAPI {
	return &podsAPI{path: path, pods: map[string][]byte{}, watchers: map[chan *podsv1alpha1.WatchPodsEvent]struct{}{}}
}

// update makes l the served view and tells every watcher what changed.
func (a *podsAPI) update(l *corev1.PodList) error {
	next := make(map[string][]byte, len(l.Items))
	for i := range l.Items {
		b, err := l.Items[i].Marshal()
		if err != nil {
			return fmt.Errorf("simnode Pods API: marshal %s: %w", l.Items[i].Name, err)
		}
		next[string(l.Items[i].UID)] = b
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var events []*podsv1alpha1.WatchPodsEvent
	for uid, b := range next {
		switch old, ok := a.pods[uid]; {
		case !ok:
			events = append(events, &podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_ADDED, Pod: b})
		case !bytes.Equal(old, b):
			events = append(events, &podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_MODIFIED, Pod: b})
		}
	}
	for uid, b := range a.pods {
		if _, ok := next[uid]; !ok {
			events = append(events, &podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_DELETED, Pod: b})
		}
	}
	a.pods = next
	for ch := range a.watchers {
		for _, ev := range events {
			if !trySend(ch, ev) { // fell behind: dropped, as the kubelet does
				delete(a.watchers, ch)
				close(ch)
				break
			}
		}
	}
	return nil
}

func trySend(ch chan *podsv1alpha1.WatchPodsEvent, ev *podsv1alpha1.WatchPodsEvent) bool {
	select {
	case ch <- ev:
		return true
	default:
		return false
	}
}

// list is the served pods sorted by UID, as the kubelet lists them.
func (a *podsAPI) list() [][]byte {
	uids := make([]string, 0, len(a.pods))
	for uid := range a.pods {
		uids = append(uids, uid)
	}
	slices.Sort(uids)
	out := make([][]byte, len(uids))
	for i, uid := range uids {
		out[i] = a.pods[uid]
	}
	return out
}

// WatchPods implements the Pods service.
func (a *podsAPI) WatchPods(_ *podsv1alpha1.WatchPodsRequest, stream podsv1alpha1.Pods_WatchPodsServer) error {
	ch := make(chan *podsv1alpha1.WatchPodsEvent, podsAPIWatchBuffer)
	a.mu.Lock()
	initial := a.list()
	a.watchers[ch] = struct{}{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.watchers, ch)
		a.mu.Unlock()
	}()
	for _, b := range initial {
		if err := stream.Send(&podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_ADDED, Pod: b}); err != nil {
			return err
		}
	}
	if err := stream.Send(&podsv1alpha1.WatchPodsEvent{Type: podsv1alpha1.EventType_INITIAL_SYNC_COMPLETE}); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case ev, ok := <-ch:
			if !ok {
				return status.Error(codes.ResourceExhausted, "watch client channel closed")
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// ListPods implements the Pods service.
func (a *podsAPI) ListPods(_ context.Context, _ *podsv1alpha1.ListPodsRequest) (*podsv1alpha1.ListPodsResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &podsv1alpha1.ListPodsResponse{Pods: a.list()}, nil
}

// GetPod implements the Pods service.
func (a *podsAPI) GetPod(_ context.Context, req *podsv1alpha1.GetPodRequest) (*podsv1alpha1.GetPodResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b, ok := a.pods[req.GetPodUID()]; ok {
		return &podsv1alpha1.GetPodResponse{Pod: b}, nil
	}
	return nil, status.Errorf(codes.NotFound, "pod %s not found", req.GetPodUID())
}

// serve opens the socket (true) or closes it and ends every watch (false).
func (a *podsAPI) serve(on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !on {
		if srv := a.srv; srv != nil {
			a.srv = nil
			a.mu.Unlock() // Stop waits for the watches, which take a.mu to leave
			srv.Stop()
			a.mu.Lock()
		}
		os.Remove(a.path)
		return nil
	}
	if a.srv != nil {
		return nil
	}
	os.Remove(a.path)
	l, err := net.Listen("unix", a.path)
	if err != nil {
		return fmt.Errorf("simnode Pods API socket: %w", err)
	}
	a.srv = grpc.NewServer()
	podsv1alpha1.RegisterPodsServer(a.srv, a)
	go a.srv.Serve(l)
	return nil
}
