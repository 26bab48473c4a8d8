package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podlife/podlife/cri"
	"github.com/podlife/podlife/internal/simnode"
	"github.com/podlife/podlife/internal/upstream"
	"github.com/podlife/podlife/kubelet"
	"github.com/podlife/podlife/lifecycle"
)

// A running agent on the real sources, over the in-process simulated node:
// when the kubelet (then the runtime) goes down and comes back, the source
// flips to down and up again, the agent records SourceDown then SourceUp,
// podlife_source_up goes 1 → 0 → 1, and the node condition it would set
// turns True and back to False.
func TestSourceOutagesReachTheAgent(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := simnode.Start(ctx, simnode.Options{Dir: t.TempDir(), Pods: 3, Tick: 20 * time.Millisecond}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rt, err := cri.New(cri.Config{Endpoint: n.CRIEndpoint, RelistInterval: 50 * time.Millisecond, CallTimeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	kl, err := kubelet.New(kubelet.Config{URL: n.KubeletURL, PollInterval: 50 * time.Millisecond, Timeout: 5 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Node: "sim", Runtime: rt, Kubelet: kl, Log: log})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	metric := func(source string) string {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		prefix := `podlife_source_up{source="` + source + `"} `
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				return v
			}
		}
		return "absent"
	}
	condition := func(typ string) corev1.ConditionStatus {
		s := a.Snapshot()
		if s == nil {
			return ""
		}
		for _, c := range upstream.Desired(s.Sources, s.At) {
			if string(c.Type) == typ {
				return c.Status
			}
		}
		return ""
	}
	transitions := func(source string) string {
		var kinds []string
		for _, r := range a.Since(time.Time{}) {
			if r.Source == source && (r.Kind == lifecycle.TransitionSourceDown || r.Kind == lifecycle.TransitionSourceUp) {
				kinds = append(kinds, string(r.Kind))
			}
		}
		return strings.Join(kinds, " ")
	}

	for _, tc := range []struct {
		source  string
		setDown func(bool)
		cond    string
	}{
		{lifecycle.SourceKubelet, n.SetKubeletDown, upstream.CondKubeletUnreachable},
		{lifecycle.SourceRuntime, n.SetRuntimeDown, upstream.CondRuntimeUnreachable},
	} {
		t.Run(tc.source, func(t *testing.T) {
			type want struct {
				up          bool
				metric      string
				cond        corev1.ConditionStatus
				transitions string
			}
			wait := func(phase string, w want) {
				t.Helper()
				var got want
				deadline := time.Now().Add(20 * time.Second)
				for {
					s := a.Snapshot()
					got = want{s != nil && s.Sources[tc.source].Up, metric(tc.source), condition(tc.cond), transitions(tc.source)}
					if got == w {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: %s: got %+v, want %+v", tc.source, phase, got, w)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			wait("up", want{true, "1", corev1.ConditionFalse, ""})
			tc.setDown(true)
			wait("down", want{false, "0", corev1.ConditionTrue, "SourceDown"})
			tc.setDown(false)
			wait("up again", want{true, "1", corev1.ConditionFalse, "SourceDown SourceUp"})
		})
	}
}
