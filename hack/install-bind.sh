#!/usr/bin/env bash
# Installs Debian's BIND 9 (`named`) and its tools (`dig`): the authoritative DNS server the dns
# router's data-plane tests start themselves (tests/dns/), on a loopback port with a TSIG key that
# external-dns updates the zone with (RFC 2136). Idempotent: does nothing once `named` is there.
# The package would start a system service; a temporary policy-rc.d forbids that, and one that
# started anyway is stopped, so the only named that runs is the one a test starts.
set -euo pipefail

if command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-bind: needs root for apt-get (or install Debian's bind9 and bind9-dnsutils yourself)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# installed by bluegreen hack/install-bind.sh: no services start\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=yes
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends bind9 bind9-dnsutils >/dev/null

if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet named 2>/dev/null; then
  systemctl stop named || true
  systemctl disable named >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/named ] && [ -f /run/named/named.pid ]; then
  /etc/init.d/named stop >/dev/null 2>&1 || true
fi
