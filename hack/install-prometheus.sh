#!/usr/bin/env bash
# Installs Debian's `prometheus`, or the package named as $1 whose command has the same name
# (`prometheus-pushgateway`): the tests start their own instance on a free loopback port.
# Idempotent: does nothing when the command is already on PATH. The package's maintainer scripts
# would start a system service; a temporary policy-rc.d forbids that, and any service that started
# anyway is stopped, so the only one that ever runs is the one the tests start.
set -euo pipefail
pkg=${1:-prometheus}

if command -v "$pkg" >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-prometheus: needs root for apt-get (or install Debian's '$pkg' package yourself)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# installed by bluegreen hack/install-prometheus.sh: no services start\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=yes
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null

# If a service manager started it despite policy-rc.d, stop that service (not any other process).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$pkg" 2>/dev/null; then
  systemctl stop "$pkg" || true
  systemctl disable "$pkg" >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/"$pkg" ] && [ -f /run/"$pkg".pid ]; then
  /etc/init.d/"$pkg" stop >/dev/null 2>&1 || true
fi

command -v "$pkg" >/dev/null
"$pkg" --version 2>&1 | head -1
