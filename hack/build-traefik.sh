#!/usr/bin/env bash
# Builds Traefik (the real Ingress and Gateway API proxy of the routers' data-plane tests,
# tests/routers_traffic/) once per machine and version, from its Go module, into a cache outside the
# repo, beside the Gateway API CRDs it serves (the standard channel of the version it was built
# against: Traefik waits for every kind it watches, GRPCRoute and BackendTLSPolicy included).
# Prints the binary's path; the CRDs are in gateway-api-crds/ next to it.
#
# v3.6.x, not v3.7: v3.7's go.mod replaces a nested module that the module zip leaves out. And not
# `go install ...@version`: it refuses modules whose go.mod has replace directives, so the module is
# downloaded, copied out of the (read-only) module cache and built in place.
set -euo pipefail

TRAEFIK_VERSION=v3.6.12
GATEWAY_API_VERSION=v1.4.0  # Traefik v3.6.12's go.mod
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
dir=$cache/traefik-$TRAEFIK_VERSION
binary=$dir/traefik
crds=$dir/gateway-api-crds

if [ -x "$binary" ] && [ -d "$crds" ]; then echo "$binary"; exit 0; fi

command -v go >/dev/null || { echo "build-traefik: Go is needed to build Traefik" >&2; exit 1; }
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

moddir() {  # the module's directory in the module cache (downloaded if missing)
  (cd "$tmp" && go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

if [ ! -d "$crds" ]; then
  gw=$(moddir sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION")
  mkdir -p "$tmp/crds"
  cp "$gw"/config/crd/standard/*.yaml "$tmp/crds/"
  chmod u+w "$tmp"/crds/*.yaml
  mv "$tmp/crds" "$crds"
fi
if [ -x "$binary" ]; then echo "$binary"; exit 0; fi

start=$(date +%s)
echo "build-traefik: building Traefik $TRAEFIK_VERSION into $dir (first run only, ~8 min on 2 cores)" >&2
module=$(moddir github.com/traefik/traefik/v3 "$TRAEFIK_VERSION")
[ -n "$module" ] && [ -d "$module" ] || { echo "build-traefik: go mod download gave no module directory" >&2; exit 1; }
cp -r "$module" "$tmp/src"
chmod -R u+w "$tmp/src"
# The version is stamped the way Traefik's own release build does, so `traefik version` tells it.
(cd "$tmp/src" && CGO_ENABLED=0 go build -trimpath -o "$tmp/traefik" \
  -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION#v}" \
  ./cmd/traefik)
mv "$tmp/traefik" "$binary"
echo "build-traefik: built in $(( $(date +%s) - start ))s" >&2
echo "$binary"
