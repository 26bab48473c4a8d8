#!/usr/bin/env bash
# Installs what the integration tests need into $1 (default .tools/bin):
# Debian packages, the Prometheus Operator's CRDs, then every real component
# (Kubernetes, etcd, containerd, runc, helm, Prometheus) built from the Go
# module proxy by build-tools.sh, pinned by test/tools/go.mod, and CRI-O (the
# second runtime the real tests run on) by build-crio.sh. Built binaries are
# cached: a second run only checks they are there.
set -euo pipefail
bin=${1:-$(pwd)/.tools/bin}
mkdir -p "$bin"

"$(dirname "$0")/apt-install.sh" install-tools libseccomp-dev pkg-config busybox-static iproute2 chromium

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
"$(dirname "$0")/build-tools.sh" "$bin"
"$(dirname "$0")/build-crio.sh" "$bin"
echo "install-tools: ok ($bin)"
