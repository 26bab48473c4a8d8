package lifecycle

import "time"

// Stage is podlife's lifecycle stage of a pod (the reference model's table).
type Stage string

// The lifecycle stages. Every pod is in exactly one.
const (
	StageInitializing Stage = "Initializing"
	StageStarting     Stage = "Starting"
	StageServing      Stage = "Serving"
	StageTerminated   Stage = "Terminated"
	// StageTerminating: the pod is being deleted and some of its containers
	// still run. It is transient: a pod stuck here gets StageStuck.
	StageTerminating Stage = "Terminating"
	StageFailing     Stage = "Failing"
	StageUnknown     Stage = "Unknown"
)

// Stages lists every stage, in lifecycle order (metrics export only a pod's
// current stage).
var Stages = []Stage{StageInitializing, StageStarting, StageServing, StageTerminating, StageTerminated, StageFailing, StageUnknown}

// Provenance: where a field of a view comes from.
const (
	// FromRuntime: the CRI runtime, live; for a pod's phase and conditions,
	// derived from the runtime's containers and the pod's spec.
	FromRuntime = "runtime"
	// FromKubelet: the kubelet's live status (static pods' status manager).
	FromKubelet = "kubelet"
	// FromKubeletCache: the API server's copy of the status that /pods serves
	// for API-managed pods; it lags, and freezes when the kubelet is cut off.
	FromKubeletCache = "kubelet-cache"
	// FromAPIServer: podlife's own watch of the API server.
	FromAPIServer = "apiserver"
	// FromProbes: the kubelet prober's results (its /metrics/probes), live.
	FromProbes = "kubelet-probes"
	// FromUnknown: nothing live says it (readiness while the kubelet is cut
	// off and its prober cannot be read).
	FromUnknown = "unknown"
)

// MismatchKind names a way the kubelet's and the runtime's views disagree.
type MismatchKind string

// Mismatch kinds.
const (
	// MismatchRunningButExited: the kubelet says running, the runtime says exited.
	MismatchRunningButExited MismatchKind = "kubelet-running-runtime-exited"
	// MismatchMissingInRuntime: the kubelet names a container ID the runtime does not have.
	MismatchMissingInRuntime MismatchKind = "container-missing-in-runtime"
	// MismatchOrphan: the runtime runs a container of a pod the kubelet does not know.
	MismatchOrphan MismatchKind = "orphan-container"
	// MismatchRestartCount: the kubelet's restart count and the runtime's attempt disagree.
	MismatchRestartCount MismatchKind = "restart-count-mismatch"
	// MismatchSandboxNotReady: the kubelet says Running but the pod sandbox is not ready.
	MismatchSandboxNotReady MismatchKind = "sandbox-not-ready"
	// MismatchZombie: the kubelet says a container terminated, yet the
	// runtime still runs that same container.
	MismatchZombie MismatchKind = "kubelet-exited-runtime-running"
	// MismatchAPIRunningButExited: the API server says Running, the runtime says every container exited.
	MismatchAPIRunningButExited MismatchKind = "apiserver-running-runtime-exited"
	// MismatchAPIStale: the API server says Failed/Unknown/not ready, yet containers run and the kubelet says otherwise.
	MismatchAPIStale MismatchKind = "apiserver-stale"
	// MismatchAPIBehindKubelet: the kubelet's own live status (its Pods API,
	// Kubernetes 1.37+, or a static pod's) differs from the API server's copy
	// for longer than the staleness allowance: the cluster's view is behind.
	MismatchAPIBehindKubelet MismatchKind = "apiserver-behind-kubelet"
)

// MismatchKinds lists every mismatch kind.
var MismatchKinds = []MismatchKind{MismatchRunningButExited, MismatchZombie, MismatchMissingInRuntime, MismatchOrphan,
	MismatchRestartCount, MismatchSandboxNotReady, MismatchAPIRunningButExited, MismatchAPIStale, MismatchAPIBehindKubelet}

