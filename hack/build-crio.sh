#!/usr/bin/env bash
# Builds CRI-O and what it needs to run in the tests into $1 (issue 25):
#   crio and copyimg (CRI-O's own docker-archive importer, test/copyimg), from
#   the Go module proxy, as the main module of their own source tree: CRI-O
#   cannot share test/tools' module (containerd v1 and otel versions clash);
#   pinns (CRI-O's C helper that pins pod namespaces);
#   runc-wrap (hack/runcwrap: what this machine lacks, fixed up before runc);
#   conmon (Debian's). runc and the CNI loopback plugin are hack/build-tools.sh's.
# A stamp of its own ($1/.crio.version): make test's other tools are neither
# rebuilt nor relinked for it.
set -euo pipefail
bin=${1:?usage: build-crio.sh BIN_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
CRIO_VERSION=v1.36.3 # the proxy here serves v1.36.3 and refuses v1.37.x
# No C library but libseccomp (make tools installs it): no btrfs, devicemapper,
# ostree or gpgme.
CRIO_TAGS="containers_image_ostree_stub containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp"

"$root/hack/apt-install.sh" build-crio conmon gcc make libc6-dev libseccomp-dev pkg-config

stamp=$( { echo "$CRIO_VERSION $CRIO_TAGS"; cat "$0" "$root/hack/apt-install.sh" "$root/hack/runcwrap/main.go"; go version; dpkg-query -W conmon; } | sha256sum | cut -c1-16)
if [ "$(cat "$bin/.crio.version" 2>/dev/null)" = "$stamp" ] && [ -x "$bin/crio" ]; then exit 0; fi
echo "build-crio: building cri-o $CRIO_VERSION"
t0=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dir=$(cd "$work" && go mod download -json "github.com/cri-o/cri-o@$CRIO_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "build-crio: go mod download github.com/cri-o/cri-o@$CRIO_VERSION failed" >&2; exit 1; }
cp -r "$dir" "$work/cri-o"
chmod -R u+w "$work/cri-o"
# The module zip has no vendor/: -mod=mod resolves its go.mod from the proxy.
(cd "$work/cri-o" && CGO_ENABLED=1 go build -mod=mod -trimpath -tags "$CRIO_TAGS" -ldflags "-s -w" \
  -o "$work/out/" ./cmd/crio ./test/copyimg)
make -s -C "$work/cri-o/pinns" >/dev/null
(cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/out/runc-wrap" ./hack/runcwrap)
install -m 0755 "$work/out/crio" "$work/out/copyimg" "$work/out/runc-wrap" "$work/cri-o/bin/pinns" /usr/bin/conmon "$bin/"
echo "$stamp" > "$bin/.crio.version"
echo "build-crio: built in $((SECONDS - t0))s ($("$bin/crio" --version | head -1))"
