#!/usr/bin/env bash
# Builds Toxiproxy's server (the TCP fault proxy of the fault-injection tests, tests/faults/) once per
# machine and version, from its Go module, into a cache outside the repo. Prints the binary's path.
set -euo pipefail

TOXIPROXY_VERSION=v2.5.0
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
dir=$cache/toxiproxy-$TOXIPROXY_VERSION
binary=$dir/toxiproxy-server

if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

command -v go >/dev/null || { echo "build-toxiproxy: Go is needed to build Toxiproxy" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
echo "build-toxiproxy: building Toxiproxy $TOXIPROXY_VERSION into $dir (first run only)" >&2
# The version is stamped the way Toxiproxy's own release build does, so `-version` tells it.
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
  -ldflags "-s -w -X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION#v}" \
  "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
mv "$tmp/server" "$binary"
echo "build-toxiproxy: built in $(( $(date +%s) - start ))s" >&2
echo "$binary"
