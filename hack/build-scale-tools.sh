#!/usr/bin/env bash
# Builds the fleet scale harness's hollow kubelet (test/scaletools,
# cmd/hollowlocal: kubemark's, loopback-only) into $1. A module and a stamp
# of its own ($1/.scaletools.version), so that make test's tools
# (hack/build-tools.sh) are neither rebuilt nor relinked for it. Only
# `make scale` needs it.
set -euo pipefail
bin=${1:?usage: build-scale-tools.sh BIN_DIR}
cd "$(dirname "$0")/../test/scaletools"
ldflags='-s -w -X k8s.io/component-base/version.gitVersion=v1.37.2'
stamp=$( { cat go.mod go.sum cmd/hollowlocal/main.go; echo "$ldflags"; go version; } | sha256sum | cut -c1-16)
if [ -x "$bin/hollowlocal" ] && [ "$(cat "$bin/.scaletools.version" 2>/dev/null)" = "$stamp" ]; then exit 0; fi
echo "build-scale-tools: building hollowlocal ($(go list -m -f '{{.Path}}@{{.Version}}' k8s.io/kubernetes))"
t0=$SECONDS
go build -ldflags "$ldflags" -o "$bin/hollowlocal.tmp" ./cmd/hollowlocal
mv -f "$bin/hollowlocal.tmp" "$bin/hollowlocal"
echo "$stamp" > "$bin/.scaletools.version"
echo "build-scale-tools: built in $((SECONDS - t0))s"
