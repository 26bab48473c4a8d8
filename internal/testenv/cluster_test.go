package testenv

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// busyboxPod is a host-network pod template running command on BusyboxImage.
func busyboxPod(labels map[string]string, restart corev1.RestartPolicy, command ...string) corev1.PodTemplateSpec {
	zero := int64(0)
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{HostNetwork: true, RestartPolicy: restart, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{Name: "app", Image: BusyboxImage, ImagePullPolicy: corev1.PullNever, Command: command}}},
	}
}

// kubeletPods reads the kubelet's /pods with token over HTTPS, pinning its
// serving certificate.
func kubeletPods(c *Cluster, hc *http.Client, token string) (*corev1.PodList, error) {
	req, _ := http.NewRequest("GET", c.KubeletURL+"/pods", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("kubelet /pods: %s: %s", resp.Status, b)
	}
	var l corev1.PodList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("kubelet /pods: %w", err)
	}
	return &l, nil
}

// podRunning reports whether a pod in ns matching selector is bound and Running.
func podRunning(ctx context.Context, cs kubernetes.Interface, ns, selector string) (bool, string) {
	l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return false, err.Error()
	}
	for _, p := range l.Items {
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
			return true, ""
		}
	}
	return false, fmt.Sprintf("%d pods: %v", len(l.Items), phases(l.Items))
}

func phases(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name+"="+string(p.Status.Phase))
	}
	return out
}

// The harness runs a real one-node cluster: workloads reach Running/Complete
// through the real controllers, scheduler and kubelet; cutting the kubelet's
// link turns the Node Unknown while the kubelet keeps answering, and healing
// it turns the Node Ready again.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real cluster")
	}
	grace := 20 * time.Second
	c := StartCluster(t, ClusterOptions{NodeName: "podlife-cluster", NodeMonitorGracePeriod: grace})
	cs, ctx := c.Client(t), context.Background()
	c.GrantKubeletAccess(t, AgentUser)
	c.CreateNamespace(t, "work")

	one := int32(1)
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "sleeper"}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sleeper"}},
		Template: busyboxPod(map[string]string{"app": "sleeper"}, corev1.RestartPolicyAlways, "sleep", "3600")}}
	if _, err := cs.AppsV1().Deployments("work").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	zero := int32(0)
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "once"}, Spec: batchv1.JobSpec{BackoffLimit: &zero,
		Template: busyboxPod(nil, corev1.RestartPolicyNever, "sh", "-c", "exit 0")}}
	if _, err := cs.BatchV1().Jobs("work").Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create job: %v", err)
	}
	tmpl := busyboxPod(map[string]string{"app": "bare"}, corev1.RestartPolicyAlways, "sleep", "3600")
	bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Labels: tmpl.Labels}, Spec: tmpl.Spec}
	if _, err := cs.CoreV1().Pods("work").Create(ctx, bare, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}

	took := EventuallyState(t, "deployment pod Running", 3*time.Minute, func() (bool, any) {
		d, err := cs.AppsV1().Deployments("work").Get(ctx, "sleeper", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if d.Status.AvailableReplicas != 1 {
			return false, fmt.Sprintf("available %d", d.Status.AvailableReplicas)
		}
		return podRunning(ctx, cs, "work", "app=sleeper")
	})
	t.Logf("deployment available after %s", took.Round(time.Millisecond))
	EventuallyState(t, "bare pod Running", time.Minute, func() (bool, any) { return podRunning(ctx, cs, "work", "app=bare") })
	EventuallyState(t, "job Complete", 2*time.Minute, func() (bool, any) {
		j, err := cs.BatchV1().Jobs("work").Get(ctx, "once", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, cond := range j.Status.Conditions {
			if cond.Type == batchv1.JobComplete && cond.Status == corev1.ConditionTrue {
				return j.Status.Succeeded == 1, fmt.Sprintf("succeeded %d", j.Status.Succeeded)
			}
		}
		return false, fmt.Sprintf("conditions %v", j.Status.Conditions)
	})

	// The agent's token reads the kubelet (pinned certificate); this also
	// fills the kubelet's webhook caches, which let it keep answering
	// during the cut (authentication 2m, authorization 5m by default).
	hc := c.Kubelet.HTTPClient(t)
	want := map[string]bool{"bare": false}
	EventuallyState(t, "kubelet /pods lists the pods", 30*time.Second, func() (bool, any) {
		l, err := kubeletPods(c, hc, AgentToken)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range l.Items {
			if _, ok := want[p.Name]; ok {
				want[p.Name] = true
			}
		}
		return want["bare"] && len(l.Items) >= 3, fmt.Sprintf("%d pods: %v", len(l.Items), phases(l.Items))
	})
	if l, err := kubeletPods(c, hc, "not-a-token"); err == nil {
		t.Fatalf("kubelet answered a bad token with %d pods", len(l.Items))
	}
	if cond, err := c.NodeReadyCondition(ctx, cs); err != nil || cond.Status != corev1.ConditionTrue {
		t.Fatalf("node before the cut: %+v, %v", cond, err)
	}

	// Partition the kubelet from the API server.
	c.KubeletLink.Cut()
	cutAt := time.Now()
	cond := c.WaitNodeReadyStatus(t, corev1.ConditionUnknown, grace+90*time.Second)
	t.Logf("node Ready=Unknown %s after the cut (grace %s): %s: %s", time.Since(cutAt).Round(time.Millisecond), grace, cond.Reason, cond.Message)
	if cond.Reason != "NodeStatusUnknown" {
		t.Fatalf("Ready condition reason %q, want NodeStatusUnknown", cond.Reason)
	}
	l, err := kubeletPods(c, hc, AgentToken)
	if err != nil {
		t.Fatalf("kubelet /pods during the cut: %v", err)
	}
	t.Logf("kubelet /pods during the cut: %d pods", len(l.Items))

	c.KubeletLink.Heal()
	healAt := time.Now()
	c.WaitNodeReadyStatus(t, corev1.ConditionTrue, 2*time.Minute)
	t.Logf("node Ready=True %s after the heal", time.Since(healAt).Round(time.Millisecond))
	if _, err := kubeletPods(c, hc, AgentToken); err != nil {
		t.Fatalf("kubelet /pods after the heal: %v", err)
	}
}

// A cut link hangs open connections and holds new ones; a healed link
// closes them and forwards again.
func TestLinkCutAndHeal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real API server")
	}
	a := StartAPIServer(t)
	link := a.NewLink(t)
	hc := func() *http.Client {
		pool, err := certPool(a.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}()
	get := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", link.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	if err := get(10 * time.Second); err != nil {
		t.Fatalf("through the link: %v", err)
	}
	link.Cut()
	// The kept-alive connection hangs: the request times out, it is not refused.
	if err := get(2 * time.Second); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cut link, open connection: %v, want a timeout", err)
	}
	hc.CloseIdleConnections()
	if err := get(2 * time.Second); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cut link, new connection: %v, want a timeout", err)
	}
	link.Heal()
	if err := get(10 * time.Second); err != nil {
		t.Fatalf("healed link: %v", err)
	}
}
