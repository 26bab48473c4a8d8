package agent

import (
	"testing"
	"time"

	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/lifecycle"
)

// The kubelet renews its node Lease every quarter of its duration
// (pkg/kubelet/kubelet.go, nodeLeaseRenewIntervalFraction 0.25); a Lease
// older than its whole duration, read from a reachable API server, means the
// kubelet lost the API server.
func TestLinkFromLease(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	up := lifecycle.SourceHealth{Configured: true, Up: true, LastSuccess: now}
	lease := func(age time.Duration) upstream.NodeLease {
		return upstream.NodeLease{RenewTime: now.Add(-age), Duration: 40 * time.Second}
	}
	metricsCut := lifecycle.KubeletLink{CutOff: true, Since: now.Add(-time.Minute), Evidence: "metrics"}
	tests := []struct {
		name  string
		link  lifecycle.KubeletLink
		lease upstream.NodeLease
		api   lifecycle.SourceHealth
		cut   bool
		since time.Time
	}{
		{"fresh lease", lifecycle.KubeletLink{}, lease(5 * time.Second), up, false, time.Time{}},
		{"lease older than its duration", lifecycle.KubeletLink{}, lease(41 * time.Second), up, true, now.Add(-41 * time.Second)},
		{"stale lease from an API server podlife cannot reach says nothing", lifecycle.KubeletLink{}, lease(time.Hour),
			lifecycle.SourceHealth{Configured: true}, false, time.Time{}},
		{"never read", lifecycle.KubeletLink{}, upstream.NodeLease{}, up, false, time.Time{}},
		{"the metrics' verdict stands", metricsCut, lease(time.Second), up, true, metricsCut.Since},
	}
	for _, tc := range tests {
		got := linkFromLease(tc.link, tc.lease, tc.api, now)
		if got.CutOff != tc.cut || !got.Since.Equal(tc.since) {
			t.Errorf("%s: %+v, want cut=%v since %s", tc.name, got, tc.cut, tc.since)
		}
	}
}
