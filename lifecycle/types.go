// Package lifecycle is podlife's pure domain model: it joins what the kubelet
// says about a node's pods with what the CRI runtime says about its
// containers, classifies every pod into a lifecycle stage, finds where the two
// views disagree, and diffs successive snapshots into transitions.
//
// The package does no I/O and reads no clock: every time it needs is passed in.
// The model is described in shared/seed/lifecycle-reference.md.
package lifecycle

import "time"

// Phase is a pod's status.phase as the kubelet reports it.
type Phase string

// Pod phases.
const (
	PhasePending   Phase = "Pending"
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseUnknown   Phase = "Unknown"
)

// Pod condition types the kubelet and scheduler set.
const (
	CondPodScheduled              = "PodScheduled"
	CondInitialized               = "Initialized"
	CondContainersReady           = "ContainersReady"
	CondReady                     = "Ready"
	CondPodReadyToStartContainers = "PodReadyToStartContainers"
	CondDisruptionTarget          = "DisruptionTarget"
	CondAllContainersRestarting   = "AllContainersRestarting"
)

// Condition is one entry of a pod's status.conditions.
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"` // True, False or Unknown
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime,omitzero"`
	LastProbeTime      time.Time `json:"lastProbeTime,omitzero"`
}

// ContainerKind tells which list of the pod spec a container comes from.
type ContainerKind string

// Container kinds. A sidecar is an init container with restartPolicy Always.
const (
	KindInit      ContainerKind = "init"
	KindSidecar   ContainerKind = "sidecar"
	KindRegular   ContainerKind = "regular"
	KindEphemeral ContainerKind = "ephemeral"
)

// StateKind is which of a container state's variants is set.
type StateKind string

// Container state variants, as in the Kubernetes API. StateNone means the
// kubelet reported no state at all (for example an empty lastState).
const (
	StateNone       StateKind = ""
	StateWaiting    StateKind = "Waiting"
	StateRunning    StateKind = "Running"
	StateTerminated StateKind = "Terminated"
	StateUnknown    StateKind = "Unknown"
)

// ContainerState is a flattened Kubernetes ContainerState: one of Waiting,
// Running or Terminated with the fields that variant carries.
type ContainerState struct {
	Kind        StateKind `json:"state,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Message     string    `json:"message,omitempty"`
	ExitCode    int32     `json:"exitCode"`
	Signal      int32     `json:"signal,omitempty"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
	ContainerID string    `json:"containerID,omitempty"`
}

// ContainerStatus is what the kubelet says about one container of a pod.
type ContainerStatus struct {
	Name         string         `json:"name"`
	Kind         ContainerKind  `json:"kind"`
	State        ContainerState `json:"state"`
	LastState    ContainerState `json:"lastState"`
	Ready        bool           `json:"ready"`
	Started      *bool          `json:"started,omitempty"`
	RestartCount int32          `json:"restartCount"`
	Image        string         `json:"image,omitempty"`
	ImageID      string         `json:"imageID,omitempty"`
	ContainerID  string         `json:"containerID,omitempty"` // "<runtime>://<id>"
	// ReadinessProbe is whether the container's spec has a readiness probe:
	// without one the kubelet calls a running container ready.
	ReadinessProbe bool `json:"readinessProbe,omitempty"`
	// RestartPolicy is the container's own spec.restartPolicy ("" when it
	// follows the pod's; "Always" for sidecars), and RestartRules its
	// restartPolicyRules (ContainerRestartRules), encoded as
	// "ACTION:OPERATOR:CODE,CODE;..." in spec order so that the struct
	// stays comparable.
	RestartPolicy string `json:"restartPolicy,omitempty"`
	RestartRules  string `json:"restartRules,omitempty"`
}

// Pod is what the kubelet's /pods endpoint says about one pod, reduced to
// what the lifecycle model needs.
type Pod struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// StatusFrom is where /pods got this pod's status: FromKubelet (the
	// status manager's live status: static pods) or FromKubeletCache (the API
	// server's copy as last delivered to the kubelet: every API-managed pod).
	StatusFrom string `json:"statusFrom,omitempty"`
	// Phase is status.phase.
	Phase Phase `json:"phase"`
	// Reason and Message are the pod-level status reason (e.g. Evicted).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// RestartPolicy is spec.restartPolicy: Always, OnFailure or Never.
	RestartPolicy string `json:"restartPolicy,omitempty"`
	// Created is metadata.creationTimestamp; Started is status.startTime.
	Created time.Time `json:"created,omitzero"`
	Started time.Time `json:"started,omitzero"`
	// Deleting is metadata.deletionTimestamp (zero when not being deleted).
	Deleting   time.Time   `json:"deleting,omitzero"`
	Conditions []Condition `json:"conditions,omitempty"`
	// Containers holds init (incl. sidecar), regular and ephemeral container
	// statuses, init containers first in spec order, each with its Kind set.
	Containers []ContainerStatus `json:"containers,omitempty"`
	// Revision, when not 0, names this record of the pod: its source gives
	// a pod that changed a new one, so that the same UID and Revision
	// promise the same pod and a Correlator does not compare it again. It
	// is not part of the pod (neither compared nor shown).
	Revision uint64 `json:"-"`
}

