package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// probeCounts are one container's readiness probe results so far.
type probeCounts struct{ succeeded, failed float64 }

// parseReadinessProbes reads the kubelet's /metrics/probes
// (prober_probe_total{probe_type, result, container, pod, namespace, pod_uid},
// pkg/kubelet/metrics/collectors and pkg/kubelet/prober) and returns the
// readiness probe counters by "<pod UID>/<container>".
func parseReadinessProbes(r io.Reader) (map[string]probeCounts, error) {
	out := map[string]probeCounts{}
	err := scanSamples(r, "prober_probe_total", func(labels []byte, v float64) {
		if label(labels, "probe_type") != "Readiness" {
			return
		}
		key := label(labels, "pod_uid") + "/" + label(labels, "container")
		c := out[key]
		switch label(labels, "result") {
		case "successful":
			c.succeeded += v
		case "failed", "unknown":
			c.failed += v
		}
		out[key] = c
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// label returns a label's value from the text between a sample's braces.
func label(labels []byte, name string) string {
	key := []byte(name + `="`)
	for i := 0; i < len(labels); {
		j := bytes.Index(labels[i:], key)
		if j < 0 {
			return ""
		}
		j += i
		if j == 0 || labels[j-1] == ',' {
			rest := labels[j+len(key):]
			if k := bytes.IndexByte(rest, '"'); k >= 0 {
				return string(rest[:k])
			}
			return ""
		}
		i = j + len(key)
	}
	return ""
}

// readinessTracker turns successive probe counters into readiness: a
// container whose readiness probe only succeeded since the last read is
// ready, one whose probe only failed is not; one with no new result, or
// both, keeps what it had.
type readinessTracker struct {
	prev  map[string]probeCounts
	ready map[string]lifecycle.ProbeReadiness
}

func (r *readinessTracker) observe(now map[string]probeCounts, at time.Time) map[string]lifecycle.ProbeReadiness {
	next := make(map[string]lifecycle.ProbeReadiness, len(now))
	for k, c := range now {
		p, seen := r.prev[k]
		old, known := r.ready[k]
		switch ds, df := c.succeeded-p.succeeded, c.failed-p.failed; {
		case !seen || ds < 0 || df < 0:
			if known {
				next[k] = old
			}
		case ds > 0 && df == 0:
			next[k] = lifecycle.ProbeReadiness{Ready: true, At: at}
		case df > 0 && ds == 0:
			next[k] = lifecycle.ProbeReadiness{Ready: false, At: at}
		case known:
			next[k] = old
		}
	}
	r.prev, r.ready = now, next
	return next
}

// readProbes reads /metrics/probes once; it is read only while the kubelet
// is cut off from the API server, when /pods cannot say who is ready.
func (s *Source) readProbes(ctx context.Context) {
	counts, err := s.fetchProbes(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if err.Error() != s.probesErr {
			s.log.Warn("kubelet probe metrics unreadable: readiness unknown while the kubelet is cut off", "err", oneLine(err))
		}
		s.probesErr = err.Error()
		if s.state.Readiness != nil {
			s.state.Readiness = nil
			s.bump()
		}
		return
	}
	s.probesErr = ""
	if next := s.readiness.observe(counts, time.Now()); !maps.Equal(next, s.state.Readiness) || s.state.Readiness == nil {
		s.state.Readiness = next
		s.bump()
	}
}

func (s *Source) fetchProbes(ctx context.Context) (map[string]probeCounts, error) {
	url := s.metricsURL + "/probes"
	resp, err := s.get(ctx, url, "text/plain")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		return nil, fmt.Errorf("kubelet %s: 403 Forbidden: %s", url, missingMetricsPermission)
	default:
		return nil, fmt.Errorf("kubelet %s: HTTP %d", url, resp.StatusCode)
	}
	return parseReadinessProbes(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes))
}
