package scale

import (
	"strings"
	"testing"
	"time"
)

// The harness's reading of the API server's audit log (run by make test, on
// a fixture in the audit.k8s.io/v1 format kube-apiserver writes with
// --audit-log-format=json).
func TestReadAudit(t *testing.T) {
	log := strings.Join([]string{
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/hn-001?timeout=10s","verb":"update","user":{"username":"system:node:hn-001","groups":["system:nodes","system:authenticated"]},"userAgent":"hollow-kubelet","objectRef":{"resource":"leases","namespace":"kube-node-lease","name":"hn-001","apiGroup":"coordination.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-12-07T10:00:00.100000Z","stageTimestamp":"2026-12-07T10:00:00.112000Z"}`,
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/readyz","verb":"get","user":{"username":"system:serviceaccount:podlife:podlife"},"userAgent":"podlife","responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-07T10:00:00.500000Z","stageTimestamp":"2026-12-07T10:00:00.501000Z"}`,
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/events.k8s.io/v1/namespaces/load/events","verb":"create","user":{"username":"system:serviceaccount:podlife:podlife"},"objectRef":{"resource":"events","namespace":"load","apiGroup":"events.k8s.io"},"responseStatus":{"code":201},"requestReceivedTimestamp":"2026-12-07T10:00:00.900000Z","stageTimestamp":"2026-12-07T10:00:00.950000Z"}`,
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/nodes?fieldSelector=metadata.name%3Dhn-001&watch=true","verb":"watch","user":{"username":"system:serviceaccount:podlife:podlife"},"objectRef":{"resource":"nodes","apiVersion":"v1"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-07T10:00:01.000000Z","stageTimestamp":"2026-12-07T10:07:01.000000Z"}`,
		`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/lease-probe-00","verb":"update","user":{"username":"system:node:lease-probe-00"},"objectRef":{"resource":"leases"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-12-07T10:00:01.200000Z","stageTimestamp":"2026-12-07T10:00:01.210000Z"}`,
	}, "\n")
	reqs, err := readAudit(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 5 {
		t.Fatalf("%d requests", len(reqs))
	}
	if q := reqs[0]; q.Client != "kubelet" || q.Verb != "update" || q.Resource != "leases" || q.Latency != 12*time.Millisecond || q.Code != 200 {
		t.Errorf("kubelet's %+v", q)
	}
	if q := reqs[1]; q.Client != "podlife" || q.Resource != "/readyz" {
		t.Errorf("probe %+v", q)
	}
	if reqs[4].Client != "probe" {
		t.Errorf("lease probe %+v", reqs[4])
	}
	from := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	w := window(reqs, from, from.Add(time.Second))
	r := perNodeMinute(w, "podlife", 2, 30*time.Second)
	// Two podlife requests in the first second, over 2 nodes and half a minute.
	if r.Total != 2 || r.ByKind["create events"] != 1 || r.Watches != 0 {
		t.Errorf("rates %+v", r)
	}
	if n, at := peak(reqs, "podlife"); n != 2 || !at.Equal(from) {
		t.Errorf("peak %d at %v", n, at)
	}
	if q := serverLatency(reqs, "probe", "update"); q.N != 1 || q.P99 != 10*time.Millisecond {
		t.Errorf("the probe's server-side latency %v", q)
	}
	for user, want := range map[string]string{"system:kube-controller-manager": "controllers",
		"system:serviceaccount:kube-system:node-controller": "controllers", "system:node:hn-001": "kubelet",
		"system:serviceaccount:default:x": "other"} {
		if got := clientOf(user); got != want {
			t.Errorf("clientOf(%s) = %s, want %s", user, got, want)
		}
	}
	if _, err := readAudit(strings.NewReader("{not json")); err == nil {
		t.Error("garbage read")
	}
}

func TestUpstreamOff(t *testing.T) {
	for _, c := range []struct {
		args []string
		off  bool
	}{{nil, false}, {[]string{"--upstream", "off"}, true}, {[]string{"--upstream=off"}, true},
		{[]string{"--upstream", "on"}, false}, {[]string{"--upstream"}, false}} {
		if got := upstreamOff(c.args); got != c.off {
			t.Errorf("upstreamOff(%q) = %v", c.args, got)
		}
	}
}