// RuntimeState is a CRI container state.
type RuntimeState string

// CRI container states (the CRI enum names without the CONTAINER_ prefix).
const (
	RuntimeCreated RuntimeState = "CREATED"
	RuntimeRunning RuntimeState = "RUNNING"
	RuntimeExited  RuntimeState = "EXITED"
	RuntimeUnknown RuntimeState = "UNKNOWN"
)

// SandboxState is a CRI pod sandbox state.
type SandboxState string

// CRI sandbox states (the CRI enum names without the SANDBOX_ prefix).
const (
	SandboxReady    SandboxState = "READY"
	SandboxNotReady SandboxState = "NOTREADY"
)

// Well-known CRI labels the kubelet puts on sandboxes and containers.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
)

// Sandbox is what the CRI runtime says about one pod sandbox.
type Sandbox struct {
	ID           string            `json:"id"`
	PodUID       string            `json:"podUID"`
	PodName      string            `json:"podName"`
	PodNamespace string            `json:"podNamespace"`
	Attempt      uint32            `json:"attempt"`
	State        SandboxState      `json:"state"`
	CreatedAt    time.Time         `json:"createdAt,omitzero"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// Container is what the CRI runtime says about one container.
type Container struct {
	ID           string            `json:"id"`
	SandboxID    string            `json:"sandboxID,omitempty"`
	PodUID       string            `json:"podUID"`
	PodName      string            `json:"podName"`
	PodNamespace string            `json:"podNamespace"`
	Name         string            `json:"name"`
	Attempt      uint32            `json:"attempt"`
	State        RuntimeState      `json:"state"`
	CreatedAt    time.Time         `json:"createdAt,omitzero"`
	StartedAt    time.Time         `json:"startedAt,omitzero"`
	FinishedAt   time.Time         `json:"finishedAt,omitzero"`
	ExitCode     int32             `json:"exitCode"`
	Reason       string            `json:"reason,omitempty"`
	Message      string            `json:"message,omitempty"`
	Image        string            `json:"image,omitempty"`
	ImageRef     string            `json:"imageRef,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	// LogPath is the attempt's log file as the runtime names it (CRI
	// ContainerStatus.log_path: the kubelet's
	// /var/log/pods/NAMESPACE_NAME_UID/CONTAINER/ATTEMPT.log).
	LogPath string `json:"logPath,omitempty"`
}

// Source names.
const (
	SourceRuntime   = "runtime"
	SourceKubelet   = "kubelet"
	SourceAPIServer = "apiserver"
	// SourceKubeletLink is the kubelet's own connection to the API server,
	// as podlife infers it: "down" while the kubelet is cut off.
	SourceKubeletLink = "kubelet-apiserver"
)

// SourceNames lists the sources in the order snapshots and metrics show them.
var SourceNames = []string{SourceRuntime, SourceKubelet, SourceAPIServer, SourceKubeletLink}

// SourceHealth is a source's health record, kept by the source and handed to
// Correlate as input.
type SourceHealth struct {
	// Configured is false for a source podlife was not asked to use (e.g. no
	// API server access); an unconfigured source is never a cause of Unknown.
	Configured bool `json:"configured"`
	// Up is true when the last call to the source succeeded.
	Up bool `json:"up"`
	// LastSuccess is when the source last answered; zero means never.
	LastSuccess time.Time `json:"lastSuccess,omitzero"`
	// LastError is the last failure as one line ("" when Up).
	LastError string `json:"lastError,omitempty"`
	// Latency is the duration of the last call.
	Latency time.Duration `json:"latencyNanos"`
	// TLS says in one line how podlife trusts the source's answers (the
	// kubelet: verified with the cluster CA or the pinned certificate, not
	// verified by explicit opt-in, or why verification failed); "" where
	// the source is local.
	TLS string `json:"tls,omitempty"`
	// Mode says how the source is read where it has more than one way (the
	// kubelet: "pods-api", its live status over the Pods API, or
	// "pods-http", /pods), and ModeReason why.
	Mode       string `json:"mode,omitempty"`
	ModeReason string `json:"modeReason,omitempty"`
	// FreshFor is how long a success stays trusted, for a source that is not
	// asked at a fixed short interval (the API server, heard through its
	// watches; the runtime while its events stream, relisted seldom); zero:
	// Input.StaleAfter.
	FreshFor time.Duration `json:"-"`
}

// Synced reports whether the source has answered at least once.
func (h SourceHealth) Synced() bool { return !h.LastSuccess.IsZero() }

