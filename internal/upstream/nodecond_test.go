package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/podlife/podlife/lifecycle"
)

// flakyNodeStatus is an API server's PATCH /api/v1/nodes/NODE/status that
// fails the first PATCHes as told ("500": an error status without
// Retry-After; "reset": the connection closed without an answer), then
// accepts them, handing each accepted patch's conditions to landed.
type flakyNodeStatus struct {
	node   string
	fail   []string
	landed chan []corev1.NodeCondition

	mu      sync.Mutex
	patches int
}

func (f *flakyNodeStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPatch || r.URL.Path != "/api/v1/nodes/"+f.node+"/status" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.patches++
	n := f.patches
	f.mu.Unlock()
	if n <= len(f.fail) {
		switch f.fail[n-1] {
		case "reset":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}`)
		}
		return
	}
	var patch struct {
		Status struct {
			Conditions []corev1.NodeCondition `json:"conditions"`
		} `json:"status"`
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/strategic-merge-patch+json" || json.Unmarshal(body, &patch) != nil {
		http.Error(w, "not a strategic merge patch of the status: "+ct, http.StatusUnsupportedMediaType)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"kind":"Node","apiVersion":"v1","metadata":{"name":%q}}`, f.node)
	f.landed <- patch.Status.Conditions
}

func (f *flakyNodeStatus) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.patches
}

// TestNodeConditionPatchRetried: a PATCH of podlife's node conditions that
// fails (a 500 without Retry-After, a connection reset: client-go retries
// neither for a PATCH, k8s.io/client-go rest/request.go
// request/isErrRetryableFunc and with_retry.go checkWait) is not taken for
// applied: the next Sync sends the same conditions again, though nothing
// changed in between, until one lands; after that an unchanged Sync sends
// nothing. Conditions are set as node-problem-detector sets its own
// (strategic-merge patch of status.conditions, merged by type:
// k8s.io/api core/v1 NodeStatus.Conditions patchMergeKey=type).
func TestNodeConditionPatchRetried(t *testing.T) {
	f := &flakyNodeStatus{node: "node-a", fail: []string{"500", "reset"}, landed: make(chan []corev1.NodeCondition, 4)}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cs, err := newClientFor(&rest.Config{Host: srv.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	nc := NewNodeConditions(cs, "node-a", quiet())
	ctx := context.Background()
	sources := map[string]lifecycle.SourceHealth{
		lifecycle.SourceRuntime: {Configured: true, Up: true, LastSuccess: t0},
		lifecycle.SourceKubelet: {Configured: true, Up: false, LastSuccess: t0.Add(-time.Minute), LastError: "connection refused"},
	}
	if nc.Due(t0) {
		t.Fatal("Due before any patch")
	}
	for i, want := range f.fail {
		at := t0.Add(time.Duration(i) * time.Second)
		err := nc.Sync(ctx, sources, at)
		if nc.Due(at.Add(RetryAfter-time.Nanosecond)) || !nc.Due(at.Add(RetryAfter)) {
			t.Fatalf("after a failed PATCH at %s: Due before RetryAfter (%s), or not at it", at, RetryAfter)
		}
		if got := f.count(); got != i+1 {
			t.Fatalf("Sync %d: %d PATCHes in all, want %d: the conditions of a failed PATCH are sent again, once per Sync", i+1, got, i+1)
		}
		if err == nil {
			t.Fatalf("PATCH %d (%s): Sync succeeded", i+1, want)
		}
	}
	if err := nc.Sync(ctx, sources, t0.Add(5*time.Second)); err != nil {
		t.Fatalf("PATCH after the failures: %v", err)
	}
	got := <-f.landed // the server saw the successful PATCH
	if nc.Due(t0.Add(time.Hour)) {
		t.Fatal("Due after the PATCH landed")
	}
	status := map[string]corev1.NodeCondition{}
	for _, c := range got {
		status[string(c.Type)] = c
	}
	if k := status[CondKubeletUnreachable]; k.Status != corev1.ConditionTrue || k.Reason != CondKubeletUnreachable ||
		k.Message != "podlife cannot reach the kubelet: connection refused" {
		t.Fatalf("landed %s %+v, want True with the kubelet's error", CondKubeletUnreachable, k)
	}
	if r := status[CondRuntimeUnreachable]; r.Status != corev1.ConditionFalse || r.Reason != "ContainerRuntimeReachable" {
		t.Fatalf("landed %s %+v, want False", CondRuntimeUnreachable, r)
	}
	// Applied now: the same sources again send nothing.
	if err := nc.Sync(ctx, sources, t0.Add(10*time.Second)); err != nil || f.count() != len(f.fail)+1 {
		t.Fatalf("unchanged Sync after it landed: err %v, %d PATCHes, want %d", err, f.count(), len(f.fail)+1)
	}
}