// Mismatch is one typed finding of disagreement between the two views.
type Mismatch struct {
	Kind      MismatchKind `json:"kind"`
	Container string       `json:"container,omitempty"`
	Detail    string       `json:"detail"`
}

// ContainerView is one container with both views side by side: the kubelet's
// status flattened at the top level and the runtime's record under Runtime.
// When the kubelet does not know the container, the top level is filled from
// the runtime and Source says so.
type ContainerView struct {
	Name string        `json:"name"`
	Kind ContainerKind `json:"kind"`
	// Source is "kubelet" when the kubelet lists the container, "runtime"
	// when only the runtime knows it.
	Source string `json:"source"`
	// From is where the top-level state comes from: FromKubelet,
	// FromKubeletCache, or FromRuntime when the runtime is ahead of the
	// kubelet's copy and the state is derived from it.
	From         string    `json:"from"`
	State        StateKind `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	Message      string    `json:"message,omitempty"`
	ExitCode     *int32    `json:"exitCode,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	RestartCount int32     `json:"restartCount"`
	Ready        bool      `json:"ready"`
	// Started is the kubelet's started flag: the startup probe (if any)
	// passed. A sidecar counts as initialized once started.
	Started bool `json:"started"`
	// ReadyFrom is where Ready comes from when it is not the container's
	// state's source: FromProbes, or FromUnknown (Ready is then false).
	ReadyFrom   string          `json:"readyFrom,omitempty"`
	ContainerID string          `json:"containerID,omitempty"`
	Image       string          `json:"image,omitempty"`
	LastState   *ContainerState `json:"lastState,omitempty"`
	// Runtime is the CRI view of the container: the one the kubelet's
	// containerID names, or the runtime's newer attempt when the runtime is
	// ahead of the kubelet (nil when the runtime has none).
	Runtime *Container `json:"runtime,omitempty"`
}

