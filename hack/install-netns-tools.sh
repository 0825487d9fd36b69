#!/usr/bin/env bash
# Installs what the traffic rig (hack/traffic_rig.py) needs beside kube-proxy: Debian's `nftables`
# (kube-proxy's nftables mode runs `nft`), `conntrack` and `iproute2` (`ip netns`, veth, addresses).
# Idempotent: does nothing when all three commands are on PATH. Without root it installs nothing and
# says so: the rig needs root anyway, and its tests are then reported as skipped.
set -euo pipefail

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-netns-tools: not root, so not installing ${missing[*]}: the real-traffic tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
bash "$(dirname "$0")/apt.sh" update -qq
bash "$(dirname "$0")/apt.sh" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
