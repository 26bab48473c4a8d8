#!/usr/bin/env bash
# Installs the Debian packages named that are not installed yet (installed,
# not merely known: a removed package keeps its config files).
# usage: apt-install.sh WHO PACKAGE...
set -euo pipefail
who=$1; shift
need=()
for p in "$@"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "$who: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