// Input is everything Correlate needs: both local views of the node, their
// health, and the time of observation.
type Input struct {
	Node string
	// Now is when this input was observed.
	Now time.Time
	// Pods is the kubelet's last good /pods answer (may be stale when the
	// kubelet is down: see Kubelet). A source shares the records of pods
	// that did not change from one answer to the next: a record is not
	// modified once handed in.
	Pods []*Pod
	// PodsGeneration, when not 0, names the Pods answer: a source bumps it
	// whenever Pods changes, so that an equal non-zero generation promises
	// the same pods and a Correlator compares only the pods of a new one.
	PodsGeneration uint64
	// RuntimeGeneration is the same for Sandboxes and Containers: equal
	// non-zero values promise the same slices, records unchanged. A
	// non-zero value also promises that no record is ever modified once
	// handed in (a change is a new record, cri.State; Sandboxes' elements
	// included), so that a record seen before is not compared again.
	RuntimeGeneration uint64
	// PodsChanges and RuntimeChanges, where a source keeps them, name the
	// pods whose records changed from one generation to the next: a
	// Correlator looks at only those when nothing else changed (its
	// one-change path). A source that keeps RuntimeChanges lists
	// Containers grouped by pod in UID order (cri.State does).
	PodsChanges, RuntimeChanges ChangeLog
	Kubelet                     SourceHealth
	// Sandboxes and Containers are the runtime's last good listing.
	Sandboxes []Sandbox
	// Containers are records a source may share with every caller (a
	// change is a new record, cri.State): Correlate copies what it keeps.
	Containers []*Container
	Runtime    SourceHealth
	// RuntimeName is the runtime's name as its Version answer gives it
	// (containerd, cri-o): the kubelet writes a container's ID as
	// "<name>://<id>" (k8s.io/kubernetes pkg/kubelet/kuberuntime
	// helpers.go toKubeContainer, ContainerID{Type: m.runtimeName}, the
	// Version answer's RuntimeName; pkg/kubelet/container/runtime.go
	// ContainerID.String),
	// and so does a view derived from the runtime. "": the bare ID.
	RuntimeName string
	// APIServer is the health of the API server connection, when configured;
	// APIPods and APINode are its last known copies of this node's pods and
	// of the Node itself (nil when unknown). An APIPods slice is never
	// modified once handed in: the same slice is the same copies (the
	// Correlator's one-change path knows them by it).
	APIServer SourceHealth
	APIPods   []APIPod
	APINode   *APINode
	// StaleAfter is how old a source's last success may be before its data is
	// no longer trusted even if it has not failed yet. Zero means 10s.
	StaleAfter time.Duration
	// KubeletLink is what is known of the kubelet's own connection to the
	// API server (zero: nothing known, taken as connected).
	KubeletLink KubeletLink
	// MismatchGrace is how long the kubelet's copy may lag the runtime before
	// the difference is a mismatch. Zero means DefaultMismatchGrace.
	MismatchGrace time.Duration
	// Readiness is the kubelet prober's readiness by "<pod UID>/<container>"
	// (its /metrics/probes), read while the kubelet is cut off; nil when
	// not read.
	Readiness map[string]ProbeReadiness
}

// ProbeReadiness is a container's readiness as the kubelet's prober last
// found it.
type ProbeReadiness struct {
	Ready bool
	// At is when podlife saw the prober's result.
	At time.Time
}

// KubeletLink is the state of the kubelet's connection to the API server,
// as podlife infers it (from the kubelet's client metrics and its node Lease).
type KubeletLink struct {
	// CutOff is true when the kubelet cannot reach the API server: its /pods
	// status for API-managed pods is then frozen.
	CutOff bool `json:"cutOff"`
	// Since is when the cut was first seen (or when it healed).
	Since time.Time `json:"since,omitzero"`
	// Evidence says how it was seen, in one line.
	Evidence string `json:"evidence,omitempty"`
}

// APIPod is the API server's copy of a pod bound to this node: what central
// monitoring sees.
type APIPod struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Phase     Phase  `json:"phase"`
	// Ready is the Ready condition's status: True, False, Unknown or "".
	Ready string `json:"ready,omitempty"`
	// ReadyChanged is the Ready condition's lastTransitionTime.
	ReadyChanged time.Time `json:"readyChanged,omitzero"`
	// Restarts is the sum of its containers' restartCount (init containers
	// included).
	Restarts int32 `json:"restarts"`
	// MirrorOf is the config hash a mirror pod stands for (annotation
	// kubernetes.io/config.mirror): the UID of its static pod in /pods.
	MirrorOf string `json:"mirrorOf,omitempty"`
}

// APINode is the API server's copy of this node's Ready condition.
type APINode struct {
	Ready         string    `json:"ready"` // True, False or Unknown
	Reason        string    `json:"reason,omitempty"`
	Message       string    `json:"message,omitempty"`
	LastHeartbeat time.Time `json:"lastHeartbeat,omitzero"`
}
