package kubelet

import (
	"bytes"
	"fmt"
	json "github.com/goccy/go-json"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	"github.com/podlife/podlife/lifecycle"
)

// pod is the wire subset of a v1.Pod that the lifecycle model needs.
// Decoding into these small structs lets the decoder skip specs, volumes,
// env, managed fields and annotations without allocating for them.
type pod struct {
	Metadata struct {
		Name              string     `json:"name"`
		Namespace         string     `json:"namespace"`
		UID               string     `json:"uid"`
		CreationTimestamp *time.Time `json:"creationTimestamp"`
		DeletionTimestamp *time.Time `json:"deletionTimestamp"`
		Annotations       struct {
			// ConfigSource is set by the kubelet on every pod it runs: "api"
			// for pods from the API server, "file" or "http" for static pods.
			ConfigSource string `json:"kubernetes.io/config.source"`
		} `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		RestartPolicy  string          `json:"restartPolicy"`
		InitContainers []specContainer `json:"initContainers"`
		Containers     []specContainer `json:"containers"`
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

// specContainer is the part of a container's spec the model needs.
type specContainer struct {
	Name               string    `json:"name"`
	RestartPolicy      string    `json:"restartPolicy"`
	ReadinessProbe     *struct{} `json:"readinessProbe"`
	RestartPolicyRules []struct {
		Action    string `json:"action"`
		ExitCodes *struct {
			Operator string  `json:"operator"`
			Values   []int32 `json:"values"`
		} `json:"exitCodes"`
	} `json:"restartPolicyRules"`
}

// restartRules encodes restartPolicyRules as lifecycle.ContainerStatus
// keeps them: "ACTION:OPERATOR:CODE,CODE;..." in spec order.
func (c *specContainer) restartRules() string {
	var b strings.Builder
	for i, r := range c.RestartPolicyRules {
		if r.ExitCodes == nil {
			continue
		}
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(r.Action + ":" + r.ExitCodes.Operator + ":")
		for j, v := range r.ExitCodes.Values {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(v)))
		}
	}
	return b.String()
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

// Decode decodes a /pods answer (a v1.PodList) into lifecycle pods.
func Decode(body []byte) ([]lifecycle.Pod, error) {
	var d Decoder
	return d.Decode(body)
}

// Decoder decodes successive /pods answers of one kubelet. An item whose
// bytes are the same as in the previous answer is not decoded again: its
// previous pod is reused, strings and all, so that the lifecycle
// Correlator's comparison of it is by address. The zero value is ready to
// use; it is not safe for concurrent use.
type Decoder struct {
	seed maphash.Seed
	prev map[uint64]decodedItem // the previous answer's items by hash of their bytes
}

type decodedItem struct {
	raw []byte
	pod lifecycle.Pod
}

// Decode decodes a /pods answer (a v1.PodList) into lifecycle pods.
func (d *Decoder) Decode(body []byte) ([]lifecycle.Pod, error) {
	var l struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("decode /pods: %w", err)
	}
	if l.Kind != "PodList" {
		return nil, fmt.Errorf("decode /pods: got kind %q, want PodList", l.Kind)
	}
	if d.prev == nil {
		d.seed = maphash.MakeSeed()
	}
	next := make(map[uint64]decodedItem, len(l.Items))
	out := make([]lifecycle.Pod, 0, len(l.Items))
	for i, raw := range l.Items {
		h := maphash.Bytes(d.seed, raw)
		if old, ok := d.prev[h]; ok && bytes.Equal(old.raw, raw) {
			next[h] = old
			out = append(out, old.pod)
			continue
		}
		var p pod
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decode /pods: item %d: %w", i, err)
		}
		lp := p.convert()
		next[h] = decodedItem{raw: raw, pod: lp}
		out = append(out, lp)
	}
	d.prev = next
	return out, nil
}

// convert turns a decoded pod into the lifecycle input type.
func (p *pod) convert() lifecycle.Pod {
	lp := lifecycle.Pod{UID: p.Metadata.UID, Namespace: p.Metadata.Namespace, Name: p.Metadata.Name,
		Phase: lifecycle.Phase(p.Status.Phase), Reason: p.Status.Reason, Message: p.Status.Message,
		RestartPolicy: p.Spec.RestartPolicy, Created: tm(p.Metadata.CreationTimestamp),
		Started: tm(p.Status.StartTime), Deleting: tm(p.Metadata.DeletionTimestamp),
		StatusFrom: statusFrom(p.Metadata.Annotations.ConfigSource)}
	for _, c := range p.Status.Conditions {
		lp.Conditions = append(lp.Conditions, lifecycle.Condition{Type: c.Type, Status: c.Status, Reason: c.Reason,
			Message: c.Message, LastTransitionTime: tm(c.LastTransitionTime), LastProbeTime: tm(c.LastProbeTime)})
	}
	sidecar, spec := map[string]bool{}, map[string]*specContainer{}
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if c.RestartPolicy == "Always" {
			sidecar[c.Name] = true
		}
		spec[c.Name] = c
	}
	for i := range p.Spec.Containers {
		spec[p.Spec.Containers[i].Name] = &p.Spec.Containers[i]
	}
	n := len(p.Status.InitContainerStatuses) + len(p.Status.ContainerStatuses) + len(p.Status.EphemeralContainerStatuses)
	lp.Containers = make([]lifecycle.ContainerStatus, 0, n)
	add := func(cs []containerStatus, kind func(string) lifecycle.ContainerKind) {
		for i := range cs {
			c := &cs[i]
			st := lifecycle.ContainerStatus{Name: c.Name, Kind: kind(c.Name),
				State: c.State.convert(), LastState: c.LastTerminationState.convert(), Ready: c.Ready, Started: c.Started,
				RestartCount: c.RestartCount, Image: c.Image, ImageID: c.ImageID, ContainerID: c.ContainerID}
			if sc := spec[c.Name]; sc != nil {
				st.ReadinessProbe, st.RestartPolicy, st.RestartRules = sc.ReadinessProbe != nil, sc.RestartPolicy, sc.restartRules()
			}
			lp.Containers = append(lp.Containers, st)
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
	return lp
}

// statusFrom tells where /pods got a pod's status from its config source:
// the kubelet's status manager writes it back into the pod manager only for
// static pods (pkg/kubelet/kubelet_getters.go GetPods; pkg/kubelet/config/config.go
// checkAndUpdatePod keeps the API server's status for the others).
func statusFrom(configSource string) string {
	if configSource == "api" {
		return lifecycle.FromKubeletCache
	}
	return lifecycle.FromKubelet
}
