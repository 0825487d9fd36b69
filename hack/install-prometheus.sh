#!/usr/bin/env bash
# Installs Debian's `prometheus`, or the package named as $1 whose command has the same name
# (`prometheus-pushgateway`): the tests start their own instance on a free loopback port.
# Idempotent: does nothing when the command is already on PATH; no system service is left running
# (hack/apt-install-quiet.sh).
set -euo pipefail
pkg=${1:-prometheus}

if command -v "$pkg" >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "$0")/apt-install-quiet.sh" "$pkg" "$pkg"
command -v "$pkg" >/dev/null
"$pkg" --version 2>&1 | head -1
