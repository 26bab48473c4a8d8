package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podlife/podlife/internal/testenv"
	"github.com/podlife/podlife/lifecycle"
)

// TestKubeletAuthFaults: the kubelet rows that need a kubelet with webhook
// authentication and authorization, in the one-node cluster. The agent's
// token file is rotated (it is re-read at every change) to a token the API
// server does not know (401), to a service account without RBAC (403
// naming nodes/pods, until it is granted), and to one with nodes/pods only
// (its /metrics 403 names nodes/metrics).
func TestKubeletAuthFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("real components (a one-node cluster): not in -short")
	}
	bin := buildPodlife(t)
	// A denied review is cached by the kubelet for 30 s by default: 1 s
	// here, so a grant is seen at once.
	c := testenv.StartCluster(t, testenv.ClusterOptions{KubeletArgs: []string{"--authorization-webhook-cache-unauthorized-ttl=1s"}})
	admin, ctx := c.Client(t), context.Background()
	if err := testenv.ApplyRBAC(ctx, admin, testenv.AgentUser); err != nil {
		t.Fatal(err)
	}
	const ns = "faults"
	c.CreateNamespace(t, ns)
	saToken := func(name string) string {
		t.Helper()
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	bind := func(sa, role string) {
		t.Helper()
		b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "faults-" + sa + "-" + role},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}}
		if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	noPods, podsOnly := saToken("no-pods"), saToken("pods-only")
	if _, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "faults-pods-only"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/pods"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bind("pods-only", "faults-pods-only")
	addFaultPods(t, c.Kubelet)

	token := filepath.Join(t.TempDir(), "token")
	writeFile(t, token, testenv.AgentToken)
	ag := startFaultAgent(t, bin, "--node-name", c.NodeName, "--cri-endpoint", c.Containerd.Endpoint, "--upstream", "off",
		"--kubelet-url", c.KubeletURL, "--kubelet-token-file", token,
		"--kubelet-ca-file", c.API.CAFile, "--kubelet-serving-cert-file", c.KubeletServingCertFile)
	ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
	testenv.Eventually(t, "the static pods seen", 120*time.Second, func() bool {
		r, _ := ag.pods()
		return len(r.Pods) >= 2
	})
	// rotate rewrites the token file as the kubelet's projected volume does
	// (a new file moved into place).
	rotate := func(tok string) {
		t.Helper()
		writeFile(t, token+".new", tok)
		if err := os.Rename(token+".new", token); err != nil {
			t.Fatal(err)
		}
	}
	linkUp := func() bool {
		r, _ := ag.pods()
		return r.Sources[lifecycle.SourceKubeletLink].Up
	}

	t.Run("401: a rotated token the API server does not know", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		rotate("not-a-token-anyone-issued")
		ag.waitDown(lifecycle.SourceKubelet, 30*time.Second, "/pods: 401 Unauthorized: the token was rejected (check kubelet-token-file "+token+")")
		if !linkUp() {
			t.Errorf("a rotated token's 401 was taken for the kubelet's link to the API server being cut")
		}
		rotate(testenv.AgentToken)
		ag.waitUp(lifecycle.SourceKubelet, 30*time.Second)
		ag.checkJournal(before, lifecycle.SourceKubelet)
	})
	t.Run("403: a rotated token without nodes/pods, then granted", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		rotate(noPods)
		ag.waitDown(lifecycle.SourceKubelet, 30*time.Second, "/pods: 403 Forbidden (kubelet: Forbidden (user=system:serviceaccount:faults:no-pods",
			"the service account lacks RBAC `get` on `nodes/pods` (deploy/rbac.yaml grants it)")
		bind("no-pods", "podlife") // deploy/rbac.yaml's ClusterRole
		ag.waitUp(lifecycle.SourceKubelet, 60*time.Second)
		ag.checkJournal(before, lifecycle.SourceKubelet)
	})
	t.Run("403 from /metrics: a token without nodes/metrics", func(t *testing.T) {
		ag.t = t
		before := ag.mark()
		rotate(podsOnly)
		want := "403 Forbidden: the service account lacks RBAC `get` on `nodes/metrics` (deploy/rbac.yaml grants it)"
		testenv.Eventually(t, "the agent's log naming nodes/metrics", 30*time.Second, func() bool {
			b, _ := os.ReadFile(ag.logPath)
			return strings.Contains(string(b), want)
		})
		r, _ := ag.pods()
		if h := r.Sources[lifecycle.SourceKubelet]; !h.Up {
			t.Errorf("the kubelet's /pods still answers: the kubelet source must stay up, got %+v", h)
		}
		rotate(testenv.AgentToken)
		ag.checkJournalCycles(before, lifecycle.SourceKubelet, 0)
	})
}
