package testenv

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRIRuntime is a real CRI runtime a test starts, with BusyboxImage and
// PauseImage in its store.
type CRIRuntime interface {
	// CRIEndpoint is the runtime's CRI socket, unix:///....
	CRIEndpoint() string
	// DaemonPID is the PID of the runtime's daemon (containerd, crio).
	DaemonPID() int
	// Runtime returns a CRI client for test set-up (closed at cleanup).
	Runtime(t testing.TB) runtimeapi.RuntimeServiceClient
	// PullImage asks the runtime to pull ref and returns its error.
	PullImage(t testing.TB, ref string) error
	// Kill SIGKILLs the runtime's daemon only; containers keep running.
	Kill(t testing.TB)
	// Stop stops the daemon gracefully; containers keep running.
	Stop(t testing.TB)
	// Restart starts the daemon again on the same state and socket.
	Restart(t testing.TB)
}

// RuntimeNames are the runtimes the table tests run over, by the names
// their CRI Version answers give (the kubelet's container ID schemes).
var RuntimeNames = []string{"containerd", "cri-o"}

// StartRuntime starts the named runtime (RuntimeNames); make tools builds
// both.
func StartRuntime(t testing.TB, name string) CRIRuntime {
	t.Helper()
	switch name {
	case "containerd":
		c := StartContainerd(t)
		c.ImportImages(t)
		return c
	case "cri-o":
		return StartCRIO(t)
	}
	t.Fatalf("runtime %q: want one of %v", name, RuntimeNames)
	return nil
}
