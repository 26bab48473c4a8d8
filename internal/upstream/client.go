// Package upstream is podlife's connection to the API server: it watches this
// node's Node object and the pods bound to it (the view central monitoring
// has), delivers journaled transitions as Kubernetes Events, and keeps
// podlife's node conditions up to date.
package upstream

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
)

// ClientConfig says how to reach the API server.
type ClientConfig struct {
	// Kubeconfig is a kubeconfig file; empty means in-cluster configuration.
	Kubeconfig string
	// Timeout bounds every request (default 5s; negative: none, for watches).
	Timeout time.Duration
	// QPS and Burst bound podlife's own request rate (default 5 / 10).
	QPS   float32
	Burst int
	// RateLimiter, when set, is shared with other clients and replaces QPS
	// and Burst: one budget for all of an agent's requests.
	RateLimiter flowcontrol.RateLimiter
}

// Client is podlife's API server client. It makes only the calls podlife
// needs, on a scheme that knows just core/v1, events.k8s.io/v1 and
// coordination.k8s.io/v1, so the agent does not carry client-go's full
// clientset and its scheme.
type Client struct {
	core, events, coordination *rest.RESTClient
}

// EventCreator creates events.k8s.io/v1 Events and merge-patches them (an
// Event's series); *Client is the real one.
type EventCreator interface {
	CreateEvent(ctx context.Context, ev *eventsv1.Event) error
	PatchEvent(ctx context.Context, namespace, name string, patch []byte) error
}

// NodeStatusPatcher strategic-merge patches a Node's status; *Client is the
// real one.
type NodeStatusPatcher interface {
	PatchNodeStatus(ctx context.Context, node string, patch []byte) error
}

// NewClient builds a client with timeouts and a client-side rate limit. It
// also returns the REST configuration it was built from.
func NewClient(cfg ClientConfig) (*Client, *rest.Config, error) {
	rc, err := RESTConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case cfg.Timeout < 0:
		rc.Timeout = 0
	case cfg.Timeout == 0:
		rc.Timeout = 5 * time.Second
	default:
		rc.Timeout = cfg.Timeout
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.QPS <= 0 {
		rc.QPS = 5
	}
	if rc.Burst <= 0 {
		rc.Burst = 10
	}
	rc.RateLimiter = cfg.RateLimiter
	rc.UserAgent = "podlife"
	c, err := newClientFor(rc)
	if err != nil {
		return nil, nil, err
	}
	return c, rc, nil
}

// RESTConfig is the API server access of a kubeconfig file, or the in-cluster
// configuration when kubeconfig is empty.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("API server config: %w", err)
	}
	return rc, nil
}

