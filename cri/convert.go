package cri

import (
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/podlife/podlife/lifecycle"
)

func nanos(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// ConvertSandbox turns a CRI pod sandbox into the lifecycle input type.
func ConvertSandbox(s *runtimeapi.PodSandbox) lifecycle.Sandbox {
	out := lifecycle.Sandbox{ID: s.GetId(), CreatedAt: nanos(s.GetCreatedAt()), Labels: s.GetLabels(),
		State: convertSandboxState(s.GetState())}
	if m := s.GetMetadata(); m != nil {
		out.PodUID, out.PodName, out.PodNamespace, out.Attempt = m.GetUid(), m.GetName(), m.GetNamespace(), m.GetAttempt()
	}
	labelsOver(&out.PodUID, &out.PodName, &out.PodNamespace, out.Labels)
	return out
}

// labelsOver prefers the kubelet's io.kubernetes.* labels where present.
func labelsOver(uid, name, ns *string, l map[string]string) {
	if v := l[lifecycle.LabelPodUID]; v != "" {
		*uid = v
	}
	if v := l[lifecycle.LabelPodName]; v != "" {
		*name = v
	}
	if v := l[lifecycle.LabelPodNamespace]; v != "" {
		*ns = v
	}
}

func convertSandboxState(s runtimeapi.PodSandboxState) lifecycle.SandboxState {
	if s == runtimeapi.PodSandboxState_SANDBOX_READY {
		return lifecycle.SandboxReady
	}
	return lifecycle.SandboxNotReady
}

func convertState(s runtimeapi.ContainerState) lifecycle.RuntimeState {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return lifecycle.RuntimeCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return lifecycle.RuntimeRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return lifecycle.RuntimeExited
	}
	return lifecycle.RuntimeUnknown
}

// ConvertContainer turns a CRI container listing entry, and its status when
// known (exit code, reason, times are only there), into the lifecycle type.
// The status, being newer, wins where both speak. sandboxes resolves the pod
// of a container that carries no pod labels.
func ConvertContainer(c *runtimeapi.Container, st *runtimeapi.ContainerStatus, sandboxes map[string]*lifecycle.Sandbox) lifecycle.Container {
	out := lifecycle.Container{ID: c.GetId(), SandboxID: c.GetPodSandboxId(), State: convertState(c.GetState()),
		CreatedAt: nanos(c.GetCreatedAt()), Labels: c.GetLabels(), ImageRef: c.GetImageRef()}
	if m := c.GetMetadata(); m != nil {
		out.Name, out.Attempt = m.GetName(), m.GetAttempt()
	}
	if img := c.GetImage(); img != nil {
		out.Image = img.GetImage()
	}
	if st != nil {
		applyStatus(&out, st)
	}
	if sb := sandboxes[out.SandboxID]; sb != nil {
		out.PodUID, out.PodName, out.PodNamespace = sb.PodUID, sb.PodName, sb.PodNamespace
	}
	labelsOver(&out.PodUID, &out.PodName, &out.PodNamespace, out.Labels)
	if v := out.Labels[lifecycle.LabelContainerName]; v != "" {
		out.Name = v
	}
	return out
}

// applyStatus copies a ContainerStatus answer onto a container.
func applyStatus(out *lifecycle.Container, st *runtimeapi.ContainerStatus) {
	out.State = convertState(st.GetState())
	out.CreatedAt = nanos(st.GetCreatedAt())
	out.StartedAt, out.FinishedAt = nanos(st.GetStartedAt()), nanos(st.GetFinishedAt())
	out.ExitCode, out.Reason, out.Message = st.GetExitCode(), st.GetReason(), st.GetMessage()
	if m := st.GetMetadata(); m != nil {
		out.Name, out.Attempt = m.GetName(), m.GetAttempt()
	}
	if img := st.GetImage(); img != nil && img.GetImage() != "" {
		out.Image = img.GetImage()
	}
	if st.GetImageRef() != "" {
		out.ImageRef = st.GetImageRef()
	}
	if st.GetLogPath() != "" {
		out.LogPath = st.GetLogPath()
	}
	if len(st.GetLabels()) > 0 {
		out.Labels = st.GetLabels()
	}
}

// ContainerFromStatus builds a container from a status alone (stream events).
func ContainerFromStatus(sandboxID string, st *runtimeapi.ContainerStatus, sandboxes map[string]*lifecycle.Sandbox) lifecycle.Container {
	return ConvertContainer(&runtimeapi.Container{Id: st.GetId(), PodSandboxId: sandboxID, Metadata: st.GetMetadata(),
		Image: st.GetImage(), ImageRef: st.GetImageRef(), State: st.GetState(), CreatedAt: st.GetCreatedAt(),
		Labels: st.GetLabels()}, st, sandboxes)
}
