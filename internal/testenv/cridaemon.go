package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criDaemon is what containerd and CRI-O have in common here: a daemon a
// test runs, everything of it under Dir, answering CRI on Socket.
type criDaemon struct {
	Endpoint string // unix:///.../<daemon>.sock
	Socket   string
	Dir      string
	PID      int

	t       testing.TB
	cmd     *proc
	config  string
	logFile string
}

// CRIEndpoint is the daemon's CRI socket.
func (d *criDaemon) CRIEndpoint() string { return d.Endpoint }

// DaemonPID is the daemon's PID (it changes with Restart).
func (d *criDaemon) DaemonPID() int { return d.PID }

func (d *criDaemon) client() (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient(d.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

func (d *criDaemon) ping() error {
	rs, done, err := d.client()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = rs.Version(ctx, &runtimeapi.VersionRequest{})
	return err
}

// waitAnswer waits up to 30 s for the daemon just started to answer CRI
// Version, and fails the test with its log's tail if it does not.
func (d *criDaemon) waitAnswer(name string) {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !d.cmd.exited() {
		if err := d.ping(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(d.logFile)
	d.t.Fatalf("%s did not answer CRI Version within 30s; log tail:\n%s", name, Tail(string(log), 3000))
}

// Runtime returns a CRI client for test set-up (closed at cleanup).
func (d *criDaemon) Runtime(t testing.TB) runtimeapi.RuntimeServiceClient {
	rs, done, err := d.client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	return rs
}

// Kill SIGKILLs the daemon only; containers (and their shims or conmon)
// keep running.
func (d *criDaemon) Kill(t testing.TB) { d.cmd.kill() }

// PullImage asks the runtime to pull ref and returns its error.
func (d *criDaemon) PullImage(t testing.TB, ref string) error {
	conn, err := grpc.NewClient(d.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = runtimeapi.NewImageServiceClient(conn).PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	return err
}

// removeSandboxes stops and removes every pod sandbox through CRI while the
// daemon runs, and returns their IDs.
func (d *criDaemon) removeSandboxes() []string {
	if d.cmd == nil || d.cmd.exited() {
		return nil
	}
	rs, done, err := d.client()
	if err != nil {
		return nil
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ids []string
	if l, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
		for _, sb := range l.Items {
			ids = append(ids, sb.Id)
			rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
			rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id})
		}
	}
	return ids
}