// newClientFor builds the REST clients of both API groups from rc. They share
// one HTTP client and, like a clientset's, one rate limiter.
func newClientFor(rc *rest.Config) (*Client, error) {
	base := *rc
	if base.RateLimiter == nil && base.QPS > 0 {
		base.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(base.QPS, base.Burst)
	}
	// A scheme of the only API groups podlife talks to.
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("API scheme: %w", err)
	}
	if err := eventsv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("API scheme: %w", err)
	}
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("API scheme: %w", err)
	}
	codecs := serializer.NewCodecFactory(scheme)
	hc, err := rest.HTTPClientFor(&base)
	if err != nil {
		return nil, fmt.Errorf("API server HTTP client: %w", err)
	}
	restClient := func(apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
		c := base
		c.APIPath, c.GroupVersion = apiPath, &gv
		c.NegotiatedSerializer = codecs.WithoutConversion()
		rcl, err := rest.RESTClientForConfigAndClient(&c, hc)
		if err != nil {
			return nil, fmt.Errorf("API server client for %s: %w", gv, err)
		}
		return rcl, nil
	}
	core, err := restClient("/api", corev1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	events, err := restClient("/apis", eventsv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	coordination, err := restClient("/apis", coordinationv1.SchemeGroupVersion)
	if err != nil {
		return nil, err
	}
	return &Client{core: core, events: events, coordination: coordination}, nil
}

// CreateEvent creates ev in its namespace. The error is client-go's, so
// k8s.io/apimachinery/pkg/api/errors can classify it. client-go does not
// retry it: a 429 comes back at once with its Retry-After
// (apierrors.SuggestsClientDelay), which the reporter honours; client-go's
// own retries would wait inside the request's timeout and, cut short by it,
// lose the Retry-After.
func (c *Client) CreateEvent(ctx context.Context, ev *eventsv1.Event) error {
	return c.events.Post().UseProtobufAsDefault().MaxRetries(0).
		Namespace(ev.Namespace).Resource("events").
		Body(ev).Do(ctx).Into(&eventsv1.Event{})
}

// PatchEvent applies a JSON merge patch to an Event (its series and
// annotations: the rest of an events.k8s.io/v1 Event is immutable). Not
// retried by client-go, as CreateEvent.
func (c *Client) PatchEvent(ctx context.Context, namespace, name string, patch []byte) error {
	return c.events.Patch(types.MergePatchType).UseProtobufAsDefault().MaxRetries(0).
		Namespace(namespace).Resource("events").Name(name).
		Body(patch).Do(ctx).Into(&eventsv1.Event{})
}

// PatchNodeStatus applies a strategic-merge patch to node's status. The
// error is client-go's, so k8s.io/apimachinery/pkg/api/errors can classify it.
func (c *Client) PatchNodeStatus(ctx context.Context, node string, patch []byte) error {
	return c.core.Patch(types.StrategicMergePatchType).
		Resource("nodes").Name(node).SubResource("status").
		Body(patch).Do(ctx).Into(&corev1.Node{})
}

// NodeLease is what podlife reads of a node's Lease in kube-node-lease: the
// kubelet renews it every 10 s (a quarter of its 40 s duration) while it
// reaches the API server.
type NodeLease struct {
	RenewTime time.Time
	Duration  time.Duration
}

// nodeLease reads the node's Lease.
func (c *Client) nodeLease(ctx context.Context, node string) (NodeLease, error) {
	var l coordinationv1.Lease
	if err := c.coordination.Get().UseProtobufAsDefault().Namespace(corev1.NamespaceNodeLease).
		Resource("leases").Name(node).Do(ctx).Into(&l); err != nil {
		return NodeLease{}, err
	}
	return NodeLeaseOf(&l), nil
}

// NodeLeaseOf reduces a Lease to what podlife reads of it.
func NodeLeaseOf(l *coordinationv1.Lease) NodeLease {
	var out NodeLease
	if l.Spec.RenewTime != nil {
		out.RenewTime = l.Spec.RenewTime.Time
	}
	if l.Spec.LeaseDurationSeconds != nil {
		out.Duration = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return out
}

// GetLease reads a Lease.
func (c *Client) GetLease(ctx context.Context, namespace, name string) (*coordinationv1.Lease, error) {
	var l coordinationv1.Lease
	err := c.coordination.Get().UseProtobufAsDefault().Namespace(namespace).Resource("leases").Name(name).Do(ctx).Into(&l)
	return &l, err
}

// CreateLease creates l in its namespace.
func (c *Client) CreateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	var out coordinationv1.Lease
	err := c.coordination.Post().UseProtobufAsDefault().Namespace(l.Namespace).Resource("leases").Body(l).Do(ctx).Into(&out)
	return &out, err
}

// UpdateLease replaces l (its resourceVersion must be current).
func (c *Client) UpdateLease(ctx context.Context, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	var out coordinationv1.Lease
	err := c.coordination.Put().UseProtobufAsDefault().Namespace(l.Namespace).Resource("leases").Name(l.Name).Body(l).Do(ctx).Into(&out)
	return &out, err
}

// readyz asks the API server's /readyz.
func (c *Client) readyz(ctx context.Context) error {
	_, err := c.core.Get().AbsPath("/readyz").DoRaw(ctx)
	return err
}

// listWatch lists and watches the resource (plural name) of the API group
// rc serves, in namespace (empty: cluster-wide), whose objects match
// fieldSelector; newList makes the empty list.
func listWatch(rc *rest.RESTClient, namespace, resource, fieldSelector string, newList func() runtime.Object) *cache.ListWatch {
	get := func(opts *metav1.ListOptions) *rest.Request {
		opts.FieldSelector = fieldSelector
		var timeout time.Duration
		if opts.TimeoutSeconds != nil {
			timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
		}
		return rc.Get().UseProtobufAsDefault().Namespace(namespace).Resource(resource).
			VersionedParams(opts, metav1.ParameterCodec).Timeout(timeout)
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := newList()
			if err := get(&opts).Do(ctx).Into(list); err != nil {
				return nil, err
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return get(&opts).Watch(ctx)
		},
	}
}
