#!/usr/bin/env bash
# Builds every Go binary the tests start, in two lanes side by side, each a chain of the cached build
# scripts (each a no-op once its binary is cached). A cold Go build leaves one of two cores idle much
# of its time (module downloads, the linker: external-dns used 0.95 cores on average over its 8 min),
# so two at once keep a 2-core machine busy. Within a lane the order shares the Go build cache: the
# real node's kubelet reuses what build-k8s.sh compiled. Cold, the cluster lane is the shorter (k8s
# 7.5 min + real node 3 + Toxiproxy 0.5 + the collector 4.5, against Traefik 7.75 + external-dns 8),
# so the collector goes there.
set -euo pipefail
cd "$(dirname "$0")"

lane() {
  local name=$1 script
  shift
  for script in "$@"; do
    # Progress and errors go to stderr, each line marked with its lane; stdout (the paths) is not needed.
    if ! bash "$script" >/dev/null 2> >(sed -u "s/^/[$name] /" >&2); then
      echo "build-all: hack/$script failed (its output is above, marked [$name])" >&2
      return 1
    fi
  done
}

lane cluster build-k8s.sh build-realnode.sh build-toxiproxy.sh build-otelcol.sh &
cluster=$!
lane proxies build-traefik.sh build-external-dns.sh &
proxies=$!
trap 'kill "$cluster" "$proxies" 2>/dev/null || true' INT TERM
failed=0
wait "$cluster" || failed=1
wait "$proxies" || failed=1
exit "$failed"
