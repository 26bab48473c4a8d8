#!/usr/bin/env bash
# Installs what the integration tests need into $1 (default .tools/bin):
# Debian packages, then containerd, runc and crictl built from the Go module
# proxy. Built binaries are cached: a second run only checks they are there.
set -euo pipefail
bin=${1:-$(pwd)/.tools/bin}
mkdir -p "$bin"

need_pkgs=()
for p in libseccomp-dev pkg-config busybox-static iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${need_pkgs[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.2
CRICTL_VERSION=v1.37.0
CNI_PLUGINS_VERSION=v1.10.0

build() { # build NAME VERSION-STAMP CMD...
  local name=$1 stamp=$2; shift 2
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.version" 2>/dev/null)" = "$stamp" ]; then return; fi
  echo "install-tools: building $name $stamp"
  local t0=$SECONDS
  GOBIN=$bin "$@"
  echo "$stamp" > "$bin/.$name.version"
  echo "install-tools: built $name in $((SECONDS - t0))s"
}
build containerd $CONTAINERD_VERSION go install github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION
build containerd-shim-runc-v2 $CONTAINERD_VERSION go install github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION
build ctr $CONTAINERD_VERSION go install github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION
build runc $RUNC_VERSION env CGO_ENABLED=1 go install -tags seccomp github.com/opencontainers/runc@$RUNC_VERSION
# crictl only for `make bench` (the real-node benchmark); make test does not use it.
if [ -n "${PODLIFE_BENCH_TOOLS:-}" ]; then
  build crictl $CRICTL_VERSION go install sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION
fi
# The CNI loopback plugin alone makes containerd report the pod network ready, so a
# registered kubelet turns its Node Ready (test pods use hostNetwork).
build loopback $CNI_PLUGINS_VERSION go install github.com/containernetworking/plugins/plugins/main/loopback@$CNI_PLUGINS_VERSION
# Chart and monitoring tests: helm v4 (helm lint/template), and Prometheus 3
# (prometheus for the one-node cluster's alert test, promtool for rule unit
# tests and `promtool check metrics`). Prometheus' module is tagged v0.3MM.P for
# release 3.MM.P; the UI's assets are not embedded (no builtinassets tag): the
# tests use only its HTTP API.
HELM_VERSION=v4.3.1
PROMETHEUS_VERSION=v0.316.0 # Prometheus 3.16.0
build helm $HELM_VERSION go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION
build promtool $PROMETHEUS_VERSION go install github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION
build prometheus $PROMETHEUS_VERSION go install github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION
# The Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule),
# from its Go module, for server-side dry runs of the monitoring objects
# against a real API server. (v0.85.0: the newest version the proxy serves.)
PROMETHEUS_OPERATOR_VERSION=v0.85.0
crds=$(dirname "$bin")/crds
if [ "$(cat "$crds/.version" 2>/dev/null)" != "$PROMETHEUS_OPERATOR_VERSION" ]; then
  echo "install-tools: Prometheus Operator CRDs $PROMETHEUS_OPERATOR_VERSION"
  tmp=$(mktemp -d) # outside any module: go mod download touches no go.mod
  dir=$(cd "$tmp" && go mod download -json github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  rmdir "$tmp"
  mkdir -p "$crds"
  for k in servicemonitors podmonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$k.yaml" "$crds/"
  done
  chmod 0644 "$crds"/*.yaml
  echo "$PROMETHEUS_OPERATOR_VERSION" > "$crds/.version"
fi
"$(dirname "$0")/build-kube.sh" "$bin"
echo "install-tools: ok ($bin)"
