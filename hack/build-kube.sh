#!/usr/bin/env bash
# Builds kubelet, kube-apiserver and etcd from the test/tools module into $1,
# each stamped with the version it was built from (skipped when current).
set -euo pipefail
bin=${1:?usage: build-kube.sh BIN_DIR}
cd "$(dirname "$0")/../test/tools"
k8s=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
etcd=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
build() { # build NAME STAMP PACKAGE
  local name=$1 stamp=$2 pkg=$3
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.version" 2>/dev/null)" = "$stamp" ]; then return; fi
  echo "build-kube: building $name $stamp"
  go build -o "$bin/$name" "$pkg"
  echo "$stamp" > "$bin/.$name.version"
}
build etcd "$etcd" go.etcd.io/etcd/server/v3
build kube-apiserver "$k8s" k8s.io/kubernetes/cmd/kube-apiserver
build kubelet "$k8s" k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager "$k8s" k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler "$k8s" k8s.io/kubernetes/cmd/kube-scheduler
# kubectl comes with this machine image; build it only where it is missing.
command -v kubectl >/dev/null || build kubectl "$k8s" k8s.io/kubernetes/cmd/kubectl
