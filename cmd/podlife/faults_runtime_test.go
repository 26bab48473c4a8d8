package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// TestRuntimeFaults: the runtime rows of the fault table, on a real
// containerd under the real agent.
func TestRuntimeFaults(t *testing.T) {
	bin, ctd, k := startFaultNode(t, "podlife-rtfaults")
	ag := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL, "--upstream", "off")
	ag.waitFaultPods(k.Name)
	const streamOpen = "following the runtime's container events"

	t.Run("containerd restarted while the event stream is open", func(t *testing.T) {
		ag.t = t
		if n := ag.logged(streamOpen); n != 1 {
			t.Fatalf("the event stream opened %d times before the restart, want 1", n)
		}
		before := ag.mark()
		ctd.Stop(t)
		ag.waitDown(lifecycle.SourceRuntime, 30*time.Second, "cri "+ctd.Endpoint+": ")
		ctd.Restart(t)
		ag.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		testenv.Eventually(t, "the event stream reopened", 30*time.Second, func() bool {
			return ag.logged("container event stream ended") == 1 && ag.logged(streamOpen) == 2
		})
		ag.checkJournal(before, lifecycle.SourceRuntime)
	})
	t.Run("socket removed, then re-created", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		if err := os.Remove(ctd.Socket); err != nil {
			t.Fatal(err)
		}
		// The connection the agent holds still reaches containerd: it goes
		// on reading the runtime (a relist every 500 ms) without the file.
		since := time.Now()
		time.Sleep(3 * time.Second)
		if r, _ := ag.pods(); !r.Sources[lifecycle.SourceRuntime].Up || !r.Sources[lifecycle.SourceRuntime].LastSuccess.After(since) {
			t.Errorf("with the socket file gone but its connection open: runtime %+v, want up and read since", r.Sources[lifecycle.SourceRuntime])
		}
		ctd.Kill(t) // the connection ends; a new one finds no socket
		ag.waitDown(lifecycle.SourceRuntime, 30*time.Second, "cri "+ctd.Endpoint+": ", "connect: no such file or directory")
		ctd.Restart(t) // containerd makes its socket again
		ag.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		ag.checkJournal(before, lifecycle.SourceRuntime)
	})
	t.Run("permission denied on the socket", func(t *testing.T) {
		// Root passes a unix socket's file mode (CAP_DAC_OVERRIDE), so an
		// agent run as root cannot be denied: this one runs as nobody.
		if err := os.Chmod(ctd.Socket, 0); err != nil {
			t.Fatal(err)
		}
		if c, err := net.Dial("unix", ctd.Socket); err != nil {
			t.Logf("root was refused a mode-0 socket (%v): this kernel enforces it even for root", err)
		} else {
			c.Close()
			t.Logf("root connects to a mode-0 socket: the denied agent runs as uid %d", nobody)
		}
		// containerd's directory is root's 0700: let nobody reach the socket.
		for path, mode := range map[string]os.FileMode{ctd.Dir: 0o711, ctd.Socket: 0o666} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
		}
		wrapper, journalPath := asNobody(t, bin)
		nb := startFaultAgent(t, wrapper, "--node-name", k.Name, "--cri-endpoint", ctd.Endpoint, "--kubelet-url", k.ReadOnlyURL,
			"--upstream", "off", "--journal-path", journalPath)
		nb.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", nb.Process.Pid)); !strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", nobody)) {
			t.Fatalf("the agent does not run as uid %d:\n%s", nobody, b)
		}
		before := nb.mark()
		// Restarted, containerd makes its socket root:root 0660 again.
		ctd.Stop(t)
		ctd.Restart(t)
		nb.waitDown(lifecycle.SourceRuntime, 30*time.Second, "cri "+ctd.Endpoint+": ", "connect: permission denied")
		if err := os.Chmod(ctd.Socket, 0o666); err != nil {
			t.Fatal(err)
		}
		nb.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		nb.checkJournal(before, lifecycle.SourceRuntime)
	})
	t.Run("a runtime without GetContainerEvents", func(t *testing.T) {
		ep := startEventlessCRI(t, ctd.Socket)
		el := startFaultAgent(t, bin, "--node-name", k.Name, "--cri-endpoint", ep, "--kubelet-url", k.ReadOnlyURL, "--upstream", "off")
		el.waitUp(lifecycle.SourceRuntime, 30*time.Second)
		testenv.Eventually(t, "the agent saying it relists only", 30*time.Second, func() bool {
			return el.logged("runtime does not stream container events; relisting only") >= 1
		})
		before := el.mark()
		// A pod that runs and exits now is seen by relisting alone.
		oneshot := strings.ReplaceAll(testenv.PodManifest(t, "completed", "oneshot", "e2e"), `"exit 0"`, `"sleep 2; exit 3"`)
		k.AddStaticPod(t, "oneshot", oneshot)
		var seen []string
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the one-shot pod's transitions: %s", strings.Join(seen, "; "))
			}
		})
		testenv.Eventually(t, "the one-shot container seen running, then exiting, in the runtime", 60*time.Second, func() bool {
			exited := false
			seen = nil
			for _, r := range el.history() {
				if strings.HasPrefix(r.Pod, "oneshot") {
					seen = append(seen, describe(r.Transition))
				}
				exited = exited || r.Pod == "oneshot-"+k.Name && r.Container == "job" && r.Source == lifecycle.SourceRuntime &&
					r.Kind == lifecycle.TransitionContainerState && r.From == string(lifecycle.RuntimeRunning) &&
					r.To == string(lifecycle.RuntimeExited) && r.ExitCode != nil && *r.ExitCode == 3
			}
			return exited
		})
		if n := el.logged(streamOpen); n != 0 {
			t.Errorf("the agent says it follows events %d times from a runtime without them", n)
		}
		el.checkJournalCycles(before, lifecycle.SourceRuntime, 0)
	})
}