// PodView is one pod as podlife sees it: phase, conditions and stage from the
// joined views, every container with both views, and the mismatches found.
type PodView struct {
	Namespace    string `json:"namespace"`
	Name         string `json:"name"`
	UID          string `json:"uid"`
	Phase        Phase  `json:"phase,omitempty"`
	Stage        Stage  `json:"stage"`
	StageReason  string `json:"stageReason"`
	UnknownCause Cause  `json:"unknownCause,omitempty"`
	// UnknownSince is when the cause began, where known.
	UnknownSince time.Time `json:"unknownSince,omitzero"`
	// StatusFrom is where Phase and Conditions come from: FromKubelet,
	// FromKubeletCache, or FromRuntime when derived from the runtime because
	// the kubelet's copy lags it or is frozen.
	StatusFrom string `json:"statusFrom"`
	// KubeletCache is the kubelet's copy of the status, kept beside a
	// derived one (nil when the view is not derived).
	KubeletCache *CachedStatus `json:"kubeletCache,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Terminating  bool          `json:"terminating,omitempty"`
	Created      time.Time     `json:"created,omitzero"`
	Started      time.Time     `json:"started,omitzero"`
	Conditions   []Condition   `json:"conditions"`
	// InKubelet and InRuntime tell which views know the pod.
	InKubelet bool     `json:"inKubelet"`
	InRuntime bool     `json:"inRuntime"`
	Sandbox   *Sandbox `json:"sandbox,omitempty"`
	// APIServer is the API server's copy of the pod (nil when unknown).
	APIServer  *APIPod         `json:"apiserver,omitempty"`
	Containers []ContainerView `json:"containers"`
	Mismatches []Mismatch      `json:"mismatches"`
}

// CachedStatus is the kubelet's copy of a pod's status when podlife shows a
// status derived from the runtime instead.
type CachedStatus struct {
	Phase    Phase  `json:"phase"`
	Ready    string `json:"ready,omitempty"`
	Restarts int32  `json:"restarts"`
	// LagsSince is the runtime's first change the copy does not show yet.
	LagsSince time.Time `json:"lagsSince,omitzero"`
}

// Key is the pod's "namespace/name".
func (p *PodView) Key() string { return p.Namespace + "/" + p.Name }

// Snapshot is the joined truth of a node at one moment.
type Snapshot struct {
	Node string    `json:"node"`
	At   time.Time `json:"generatedAt"`
	// Sources is the health of each source, keyed by SourceRuntime etc.
	Sources map[string]SourceHealth `json:"sources"`
	// Pods are sorted by namespace, then name, then UID. A view is never
	// modified once in a snapshot: a Correlator hands the same view (the
	// same pointer) to the next snapshot while its pod did not change. The
	// slice is the Correlator's too (its next snapshot starts from it):
	// read it, never write it.
	Pods []*PodView `json:"pods"`
}

// TransitionKind names what changed between two snapshots.
type TransitionKind string

// Transition kinds.
const (
	TransitionPodAdded           TransitionKind = "PodAdded"
	TransitionPodRemoved         TransitionKind = "PodRemoved"
	TransitionStageChanged       TransitionKind = "StageChanged"
	TransitionContainerState     TransitionKind = "ContainerStateChanged"
	TransitionContainerRestarted TransitionKind = "ContainerRestarted"
	TransitionMismatchAppeared   TransitionKind = "MismatchAppeared"
	TransitionMismatchCleared    TransitionKind = "MismatchCleared"
	TransitionSourceDown         TransitionKind = "SourceDown"
	TransitionSourceUp           TransitionKind = "SourceUp"
	// TransitionStageStuck: a pod has stayed in a transient stage
	// (Initializing, Starting, Failing, Unknown) longer than a threshold.
	TransitionStageStuck TransitionKind = "StageStuck"
)

// TransitionKinds lists every transition kind.
var TransitionKinds = []TransitionKind{TransitionPodAdded, TransitionPodRemoved, TransitionStageChanged,
	TransitionContainerState, TransitionContainerRestarted, TransitionMismatchAppeared,
	TransitionMismatchCleared, TransitionSourceDown, TransitionSourceUp, TransitionStageStuck}

// Transition is one change between two successive snapshots.
type Transition struct {
	Kind      TransitionKind `json:"kind"`
	Namespace string         `json:"namespace,omitempty"`
	Pod       string         `json:"pod,omitempty"`
	UID       string         `json:"uid,omitempty"`
	Container string         `json:"container,omitempty"`
	// Source is the view the change was seen in: kubelet, runtime or apiserver.
	Source string `json:"source,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
	// ExitCode is set for restarts and terminations.
	ExitCode *int32 `json:"exitCode,omitempty"`
	Detail   string `json:"detail,omitempty"`
	// ObservedAt is when podlife saw the change (the newer snapshot's time).
	ObservedAt time.Time `json:"observedAt"`
	// HappenedAt is when the sources say it happened (zero when they do not say).
	HappenedAt time.Time `json:"happenedAt,omitzero"`
}

// SameView reports whether two views are the same one: equal fields, and
// slices and pointers to the same memory. A Correlator hands out the same
// view again for a pod whose inputs did not change, and views are never
// modified once made, so callers may keep what they derived from one (an
// encoding, say) while SameView holds. TestSameViewCoversEveryField fails
// when PodView gains a field.
func SameView(a, b *PodView) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.UID == b.UID && a.Phase == b.Phase &&
		a.Stage == b.Stage && a.StageReason == b.StageReason && a.UnknownCause == b.UnknownCause &&
		a.UnknownSince == b.UnknownSince && a.StatusFrom == b.StatusFrom && a.KubeletCache == b.KubeletCache &&
		a.Reason == b.Reason && a.Terminating == b.Terminating && a.Created == b.Created && a.Started == b.Started &&
		a.InKubelet == b.InKubelet && a.InRuntime == b.InRuntime && a.Sandbox == b.Sandbox && a.APIServer == b.APIServer &&
		sameArray(a.Conditions, b.Conditions) && sameArray(a.Containers, b.Containers) && sameArray(a.Mismatches, b.Mismatches)
}
