package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/podlife/podlife/lifecycle"
)

// APIView watches this node's Node object and the pods bound to it — nothing
// cluster-wide — and probes the API server's health, so the agent can compare
// what the cluster sees with the local truth.
type APIView struct {
	node       string
	watch      *Client // no request timeout: long-lived watches
	probe      *Client // short request timeout
	probeEvery time.Duration
	log        *slog.Logger

	pods, nodes cache.SharedIndexInformer
	updates     chan struct{}

	mu     sync.Mutex
	health lifecycle.SourceHealth
	lease  NodeLease // zero until read
}

// NewAPIView builds the view; Run starts it. watch must have no request
// timeout (watches are long-lived); probe should have a short one.
func NewAPIView(watch, probe *Client, node string, probeEvery time.Duration, log *slog.Logger) *APIView {
	if probeEvery <= 0 {
		probeEvery = 2 * time.Second
	}
	v := &APIView{node: node, watch: watch, probe: probe, probeEvery: probeEvery, log: log,
		updates: make(chan struct{}, 1), health: lifecycle.SourceHealth{Configured: true}}
	v.pods = cache.NewSharedIndexInformer(
		watch.listWatch("pods", "spec.nodeName="+node, func() runtime.Object { return &corev1.PodList{} }),
		&corev1.Pod{}, 0, cache.Indexers{})
	v.nodes = cache.NewSharedIndexInformer(
		watch.listWatch("nodes", "metadata.name="+node, func() runtime.Object { return &corev1.NodeList{} }),
		&corev1.Node{}, 0, cache.Indexers{})
	for _, inf := range []cache.SharedIndexInformer{v.pods, v.nodes} {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { v.signal() },
			UpdateFunc: func(any, any) { v.signal() },
			DeleteFunc: func(any) { v.signal() },
		})
		_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
			v.log.Debug("apiserver watch error", "err", oneLine(err))
		})
	}
	return v
}

func (v *APIView) signal() {
	select {
	case v.updates <- struct{}{}:
	default:
	}
}

// Updates is signalled (coalesced) whenever the view or its health changes.
func (v *APIView) Updates() <-chan struct{} { return v.updates }

// Run watches and probes until ctx is done.
func (v *APIView) Run(ctx context.Context) {
	go v.pods.Run(ctx.Done())
	go v.nodes.Run(ctx.Done())
	t := time.NewTicker(v.probeEvery)
	defer t.Stop()
	for {
		v.probeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce asks the API server's /readyz and records the outcome.
func (v *APIView) probeOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, v.probeEvery)
	defer cancel()
	start := time.Now()
	err := v.probe.readyz(ctx)
	v.mu.Lock()
	was := v.health.Up
	v.health.Latency = time.Since(start)
	if err != nil {
		v.health.Up, v.health.LastError = false, "apiserver: "+describeAPIError(err)
	} else {
		v.health.Up, v.health.LastError, v.health.LastSuccess = true, "", time.Now()
	}
	h := v.health
	v.mu.Unlock()
	if err == nil {
		// The node's Lease tells whether the kubelet still reaches the API
		// server. Without RBAC for it (or before the node registers) it stays unknown.
		if l, lerr := v.probe.nodeLease(ctx, v.node); lerr == nil {
			v.mu.Lock()
			renewed := l.RenewTime != v.lease.RenewTime
			v.lease = l
			v.mu.Unlock()
			if renewed {
				v.signal()
			}
		}
	}
	if was != h.Up {
		if h.Up {
			v.log.Info("apiserver reachable")
		} else {
			v.log.Warn("apiserver unreachable", "err", h.LastError)
		}
		v.signal()
	}
}

// Health is the API server's health record.
func (v *APIView) Health() lifecycle.SourceHealth {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.health
}

// Pods is the API server's last known copy of the pods bound to this node.
func (v *APIView) Pods() []lifecycle.APIPod {
	objs := v.pods.GetStore().List()
	out := make([]lifecycle.APIPod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, APIPodOf(p))
		}
	}
	slices.SortFunc(out, func(a, b lifecycle.APIPod) int { return strings.Compare(a.UID, b.UID) })
	return out
}

// Lease is the node's Lease as last read (zero when never read).
func (v *APIView) Lease() NodeLease {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lease
}

// Node is the API server's last known Ready condition of this node, or nil.
func (v *APIView) Node() *lifecycle.APINode {
	for _, o := range v.nodes.GetStore().List() {
		if n, ok := o.(*corev1.Node); ok && n.Name == v.node {
			return APINodeOf(n)
		}
	}
	return nil
}

// APIPodOf reduces a pod to what the lifecycle model compares.
func APIPodOf(p *corev1.Pod) lifecycle.APIPod {
	out := lifecycle.APIPod{UID: string(p.UID), Namespace: p.Namespace, Name: p.Name, Phase: lifecycle.Phase(p.Status.Phase),
		MirrorOf: p.Annotations[corev1.MirrorPodAnnotationKey]}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Ready, out.ReadyChanged = string(c.Status), c.LastTransitionTime.Time
		}
	}
	for _, cs := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, c := range cs {
			out.Restarts += c.RestartCount
		}
	}
	return out
}

// APINodeOf reduces a node to its Ready condition.
func APINodeOf(n *corev1.Node) *lifecycle.APINode {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return &lifecycle.APINode{Ready: string(c.Status), Reason: c.Reason, Message: c.Message, LastHeartbeat: c.LastHeartbeatTime.Time}
		}
	}
	return &lifecycle.APINode{Ready: "Unknown", Reason: "NoReadyCondition"}
}

// describeAPIError words an API server's answer plainly where client-go's
// words do not say what to do (a 401 is "the server has asked for the client
// to provide credentials"); anything else is client-go's own line.
func describeAPIError(err error) string {
	switch {
	case apierrors.IsUnauthorized(err):
		return "401 Unauthorized: the API server does not accept podlife's credentials (a revoked or expired token? check --kubeconfig, or the service account's token): " + oneLine(err)
	case apierrors.IsForbidden(err):
		return "403 Forbidden: " + oneLine(err)
	}
	return oneLine(err)
}

// oneLine flattens an error to one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(fmt.Sprint(err)), " ")
}
