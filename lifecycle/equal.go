package lifecycle

import (
	"maps"
	"reflect"
	"slices"
)

// The equality functions below decide whether a pod's view can be reused
// (see Correlator). They may call equal values different (times in another
// location, say) — that only costs a rebuild — but never different values
// equal. TestEqualCoversEveryField fails when a field is added and not compared.

func podEqual(a, b *Pod) bool {
	return a.UID == b.UID && a.Namespace == b.Namespace && a.Name == b.Name && a.StatusFrom == b.StatusFrom && a.Phase == b.Phase &&
		a.Reason == b.Reason && a.Message == b.Message && a.RestartPolicy == b.RestartPolicy &&
		a.Created == b.Created && a.Started == b.Started && a.Deleting == b.Deleting &&
		slices.Equal(a.Conditions, b.Conditions) && slices.EqualFunc(a.Containers, b.Containers, statusEqual)
}

func statusEqual(a, b ContainerStatus) bool {
	as, bs := a.Started, b.Started
	a.Started, b.Started = nil, nil
	return a == b && (as == nil) == (bs == nil) && (as == nil || *as == *bs)
}

func containerEqual(a, b *Container) bool {
	return a.ID == b.ID && a.SandboxID == b.SandboxID && a.PodUID == b.PodUID && a.PodName == b.PodName &&
		a.PodNamespace == b.PodNamespace && a.Name == b.Name && a.Attempt == b.Attempt && a.State == b.State &&
		a.CreatedAt == b.CreatedAt && a.StartedAt == b.StartedAt && a.FinishedAt == b.FinishedAt &&
		a.ExitCode == b.ExitCode && a.Reason == b.Reason && a.Message == b.Message && a.Image == b.Image &&
		a.ImageRef == b.ImageRef && a.LogPath == b.LogPath && labelsEqual(a.Labels, b.Labels)
}

// labelsEqual compares label maps, at once when both are the same map (a
// source that keeps an unchanged container keeps its labels).
func labelsEqual(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() || maps.Equal(a, b)
}

func sandboxEqual(a, b *Sandbox) bool {
	return a.ID == b.ID && a.PodUID == b.PodUID && a.PodName == b.PodName && a.PodNamespace == b.PodNamespace &&
		a.Attempt == b.Attempt && a.State == b.State && a.CreatedAt == b.CreatedAt && labelsEqual(a.Labels, b.Labels)
}
