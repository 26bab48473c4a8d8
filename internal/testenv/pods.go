package testenv

import (
	"embed"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// podFiles are the pod manifests tests share, each with the placeholders
// NAME, NAMESPACE and IMG.
//
//go:embed testdata/pods/*.yaml
var podFiles embed.FS

// PodManifest returns the shared manifest testdata/pods/<kind>.yaml (serving,
// crashloop, ghost, completed, sleeper, initfail, oom, notready, sidecar,
// badimage) for a pod named name in namespace ns
// whose containers run BusyboxImage: a static pod for Kubelet.AddStaticPod.
func PodManifest(t testing.TB, kind, name, ns string) string {
	t.Helper()
	b, err := podFiles.ReadFile("testdata/pods/" + kind + ".yaml")
	if err != nil {
		t.Fatalf("shared pod manifest: %v", err)
	}
	// NAMESPACE before NAME: at one position the first match in argument
	// order wins.
	return strings.NewReplacer("NAMESPACE", ns, "NAME", name, "IMG", BusyboxImage).Replace(string(b))
}

// Pod is PodManifest decoded, for a pod created through the API server.
func Pod(t testing.TB, kind, name, ns string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{}
	if err := yaml.UnmarshalStrict([]byte(PodManifest(t, kind, name, ns)), p); err != nil {
		t.Fatalf("shared pod manifest %s: %v", kind, err)
	}
	return p
}
