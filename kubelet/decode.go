package kubelet

import (
	"fmt"
	json "github.com/goccy/go-json"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// The wire subset of a v1.PodList that the lifecycle model needs. Decoding
// into these small structs lets encoding/json skip specs, volumes, env,
// managed fields and annotations without allocating for them.
type podList struct {
	Kind  string `json:"kind"`
	Items []pod  `json:"items"`
}

type pod struct {
	Metadata struct {
		Name              string     `json:"name"`
		Namespace         string     `json:"namespace"`
		UID               string     `json:"uid"`
		CreationTimestamp *time.Time `json:"creationTimestamp"`
		DeletionTimestamp *time.Time `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		RestartPolicy  string `json:"restartPolicy"`
		InitContainers []struct {
			Name          string `json:"name"`
			RestartPolicy string `json:"restartPolicy"`
		} `json:"initContainers"`
	} `json:"spec"`
	Status struct {
		Phase      string     `json:"phase"`
		Reason     string     `json:"reason"`
		Message    string     `json:"message"`
		StartTime  *time.Time `json:"startTime"`
		Conditions []struct {
			Type               string     `json:"type"`
			Status             string     `json:"status"`
			Reason             string     `json:"reason"`
			Message            string     `json:"message"`
			LastTransitionTime *time.Time `json:"lastTransitionTime"`
			LastProbeTime      *time.Time `json:"lastProbeTime"`
		} `json:"conditions"`
		InitContainerStatuses      []containerStatus `json:"initContainerStatuses"`
		ContainerStatuses          []containerStatus `json:"containerStatuses"`
		EphemeralContainerStatuses []containerStatus `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name                 string         `json:"name"`
	State                containerState `json:"state"`
	LastTerminationState containerState `json:"lastState"`
	Ready                bool           `json:"ready"`
	Started              *bool          `json:"started"`
	RestartCount         int32          `json:"restartCount"`
	Image                string         `json:"image"`
	ImageID              string         `json:"imageID"`
	ContainerID          string         `json:"containerID"`
}

type containerState struct {
	Waiting *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"waiting"`
	Running *struct {
		StartedAt *time.Time `json:"startedAt"`
	} `json:"running"`
	Terminated *struct {
		ExitCode    int32      `json:"exitCode"`
		Signal      int32      `json:"signal"`
		Reason      string     `json:"reason"`
		Message     string     `json:"message"`
		StartedAt   *time.Time `json:"startedAt"`
		FinishedAt  *time.Time `json:"finishedAt"`
		ContainerID string     `json:"containerID"`
	} `json:"terminated"`
}

func tm(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func (s *containerState) convert() lifecycle.ContainerState {
	switch {
	case s.Terminated != nil:
		t := s.Terminated
		return lifecycle.ContainerState{Kind: lifecycle.StateTerminated, Reason: t.Reason, Message: t.Message,
			ExitCode: t.ExitCode, Signal: t.Signal, StartedAt: tm(t.StartedAt), FinishedAt: tm(t.FinishedAt), ContainerID: t.ContainerID}
	case s.Running != nil:
		return lifecycle.ContainerState{Kind: lifecycle.StateRunning, StartedAt: tm(s.Running.StartedAt)}
	case s.Waiting != nil:
		return lifecycle.ContainerState{Kind: lifecycle.StateWaiting, Reason: s.Waiting.Reason, Message: s.Waiting.Message}
	}
	return lifecycle.ContainerState{}
}

// Decode parses a kubelet /pods answer (a v1.PodList) into the lifecycle
// model's pods, reading only the fields the model needs. A Status object or
// anything that is not a PodList is an error.
func Decode(body []byte) ([]lifecycle.Pod, error) {
	var l podList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("decode /pods: %w", err)
	}
	if l.Kind != "PodList" {
		return nil, fmt.Errorf("decode /pods: got kind %q, want PodList", l.Kind)
	}
	out := make([]lifecycle.Pod, 0, len(l.Items))
	for i := range l.Items {
		p := &l.Items[i]
		lp := lifecycle.Pod{UID: p.Metadata.UID, Namespace: p.Metadata.Namespace, Name: p.Metadata.Name,
			Phase: lifecycle.Phase(p.Status.Phase), Reason: p.Status.Reason, Message: p.Status.Message,
			RestartPolicy: p.Spec.RestartPolicy, Created: tm(p.Metadata.CreationTimestamp),
			Started: tm(p.Status.StartTime), Deleting: tm(p.Metadata.DeletionTimestamp)}
		for _, c := range p.Status.Conditions {
			lp.Conditions = append(lp.Conditions, lifecycle.Condition{Type: c.Type, Status: c.Status, Reason: c.Reason,
				Message: c.Message, LastTransitionTime: tm(c.LastTransitionTime), LastProbeTime: tm(c.LastProbeTime)})
		}
		sidecar := map[string]bool{}
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy == "Always" {
				sidecar[c.Name] = true
			}
		}
		n := len(p.Status.InitContainerStatuses) + len(p.Status.ContainerStatuses) + len(p.Status.EphemeralContainerStatuses)
		lp.Containers = make([]lifecycle.ContainerStatus, 0, n)
		add := func(cs []containerStatus, kind func(string) lifecycle.ContainerKind) {
			for i := range cs {
				c := &cs[i]
				lp.Containers = append(lp.Containers, lifecycle.ContainerStatus{Name: c.Name, Kind: kind(c.Name),
					State: c.State.convert(), LastState: c.LastTerminationState.convert(), Ready: c.Ready, Started: c.Started,
					RestartCount: c.RestartCount, Image: c.Image, ImageID: c.ImageID, ContainerID: c.ContainerID})
			}
		}
		add(p.Status.InitContainerStatuses, func(name string) lifecycle.ContainerKind {
			if sidecar[name] {
				return lifecycle.KindSidecar
			}
			return lifecycle.KindInit
		})
		add(p.Status.ContainerStatuses, func(string) lifecycle.ContainerKind { return lifecycle.KindRegular })
		add(p.Status.EphemeralContainerStatuses, func(string) lifecycle.ContainerKind { return lifecycle.KindEphemeral })
		out = append(out, lp)
	}
	return out, nil
}
