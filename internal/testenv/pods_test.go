package testenv

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Every shared manifest decodes strictly into a pod with the name, namespace
// and image asked for, and no placeholder left.
func TestPodManifests(t *testing.T) {
	files, err := fs.Glob(podFiles, "testdata/pods/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shared pod manifests: %v", err)
	}
	for _, f := range files {
		kind := strings.TrimSuffix(strings.TrimPrefix(f, "testdata/pods/"), ".yaml")
		m := PodManifest(t, kind, "a-name", "a-namespace")
		if strings.Contains(m, "NAME") || strings.Contains(m, "IMG") {
			t.Errorf("%s: a placeholder is left:\n%s", kind, m)
		}
		p := Pod(t, kind, "a-name", "a-namespace")
		if p.Name != "a-name" || p.Namespace != "a-namespace" || len(p.Spec.Containers) != 1 || !p.Spec.HostNetwork {
			t.Errorf("%s: pod %s/%s, %d containers, hostNetwork %v", kind, p.Namespace, p.Name, len(p.Spec.Containers), p.Spec.HostNetwork)
		}
		// ghost and badimage name images no runtime can have.
		if img := p.Spec.Containers[0].Image; kind != "ghost" && kind != "badimage" && img != BusyboxImage {
			t.Errorf("%s: image %q, want %q", kind, img, BusyboxImage)
		}
	}
}

// The shared crash loop is the pod the alert test built field by field.
func TestCrashLoopPod(t *testing.T) {
	want := corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "app", Image: BusyboxImage,
		ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", "sleep 1; echo last words before exit 7; exit 7"}}}}
	p := Pod(t, "crashloop", "crashloop", "alerts")
	if !reflect.DeepEqual(p.Spec, want) || !reflect.DeepEqual(p.ObjectMeta, metav1.ObjectMeta{Name: "crashloop", Namespace: "alerts"}) {
		t.Errorf("crashloop pod %s/%s, spec %+v\nwant spec %+v", p.Namespace, p.Name, p.Spec.Containers, want.Containers)
	}
}
