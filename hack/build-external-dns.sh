#!/usr/bin/env bash
# Builds external-dns (the controller that publishes the dns router's records, tests/dns/) once per
# machine and version, from its Go module, into a cache outside the repo. Prints the binary's path.
set -euo pipefail

EXTERNAL_DNS_VERSION=v0.21.0
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
dir=$cache/external-dns-$EXTERNAL_DNS_VERSION
binary=$dir/external-dns

if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

command -v go >/dev/null || { echo "build-external-dns: Go is needed to build external-dns" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

start=$(date +%s)
echo "build-external-dns: building external-dns $EXTERNAL_DNS_VERSION into $dir (first run only)" >&2
# The version is stamped the way external-dns's own Makefile does, so `--version` tells it.
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/external-dns/pkg/apis/externaldns.Version=$EXTERNAL_DNS_VERSION" \
  "sigs.k8s.io/external-dns@$EXTERNAL_DNS_VERSION"
mv "$tmp/external-dns" "$binary"
echo "build-external-dns: built in $(( $(date +%s) - start ))s" >&2
echo "$binary"
