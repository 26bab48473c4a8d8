package cri

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// The runtime restarted (stopped gracefully, as a service manager does)
// while the event stream is open: the stream ends, is reopened once the
// runtime is back, and carries the next exit on its own — the relist runs
// once an hour here, so nothing else could show it. On containerd and CRI-O.
func TestStreamReopensAfterRuntimeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (containerd, CRI-O): not in -short")
	}
	for _, name := range testenv.RuntimeNames {
		t.Run(name, func(t *testing.T) { streamReopens(t, testenv.StartRuntime(t, name)) })
	}
}

func streamReopens(t *testing.T, ctd testenv.CRIRuntime) {
	rs := ctd.Runtime(t)
	s, _ := startSource(t, Config{Endpoint: ctd.CRIEndpoint(), Stream: true, RelistInterval: time.Hour, CallTimeout: 2 * time.Second})
	waitState(t, s, "streaming", 10*time.Second, func(st State) bool { return st.Streaming })
	ctd.Stop(t)
	waitState(t, s, "the stream ended", 10*time.Second, func(st State) bool { return !st.Streaming })
	ctd.Restart(t)
	waitState(t, s, "the stream reopened", 15*time.Second, func(st State) bool { return st.Streaming })
	pod := testenv.PodSpec{Namespace: "ns", Name: "after-restart", UID: "uid-after-restart"}
	sb, cfg := testenv.RunSandbox(t, rs, pod)
	if _, err := testenv.CreateContainer(t, rs, sb, cfg, testenv.ContainerSpec{Name: "c", Command: []string{"sh", "-c", "sleep 0.3; exit 3"}}, true); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, s, "the exit, through the reopened stream", 20*time.Second, func(st State) bool {
		c := findContainer(st, pod.UID, "c", 0)
		return c != nil && c.State == lifecycle.RuntimeExited
	})
	if c := findContainer(st, pod.UID, "c", 0); c.ExitCode != 3 || !st.Streaming {
		t.Fatalf("container %+v, streaming %v", c, st.Streaming)
	}
}

// CRI-O with its container events off (enable_pod_events, off by default):
// podlife still sees every exit, by relisting, and says whether it streams.
func TestCRIOWithoutPodEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (CRI-O): not in -short")
	}
	crio := testenv.StartCRIOWith(t, testenv.CRIOOptions{NoPodEvents: true})
	rs := crio.Runtime(t)
	var logs testenv.LogBuffer
	s, _ := startSourceLogging(t, Config{Endpoint: crio.CRIEndpoint(), Stream: true, RelistInterval: time.Second,
		CallTimeout: 2 * time.Second}, slog.New(slog.NewTextHandler(&logs, nil)))
	waitState(t, s, "up", 10*time.Second, func(st State) bool { return st.Health.Up })
	pod := testenv.PodSpec{Namespace: "ns", Name: "no-events", UID: "uid-no-events"}
	sb, cfg := testenv.RunSandbox(t, rs, pod)
	if _, err := testenv.CreateContainer(t, rs, sb, cfg, testenv.ContainerSpec{Name: "c", Command: []string{"sh", "-c", "sleep 0.3; exit 3"}}, true); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, s, "the exit, by relisting", 20*time.Second, func(st State) bool {
		c := findContainer(st, pod.UID, "c", 0)
		return c != nil && c.State == lifecycle.RuntimeExited
	})
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ccancel()
	stream, err := rs.GetContainerEvents(cctx, &runtimeapi.GetEventsRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	t.Logf("CRI-O's GetContainerEvents without pod events: %v", err)
	if c := findContainer(st, pod.UID, "c", 0); c.ExitCode != 3 || st.Streaming {
		t.Fatalf("container %+v, streaming %v: want exit 3 seen by relisting, not streaming", c, st.Streaming)
	}
	// It says so once, and does not reopen the stream every second.
	if n := strings.Count(logs.String(), "does not stream container events"); n != 1 {
		t.Fatalf("said %d times that the runtime does not stream; log:\n%s", n, logs.String())
	}
}
