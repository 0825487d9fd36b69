#!/usr/bin/env bash
# Installs Debian packages whose maintainer scripts would start a system service, without that
# service: the tests start their own instances on loopback. A temporary policy-rc.d forbids starting
# it, and one that started anyway is stopped (that service only, not any other process).
# Usage: apt-install-quiet.sh SERVICE PACKAGE...   (called by the install-*.sh scripts)
set -euo pipefail
service=$1
shift

if [ "$(id -u)" -ne 0 ]; then
  echo "$(basename "$0"): needs root for apt-get (or install Debian's $* yourself)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# installed by bluegreen hack/apt-install-quiet.sh: no services start\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=yes
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
bash "$(dirname "$0")/apt.sh" update -qq
bash "$(dirname "$0")/apt.sh" install -y -qq --no-install-recommends "$@" >/dev/null

if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
  systemctl stop "$service" || true
  systemctl disable "$service" >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/"$service" ] && { [ -f /run/"$service".pid ] || [ -f /run/"$service"/"$service".pid ]; }; then
  /etc/init.d/"$service" stop >/dev/null 2>&1 || true
fi
