package testenv

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func client(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// The harness starts a real API server with working admin and agent
// identities, and can freeze, stop and restart it.
func TestStartAPIServer(t *testing.T) {
	a := StartAPIServer(t)
	ctx := context.Background()
	admin, agent := client(t, a.AdminKubeconfig), client(t, a.AgentKubeconfig)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "harness"}}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin: %v", err)
	}
	if _, err := agent.CoreV1().Secrets("harness").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("agent without RBAC: %v, want Forbidden", err)
	}
	a.Freeze()
	start := time.Now()
	if _, err := admin.CoreV1().Namespaces().Get(ctx, "harness", metav1.GetOptions{}); err == nil {
		t.Fatal("a frozen API server answered")
	}
	t.Logf("frozen API server: request failed after %s", time.Since(start).Round(time.Millisecond))
	a.Thaw()
	a.Stop()
	if _, err := admin.CoreV1().Namespaces().Get(ctx, "harness", metav1.GetOptions{}); err == nil {
		t.Fatal("a stopped API server answered")
	}
	a.Start()
	if _, err := admin.CoreV1().Namespaces().Get(ctx, "harness", metav1.GetOptions{}); err != nil {
		t.Fatalf("after restart (etcd kept the data): %v", err)
	}
}
