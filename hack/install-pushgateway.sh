#!/usr/bin/env bash
# Installs Debian's `prometheus-pushgateway` (the tests start their own on a free loopback port).
# Idempotent: does nothing when `prometheus-pushgateway` is already on PATH. The package's maintainer scripts
# would start a system service; a temporary policy-rc.d forbids that, and any service that started
# anyway is stopped, so the only Pushgateway that ever runs is the one the tests start.
set -euo pipefail

if command -v prometheus-pushgateway >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-pushgateway: needs root for apt-get (or install Debian's 'prometheus-pushgateway' package yourself)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# installed by bluegreen hack/install-pushgateway.sh: no services start\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=yes
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus-pushgateway >/dev/null

# If a service manager started it despite policy-rc.d, stop that service (not any other process).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus-pushgateway 2>/dev/null; then
  systemctl stop prometheus-pushgateway || true
  systemctl disable prometheus-pushgateway >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/prometheus-pushgateway ] && [ -f /run/prometheus-pushgateway.pid ]; then
  /etc/init.d/prometheus-pushgateway stop >/dev/null 2>&1 || true
fi

command -v prometheus-pushgateway >/dev/null
prometheus-pushgateway --version 2>&1 | head -1
