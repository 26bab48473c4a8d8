package scale

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/podlife/podlife/internal/testenv"
)

// leaseProbe renews Leases the way a kubelet does (an update of the cached
// object, a GET only after an error, no client-side rate limit, a 10 s
// timeout: k8s.io/component-helpers apimachinery/lease/controller.go), as
// nodes (FlowSchema system-node-high), every 2 s each, and records each
// renewal's latency: what a kubelet's heartbeat suffers while the agents
// deliver.
type leaseProbe struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at      time.Time
	latency time.Duration
	err     bool
}

// start runs n renewers directly against the API server (never through a
// link: the control plane's own view) until ctx is done.
func (p *leaseProbe) start(ctx context.Context, t *testing.T, api *testenv.APIServer, n int) {
	for i := range n {
		name := fmt.Sprintf("%s%02d", probePrefix, i)
		rc, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig(name+".kubeconfig", "podlife-scale-probe-"+name))
		if err != nil {
			t.Fatal(err)
		}
		rc.QPS, rc.Burst, rc.Timeout = -1, 0, 10*time.Second
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		go p.renew(ctx, cs.CoordinationV1().Leases(corev1.NamespaceNodeLease), name, time.Duration(i)*2*time.Second/time.Duration(n))
	}
}

func (p *leaseProbe) renew(ctx context.Context, leases interface {
	Get(context.Context, string, metav1.GetOptions) (*coordinationv1.Lease, error)
	Create(context.Context, *coordinationv1.Lease, metav1.CreateOptions) (*coordinationv1.Lease, error)
	Update(context.Context, *coordinationv1.Lease, metav1.UpdateOptions) (*coordinationv1.Lease, error)
}, name string, offset time.Duration) {
	d := int32(40)
	holder := name
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &d}}
	select {
	case <-ctx.Done():
		return
	case <-time.After(offset):
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	stale := true
	for {
		start := time.Now()
		var err error
		if stale {
			var got *coordinationv1.Lease
			if got, err = leases.Get(ctx, name, metav1.GetOptions{}); err == nil {
				l = got
			} else {
				l.ResourceVersion = ""
				l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
				got, err = leases.Create(ctx, l, metav1.CreateOptions{})
				if err == nil {
					l = got
				}
			}
		} else {
			l.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
			var got *coordinationv1.Lease
			if got, err = leases.Update(ctx, l, metav1.UpdateOptions{}); err == nil {
				l = got
			}
		}
		if ctx.Err() != nil {
			return
		}
		stale = err != nil
		p.mu.Lock()
		p.samples = append(p.samples, sample{at: start, latency: time.Since(start), err: err != nil})
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// quantiles are a window's renewal latencies.
type quantiles struct {
	N, Errors     int
	P50, P99, Max time.Duration
}

func (q quantiles) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s errors=%d", q.N, q.P50.Round(time.Millisecond),
		q.P99.Round(time.Millisecond), q.Max.Round(time.Millisecond), q.Errors)
}

// window gives the latencies of renewals started in [from, to).
func (p *leaseProbe) window(from, to time.Time) quantiles {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lat []time.Duration
	q := quantiles{}
	for _, s := range p.samples {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		lat = append(lat, s.latency)
		if s.err {
			q.Errors++
		}
	}
	return quantilesOf(lat, q.Errors)
}

func quantilesOf(lat []time.Duration, errs int) quantiles {
	q := quantiles{N: len(lat), Errors: errs}
	if len(lat) == 0 {
		return q
	}
	slices.Sort(lat)
	at := func(f float64) time.Duration { return lat[min(len(lat)-1, int(f*float64(len(lat))))] }
	q.P50, q.P99, q.Max = at(0.50), at(0.99), lat[len(lat)-1]
	return q
}

// slowest gives the n slowest renewals started in [from, to), slowest first.
func (p *leaseProbe) slowest(from, to time.Time, n int) []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	var in []sample
	for _, s := range p.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			in = append(in, s)
		}
	}
	slices.SortFunc(in, func(a, b sample) int { return int(b.latency - a.latency) })
	return in[:min(n, len(in))]
}
