package kubelet

import (
	"bytes"
	"fmt"
	json "github.com/goccy/go-json"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
		Phase                      string            `json:"phase"`
		Reason                     string            `json:"reason"`
		Message                    string            `json:"message"`
		StartTime                  *time.Time        `json:"startTime"`
		Conditions                 []condition       `json:"conditions"`
		InitContainerStatuses      []containerStatus `json:"initContainerStatuses"`
		ContainerStatuses          []containerStatus `json:"containerStatuses"`
		EphemeralContainerStatuses []containerStatus `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

// specContainer is the part of a container's spec the model needs.
type specContainer struct {
	Name               string        `json:"name"`
	RestartPolicy      string        `json:"restartPolicy"`
	ReadinessProbe     *struct{}     `json:"readinessProbe"`
	RestartPolicyRules []restartRule `json:"restartPolicyRules"`
}

type condition struct {
	Type               string     `json:"type"`
	Status             string     `json:"status"`
	Reason             string     `json:"reason"`
	Message            string     `json:"message"`
	LastTransitionTime *time.Time `json:"lastTransitionTime"`
	LastProbeTime      *time.Time `json:"lastProbeTime"`
}

type restartRule struct {
	Action    string     `json:"action"`
	ExitCodes *exitCodes `json:"exitCodes"`
}

type exitCodes struct {
	Operator string  `json:"operator"`
	Values   []int32 `json:"values"`
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
	Waiting    *waiting    `json:"waiting"`
	Running    *running    `json:"running"`
	Terminated *terminated `json:"terminated"`
}

type waiting struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type running struct {
	StartedAt *time.Time `json:"startedAt"`
}

type terminated struct {
	ExitCode    int32      `json:"exitCode"`
	Signal      int32      `json:"signal"`
	Reason      string     `json:"reason"`
	Message     string     `json:"message"`
	StartedAt   *time.Time `json:"startedAt"`
	FinishedAt  *time.Time `json:"finishedAt"`
	ContainerID string     `json:"containerID"`
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
func Decode(body []byte) ([]*lifecycle.Pod, error) {
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
	pod *lifecycle.Pod // never modified once decoded
}

// Decode decodes a /pods answer (a v1.PodList) into lifecycle pods.
func (d *Decoder) Decode(body []byte) ([]*lifecycle.Pod, error) {
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
	out := make([]*lifecycle.Pod, 0, len(l.Items))
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
		next[h] = decodedItem{raw: raw, pod: &lp}
		out = append(out, &lp)
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

// PodOf turns a typed v1.Pod (the Pods API's protobuf, decoded by k8s.io/api)
// into the lifecycle input type through the same conversion as /pods, with
// its status from statusFrom (lifecycle.FromKubelet for the Pods API: the
// status manager's, live, for every pod).
func PodOf(p *corev1.Pod, statusFrom string) lifecycle.Pod {
	var w pod
	w.Metadata.Name, w.Metadata.Namespace, w.Metadata.UID = p.Name, p.Namespace, string(p.UID)
	w.Metadata.CreationTimestamp, w.Metadata.DeletionTimestamp = timeOf(&p.CreationTimestamp), timeOf(p.DeletionTimestamp)
	w.Spec.RestartPolicy = string(p.Spec.RestartPolicy)
	w.Spec.InitContainers, w.Spec.Containers = specOf(p.Spec.InitContainers), specOf(p.Spec.Containers)
	st := &p.Status
	w.Status.Phase, w.Status.Reason, w.Status.Message, w.Status.StartTime = string(st.Phase), st.Reason, st.Message, timeOf(st.StartTime)
	for _, c := range st.Conditions {
		w.Status.Conditions = append(w.Status.Conditions, condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason,
			Message: c.Message, LastTransitionTime: timeOf(&c.LastTransitionTime), LastProbeTime: timeOf(&c.LastProbeTime)})
	}
	w.Status.InitContainerStatuses = statusesOf(st.InitContainerStatuses)
	w.Status.ContainerStatuses = statusesOf(st.ContainerStatuses)
	w.Status.EphemeralContainerStatuses = statusesOf(st.EphemeralContainerStatuses)
	lp := w.convert()
	lp.StatusFrom = statusFrom
	return lp
}

func timeOf(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	return &t.Time
}

func specOf(cs []corev1.Container) []specContainer {
	out := make([]specContainer, len(cs))
	for i, c := range cs {
		out[i].Name = c.Name
		if c.RestartPolicy != nil {
			out[i].RestartPolicy = string(*c.RestartPolicy)
		}
		if c.ReadinessProbe != nil {
			out[i].ReadinessProbe = &struct{}{}
		}
		for _, r := range c.RestartPolicyRules {
			var rule restartRule
			rule.Action = string(r.Action)
			if r.ExitCodes != nil {
				rule.ExitCodes = &exitCodes{Operator: string(r.ExitCodes.Operator), Values: r.ExitCodes.Values}
			}
			out[i].RestartPolicyRules = append(out[i].RestartPolicyRules, rule)
		}
	}
	return out
}

func statusesOf(cs []corev1.ContainerStatus) []containerStatus {
	out := make([]containerStatus, len(cs))
	for i, c := range cs {
		out[i] = containerStatus{Name: c.Name, State: stateOf(c.State), LastTerminationState: stateOf(c.LastTerminationState),
			Ready: c.Ready, Started: c.Started, RestartCount: c.RestartCount, Image: c.Image, ImageID: c.ImageID, ContainerID: c.ContainerID}
	}
	return out
}

func stateOf(s corev1.ContainerState) containerState {
	var w containerState
	if t := s.Terminated; t != nil {
		w.Terminated = &terminated{ExitCode: t.ExitCode, Signal: t.Signal, Reason: t.Reason, Message: t.Message,
			StartedAt: timeOf(&t.StartedAt), FinishedAt: timeOf(&t.FinishedAt), ContainerID: t.ContainerID}
	}
	if r := s.Running; r != nil {
		w.Running = &running{StartedAt: timeOf(&r.StartedAt)}
	}
	if wt := s.Waiting; wt != nil {
		w.Waiting = &waiting{Reason: wt.Reason, Message: wt.Message}
	}
	return w
}
