#!/usr/bin/env bash
# Installs Debian's BIND 9 (`named`) and its tools (`dig`): the authoritative DNS server the dns
# router's data-plane tests start themselves (tests/dns/), on a loopback port with a TSIG key that
# external-dns updates the zone with (RFC 2136). Idempotent: does nothing once `named` is there; no
# system service is left running (hack/apt-install-quiet.sh).
set -euo pipefail

if command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ]; then
  exit 0
fi
exec bash "$(dirname "$0")/apt-install-quiet.sh" named bind9 bind9-dnsutils