// nobody is the uid and gid the permission-denied agent runs as.
const nobody = 65534

// asNobody returns a command that runs the podlife binary bin as nobody
// (setpriv execs it: the PID the test starts is the agent's own), and a
// journal path nobody can write.
func asNobody(t *testing.T, bin string) (wrapper, journalPath string) {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) runs the agent as nobody: %v", err)
	}
	dir, err := os.MkdirTemp("", "podlife-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	journalDir := filepath.Join(dir, "journal")
	if err := os.Mkdir(journalDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(journalDir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "podlife")
	wrapper = filepath.Join(dir, "podlife-as-nobody")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --reuid=%d --regid=%d --clear-groups %s \"$@\"\n", setpriv, nobody, nobody, own)
	for path, content := range map[string][]byte{own: b, wrapper: []byte(script)} {
		if err := os.WriteFile(path, content, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, filepath.Join(journalDir, "journal.db")
}

// startEventlessCRI serves a CRI socket that passes every call through to
// the containerd at backend but answers GetContainerEvents Unimplemented, as
// runtimes without the event stream do. It stops at test end.
func startEventlessCRI(t *testing.T, backend string) string {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+backend, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(passthroughCodec{}), grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		if method == runtimeapi.RuntimeService_GetContainerEvents_FullMethodName {
			return status.Error(codes.Unimplemented, "unknown method GetContainerEvents for service runtime.v1.RuntimeService")
		}
		var req, resp []byte // every other call is unary
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		if err := conn.Invoke(ss.Context(), method, &req, &resp, grpc.ForceCodecV2(passthroughCodec{})); err != nil {
			return err
		}
		return ss.SendMsg(&resp)
	}))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Stop(); conn.Close() })
	return "unix://" + sock
}

// passthroughCodec carries messages as their undecoded bytes (*[]byte).
type passthroughCodec struct{}

func (passthroughCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (passthroughCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (passthroughCodec) Name() string { return "proto" }

// checkDelivered waits until the agent has delivered its whole journal
// upstream, then checks, after a fault of source: nothing dropped; every
// reportable transition the agent journaled (its history, numbered as the
// journal numbers them in a journal it started) is exactly one Event, every
// other none; what it had journaled before the fault is still recorded
// unchanged; and source went down and came back once since before.
