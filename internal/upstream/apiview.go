package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/podlife/podlife/lifecycle"
)

// APIView watches this node's Node object, its Lease and the pods bound to
// it — nothing cluster-wide — and tells whether the API server answers, so
// the agent can compare what the cluster sees with the local truth.
//
// A watch event is proof the API server answers: while they come (the
// kubelet renews the Lease every 10 s), the view sends nothing more. It asks
// /readyz only after a quiet ProbeInterval, and every ProbeInterval while the
// API server is down; it GETs the Lease only to confirm one the watch shows
// expired, so that a watch stuck on a dead connection never says the kubelet
// is cut off — and not in the first ProbeInterval after the API server
// answers again, when the kubelet, healed with it, renews the Lease itself:
// a zone's agents would otherwise GET their Leases in the heal's second.
type APIView struct {
	node  string
	probe *Client // short request timeout
	every time.Duration
	log   *slog.Logger

	pods, nodes, leases cache.SharedIndexInformer
	updates             chan struct{}
	kick                chan struct{} // a watch event while down: probe now

	mu        sync.Mutex
	health    lifecycle.SourceHealth // as the last probe found it
	heard     time.Time              // last watch event
	leaseRead NodeLease              // from the last GET
	readAt    time.Time              // of the last GET of the Lease
	backAt    time.Time              // when the API server answered again after being down
	probedAt  time.Time              // the last probe's start
	// podsGen counts the pod watch's events; apiPods is Pods' answer at
	// apiPodsGen: the same slice while no pod changed (lifecycle.Input's
	// one-change path knows it by identity).
	podsGen, apiPodsGen uint64
	apiPods             []lifecycle.APIPod
}

// DefaultProbeInterval is how long the API server may be quiet (no watch
// event) before the view asks its /readyz, when NewAPIView is given 0. It is
// longer than the kubelet's Lease renewal (10 s, a quarter of its 40 s
// duration) so that the renewals alone keep a healthy node from probing.
const DefaultProbeInterval = 15 * time.Second

// NewAPIView builds the view; Run starts it. watch must have no request
// timeout (watches are long-lived); probe should have a short one.
func NewAPIView(watch, probe *Client, node string, probeEvery time.Duration, log *slog.Logger) *APIView {
	if probeEvery <= 0 {
		probeEvery = DefaultProbeInterval
	}
	v := &APIView{node: node, probe: probe, every: probeEvery, log: log,
		updates: make(chan struct{}, 1), kick: make(chan struct{}, 1), health: lifecycle.SourceHealth{Configured: true}}
	v.pods = cache.NewSharedIndexInformer(
		listWatch(watch.core, "", "pods", "spec.nodeName="+node, func() runtime.Object { return &corev1.PodList{} }),
		&corev1.Pod{}, 0, cache.Indexers{})
	v.nodes = cache.NewSharedIndexInformer(
		listWatch(watch.core, "", "nodes", "metadata.name="+node, func() runtime.Object { return &corev1.NodeList{} }),
		&corev1.Node{}, 0, cache.Indexers{})
	v.leases = cache.NewSharedIndexInformer(
		listWatch(watch.coordination, corev1.NamespaceNodeLease, "leases", "metadata.name="+node,
			func() runtime.Object { return &coordinationv1.LeaseList{} }),
		&coordinationv1.Lease{}, 0, cache.Indexers{})
	for _, inf := range []cache.SharedIndexInformer{v.pods, v.nodes, v.leases} {
		heard := v.heardNow
		if inf == v.pods {
			// One handler: the pods are counted changed before the agent
			// is told to look (Pods builds its answer again).
			heard = func() { v.podChanged(); v.heardNow() }
		}
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { heard() },
			UpdateFunc: func(any, any) { heard() },
			DeleteFunc: func(any) { heard() },
		})
		_ = inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
			v.log.Debug("apiserver watch error", "err", oneLine(err))
		})
	}
	return v
}

// podChanged counts a pod watch event: Pods is built again.
func (v *APIView) podChanged() {
	v.mu.Lock()
	v.podsGen++
	v.mu.Unlock()
}

// heardNow records a watch event: the API server answers. While it is
// marked down, the probe is asked to confirm at once.
func (v *APIView) heardNow() {
	v.mu.Lock()
	v.heard = time.Now()
	up := v.health.Up
	v.mu.Unlock()
	if !up {
		select {
		case v.kick <- struct{}{}:
		default:
		}
	}
	v.signal()
}

func (v *APIView) signal() {
	select {
	case v.updates <- struct{}{}:
	default:
	}
}

// Updates is signalled (coalesced) whenever the view or its health changes.
func (v *APIView) Updates() <-chan struct{} { return v.updates }

// Run watches, and probes when due, until ctx is done.
func (v *APIView) Run(ctx context.Context) {
	for _, inf := range []cache.SharedIndexInformer{v.pods, v.nodes, v.leases} {
		go inf.Run(ctx.Done())
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-v.kick:
		}
		if wait := v.probeDue(time.Now()); wait > 0 {
			t.Reset(wait)
			continue
		}
		v.probeOnce(ctx)
		t.Reset(v.every)
	}
}

