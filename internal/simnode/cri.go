package simnode

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeName is the simulated runtime's name, in its Version answer and,
// as a real kubelet writes it, in its kubelet's container IDs
// ("podlife-simnode://<id>").
const RuntimeName = "podlife-simnode"

// criServer answers the read side of the CRI RuntimeService from the
// simulation; everything else is Unimplemented.
type criServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	n *Node
}

func (s *criServer) pods() []simPod {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	return s.n.runtime
}

func (s *criServer) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

func (s *criServer) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	pods := s.pods()
	out := &runtimeapi.ListPodSandboxResponse{Items: make([]*runtimeapi.PodSandbox, 0, len(pods))}
	for i := range pods {
		p := &pods[i]
		out.Items = append(out.Items, &runtimeapi.PodSandbox{Id: sandboxID(p), State: runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: nanos(p.created), Labels: labels(p),
			Metadata: &runtimeapi.PodSandboxMetadata{Name: p.name, Namespace: p.ns, Uid: p.uid}})
	}
	return out, nil
}

func (s *criServer) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	sts, _ := s.n.containerStatuses()
	out := &runtimeapi.ListContainersResponse{Containers: make([]*runtimeapi.Container, 0, len(sts))}
	for _, st := range sts {
		out.Containers = append(out.Containers, &runtimeapi.Container{Id: st.Id, PodSandboxId: "sb-" + st.Labels["io.kubernetes.pod.uid"],
			Metadata: st.Metadata, Image: st.Image, ImageRef: st.ImageRef, State: st.State, CreatedAt: st.CreatedAt, Labels: st.Labels})
	}
	return out, nil
}

func (s *criServer) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if _, byID := s.n.containerStatuses(); byID[r.ContainerId] != nil {
		return &runtimeapi.ContainerStatusResponse{Status: byID[r.ContainerId]}, nil
	}
	return nil, status.Errorf(codes.NotFound, "container %q not found", r.ContainerId)
}

func (s *criServer) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	ch := make(chan *runtimeapi.ContainerEventResponse, 4096)
	s.n.mu.Lock()
	s.n.streams[ch] = struct{}{}
	s.n.mu.Unlock()
	defer func() {
		s.n.mu.Lock()
		delete(s.n.streams, ch)
		s.n.mu.Unlock()
	}()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev := <-ch:
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}
