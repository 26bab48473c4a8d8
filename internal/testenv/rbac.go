package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// ApplyRBAC creates the ClusterRoles and Roles of deploy/ on a test API
// server and binds them to user, so tests exercise exactly the permissions
// podlife ships.
func ApplyRBAC(ctx context.Context, cs kubernetes.Interface, user string) error {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "deploy", "*.yaml"))
	if err != nil {
		return err
	}
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "cli-rbac.yaml" {
			continue // Role podlife-cli is for kubectl podlife's users, not the agent
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			var meta struct{ Kind string }
			if yaml.Unmarshal(doc, &meta) != nil {
				continue
			}
			if meta.Kind == "Role" {
				if err := createBoundNamespacedRole(ctx, cs, doc, user); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				continue
			}
			if meta.Kind != "ClusterRole" {
				continue
			}
			var role rbacv1.ClusterRole
			if err := yaml.Unmarshal(doc, &role); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if err := createBoundRole(ctx, cs, &role, user); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no ClusterRole found in %s/deploy/*.yaml", RepoRoot())
	}
	return nil
}

// GrantKubeletRead lets user read a kubelet's HTTPS API (whose webhook
// authorization asks the API server): get on nodes/pods, nodes/metrics and
// nodes/proxy, in a ClusterRole of its own beside the ones of deploy/.
func GrantKubeletRead(ctx context.Context, cs kubernetes.Interface, user string) error {
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "podlife-test-kubelet-read"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/pods", "nodes/metrics", "nodes/proxy"},
			Verbs: []string{"get"}}}}
	return createBoundRole(ctx, cs, role, user)
}

// createBoundNamespacedRole creates a Role of deploy/ in its namespace and
// binds it to user there.
func createBoundNamespacedRole(ctx context.Context, cs kubernetes.Interface, doc []byte, user string) error {
	var role rbacv1.Role
	if err := yaml.Unmarshal(doc, &role); err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: role.Namespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s for Role %s: %w", role.Namespace, role.Name, err)
	}
	if _, err := cs.RbacV1().Roles(role.Namespace).Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Role %s/%s: %w", role.Namespace, role.Name, err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + role.Name, Namespace: role.Namespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	if _, err := cs.RbacV1().RoleBindings(role.Namespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bind Role %s/%s: %w", role.Namespace, role.Name, err)
	}
	return nil
}

// createBoundRole creates role and binds it to user as test-<role name>.
func createBoundRole(ctx context.Context, cs kubernetes.Interface, role *rbacv1.ClusterRole, user string) error {
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create ClusterRole %s: %w", role.Name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "test-" + role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bind ClusterRole %s: %w", role.Name, err)
	}
	return nil
}
