package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSpec describes a pod the test creates directly through CRI, labelled as
// the kubelet labels its pods.
type PodSpec struct {
	Namespace, Name, UID string
}

// ContainerSpec is one container of a CRI test pod.
type ContainerSpec struct {
	Name    string
	Image   string // default BusyboxImage
	Command []string
	Attempt uint32
	// MemoryLimit, when positive, is the container's memory limit in bytes.
	MemoryLimit int64
}

// RunSandbox creates a host-network pod sandbox and returns its ID and config.
func RunSandbox(t testing.TB, rs runtimeapi.RuntimeServiceClient, p PodSpec) (string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID},
		Labels: map[string]string{"io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace,
			"io.kubernetes.pod.uid": p.UID},
		LogDirectory: t.TempDir(),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", p.Name, err)
	}
	return r.PodSandboxId, cfg
}

// CreateContainer creates (and, if start, starts) a container in a sandbox.
func CreateContainer(t testing.TB, rs runtimeapi.RuntimeServiceClient, sandboxID string, sb *runtimeapi.PodSandboxConfig,
	c ContainerSpec, start bool) (string, error) {
	t.Helper()
	if c.Image == "" {
		c.Image = BusyboxImage
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
		// UserSpecifiedImage as the kubelet sets it: CRI-O refuses a
		// create without it ("user specified image not specified").
		Image:   &runtimeapi.ImageSpec{Image: c.Image, UserSpecifiedImage: c.Image},
		Command: c.Command,
		Labels: map[string]string{"io.kubernetes.container.name": c.Name, "io.kubernetes.pod.name": sb.Metadata.Name,
			"io.kubernetes.pod.namespace": sb.Metadata.Namespace, "io.kubernetes.pod.uid": sb.Metadata.Uid},
		LogPath: fmt.Sprintf("%s_%d.log", c.Name, c.Attempt),
	}
	if c.MemoryLimit > 0 {
		cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: c.MemoryLimit}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sb})
	if err != nil {
		return "", fmt.Errorf("CreateContainer %s: %w", c.Name, err)
	}
	if start {
		if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: r.ContainerId}); err != nil {
			return r.ContainerId, fmt.Errorf("StartContainer %s: %w", c.Name, err)
		}
	}
	return r.ContainerId, nil
}
