#!/usr/bin/env bash
# Builds every real component the integration tests run from the test/tools
# module into $1, in ONE go build: the tools share client-go, grpc, protobuf,
# otel and the rest through that module's single set of versions, so each
# shared package is compiled once, and the linker of one binary overlaps the
# compiler of the next. Skipped when the binaries are there and were built from
# this go.mod/go.sum with these flags (the stamp in $1/.tools.version).
#
# Flags: runc needs cgo and the seccomp tag (libseccomp-dev); remove_all_sd
# leaves Prometheus' service-discovery SDKs (AWS, Azure, GCE, Kubernetes, ...)
# out of prometheus and promtool: the tests use static_configs only.
set -euo pipefail
bin=${1:?usage: build-tools.sh BIN_DIR}
mkdir -p "$bin" && bin=$(cd "$bin" && pwd) # absolute: the build runs in test/tools
cd "$(dirname "$0")/../test/tools"
tags=seccomp,remove_all_sd
pkgs=(
  k8s.io/kubernetes/cmd/kube-apiserver
  k8s.io/kubernetes/cmd/kubelet
  k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kube-scheduler
  go.etcd.io/etcd/server/v3
  github.com/containerd/containerd/v2/cmd/containerd
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  github.com/containerd/containerd/v2/cmd/ctr
  github.com/opencontainers/runc
  github.com/containernetworking/plugins/plugins/main/loopback
  helm.sh/helm/v4/cmd/helm
  github.com/prometheus/prometheus/cmd/prometheus
  github.com/prometheus/prometheus/cmd/promtool
)
names=(kube-apiserver kubelet kube-controller-manager kube-scheduler etcd containerd
  containerd-shim-runc-v2 ctr runc loopback helm prometheus promtool)
# kubectl comes with this machine image; build it only where it is missing.
if ! command -v kubectl >/dev/null; then pkgs+=(k8s.io/kubernetes/cmd/kubectl); names+=(kubectl); fi
# crictl only for `make bench` (the real-node benchmark); make test does not use it.
if [ -n "${PODLIFE_BENCH_TOOLS:-}" ]; then pkgs+=(sigs.k8s.io/cri-tools/cmd/crictl); names+=(crictl); fi

stamp=$( { cat go.mod go.sum; echo "$tags ${pkgs[*]}"; go version; } | sha256sum | cut -c1-16)
current=1
for n in "${names[@]}"; do [ -x "$bin/$n" ] || current=0; done
if [ $current = 1 ] && [ "$(cat "$bin/.tools.version" 2>/dev/null)" = "$stamp" ]; then exit 0; fi

echo "build-tools: building ${names[*]} ($(go list -m -f '{{.Path}}@{{.Version}}' k8s.io/kubernetes go.etcd.io/etcd/server/v3 github.com/containerd/containerd/v2 helm.sh/helm/v4 github.com/prometheus/prometheus | tr '\n' ' '))"
t0=$SECONDS
out=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=1 go build -tags "$tags" -ldflags '-s -w' -o "$out/" "${pkgs[@]}"
mv "$out/server" "$out/etcd" # go names a /vN main package after the path element before it
for n in "${names[@]}"; do mv -f "$out/$n" "$bin/$n"; done
echo "$stamp" > "$bin/.tools.version"
echo "build-tools: built in $((SECONDS - t0))s"
