// Package testenv starts real components for integration tests: containerd
// and runc, the kubelet, kube-apiserver and etcd, or a whole one-node cluster
// with kube-controller-manager and kube-scheduler (StartCluster), all built
// from the Go module proxy into .tools/bin by hack/install-tools.sh. Every
// process a test starts is stopped by PID in t.Cleanup.
package testenv

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Bin returns the absolute path of a built tool in $PODLIFE_TOOLS_BIN or
// <repo root>/.tools/bin, failing the test when it is missing.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("PODLIFE_TOOLS_BIN")
	if dir == "" {
		dir = filepath.Join(RepoRoot(), ".tools", "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not built (%v): run `make tools`", name, err)
	}
	return p
}
