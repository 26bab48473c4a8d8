package upstream

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podlife/podlife/lifecycle"
)

// TestAPIPodOf: the API server's copy reduced to what the model compares;
// restarts sum the init and regular containers' restartCount, as the
// kubelet's side of the comparison (lifecycle apiBehind) does.
func TestAPIPodOf(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC))
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: "u1", Namespace: "ns", Name: "p",
			Annotations: map[string]string{corev1.MirrorPodAnnotationKey: "hash"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
				{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: at},
			},
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", RestartCount: 1}},
			ContainerStatuses:     []corev1.ContainerStatus{{Name: "a", RestartCount: 2}, {Name: "b", RestartCount: 4}},
		},
	}
	want := lifecycle.APIPod{UID: "u1", Namespace: "ns", Name: "p", Phase: lifecycle.PhaseRunning,
		Ready: "False", ReadyChanged: at.Time, Restarts: 7, MirrorOf: "hash"}
	if got := APIPodOf(p); got != want {
		t.Fatalf("APIPodOf:\n got %+v\nwant %+v", got, want)
	}
}
