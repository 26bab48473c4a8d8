package testenv

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The harness runs a real container through CRI on a real containerd.
func TestContainerdRunsAContainer(t *testing.T) {
	c := StartContainerd(t)
	c.ImportImages(t)
	rs := c.Runtime(t)
	sb, cfg := RunSandbox(t, rs, PodSpec{Namespace: "ns", Name: "p", UID: "uid-p"})
	id, err := CreateContainer(t, rs, sb, cfg, ContainerSpec{Name: "app", Command: []string{"sh", "-c", "exit 3"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := rs.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			if st.Status.ExitCode != 3 {
				t.Fatalf("exit code %d, want 3", st.Status.ExitCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %s", st.Status.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