// probeDue is how long until the view must ask the API server (0: now): at
// once while it is down or never asked, when the Lease it knows has expired
// and was not read for a ProbeInterval, else a ProbeInterval after the last
// thing heard.
//
// Never sooner than a quarter ProbeInterval after the last probe, whatever
// asks (watch events while the API server is marked down, say, as while it
// shuts down gracefully: /readyz fails, watches still flow).
func (v *APIView) probeDue(now time.Time) time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	if gate := v.probedAt.Add(v.every / 4).Sub(now); gate > 0 {
		return gate
	}
	last := v.heard
	if v.health.LastSuccess.After(last) {
		last = v.health.LastSuccess
	}
	if !v.health.Up || last.IsZero() || v.leaseUnconfirmed(now) {
		return 0
	}
	wait := last.Add(v.every).Sub(now)
	if l := v.freshestLease(); !l.RenewTime.IsZero() && l.Duration > 0 && l.RenewTime.Add(l.Duration).After(now) {
		// Wake when the Lease expires, to confirm it by a GET at once.
		wait = min(wait, l.RenewTime.Add(l.Duration).Sub(now)+10*time.Millisecond)
	}
	return max(0, wait)
}

// leaseUnconfirmed: the freshest Lease known is none or expired, it was not
// read for a ProbeInterval, and the API server has answered for one since it
// was last down. Called with mu held.
func (v *APIView) leaseUnconfirmed(now time.Time) bool {
	l := v.freshestLease()
	expired := l.RenewTime.IsZero() || l.Duration <= 0 || now.Sub(l.RenewTime) > l.Duration
	return expired && now.Sub(v.readAt) >= v.every && now.Sub(v.backAt) >= v.every
}

// probeOnce asks the API server's /readyz and records the outcome; where the
// Lease is unconfirmed, it reads it too.
func (v *APIView) probeOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(v.every, 5*time.Second))
	defer cancel()
	start := time.Now()
	v.mu.Lock()
	v.probedAt = start
	v.mu.Unlock()
	err := v.probe.readyz(ctx)
	v.mu.Lock()
	was := v.health.Up
	v.health.Latency = time.Since(start)
	if err != nil {
		v.health.Up, v.health.LastError = false, "apiserver: "+describeAPIError(err)
	} else {
		if !was && !v.health.LastSuccess.IsZero() {
			v.backAt = time.Now()
		}
		v.health.Up, v.health.LastError, v.health.LastSuccess = true, "", time.Now()
	}
	h := v.health
	readLease := err == nil && v.leaseUnconfirmed(time.Now())
	v.mu.Unlock()
	if readLease {
		// Without RBAC for it (or before the node registers) it stays unknown.
		l, lerr := v.probe.nodeLease(ctx, v.node)
		v.mu.Lock()
		v.readAt = time.Now()
		renewed := lerr == nil && l.RenewTime.After(v.leaseRead.RenewTime)
		if renewed {
			v.leaseRead = l
		}
		v.mu.Unlock()
		if renewed {
			v.signal()
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

// Health is the API server's health record. While it is up, a watch event
// heard after the last probe counts as its last success (with no latency:
// no request was timed), and a success stays fresh for two ProbeIntervals
// (at least lifecycle.DefaultStaleAfter), the longest a quiet API server
// goes unasked.
func (v *APIView) Health() lifecycle.SourceHealth {
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.health
	if h.Up && v.heard.After(h.LastSuccess) {
		h.LastSuccess, h.Latency = v.heard, 0
	}
	h.FreshFor = max(lifecycle.DefaultStaleAfter, 2*v.every)
	return h
}

// Pods is the API server's last known copy of the pods bound to this node:
// the same slice while no pod changed, never modified once handed out.
func (v *APIView) Pods() []lifecycle.APIPod {
	v.mu.Lock()
	gen, cached := v.podsGen, v.apiPods
	if cached != nil && v.apiPodsGen == gen {
		v.mu.Unlock()
		return cached
	}
	v.mu.Unlock()
	out := v.listPods()
	v.mu.Lock()
	if v.podsGen == gen {
		v.apiPods, v.apiPodsGen = out, gen
	}
	v.mu.Unlock()
	return out
}

// listPods converts the watched pods, sorted by UID.
func (v *APIView) listPods() []lifecycle.APIPod {
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

// Lease is the node's Lease as last watched or read, whichever was renewed
// later; zero when never seen, and while it looks expired but no GET after
// its expiry confirmed it (a watch stuck on a dead connection, a lagging
// watch cache): an expired Lease says the kubelet is cut off, and only the
// API server's own answer may say so.
func (v *APIView) Lease() NodeLease {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.freshestLease()
	if expiry := l.RenewTime.Add(l.Duration); !l.RenewTime.IsZero() && time.Now().After(expiry) && !v.readAt.After(expiry) {
		return NodeLease{}
	}
	return l
}

// freshestLease is the Lease watched or read, whichever was renewed later.
// Called with mu held.
func (v *APIView) freshestLease() NodeLease {
	l := v.leaseRead
	for _, o := range v.leases.GetStore().List() {
		if w, ok := o.(*coordinationv1.Lease); ok && w.Name == v.node {
			if wl := NodeLeaseOf(w); wl.RenewTime.After(l.RenewTime) {
				l = wl
			}
		}
	}
	return l
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

// NodeConditions are the Node's conditions as last watched; false until the
// Node was listed.
func (v *APIView) NodeConditions() ([]corev1.NodeCondition, bool) {
	if !v.nodes.HasSynced() {
		return nil, false
	}
	for _, o := range v.nodes.GetStore().List() {
		if n, ok := o.(*corev1.Node); ok && n.Name == v.node {
			return n.Status.Conditions, true
		}
	}
	return nil, true
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
