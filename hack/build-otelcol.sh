#!/usr/bin/env bash
# Builds a minimal OpenTelemetry Collector (hack/otelcol: the OTLP receiver and the file exporter) once
# per machine and version, into a cache outside the repo: the OTLP receiver the trace and metric tests
# send to. Prints the binary's path. A cold build took 4.5 min on 2 shared cores (Jaeger takes 32).
set -euo pipefail

OTELCOL_VERSION=v0.161.0  # the collector release of hack/otelcol/go.mod; keep the two in step
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
bin=$cache/otelcol-$OTELCOL_VERSION/bin
if [ -x "$bin/otelcol" ]; then echo "$bin/otelcol"; exit 0; fi
# --cached-only: say it is not built (exit 3) instead of starting a build (`make deps` builds it).
if [ "${1:-}" = "--cached-only" ]; then echo "build-otelcol: not built; run make deps" >&2; exit 3; fi

command -v go >/dev/null || { echo "build-otelcol: Go is needed to build the collector" >&2; exit 1; }
mkdir -p "$bin"
tmp=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "build-otelcol: building the collector $OTELCOL_VERSION into $bin (once per machine)" >&2
here=$(cd "$(dirname "$0")" && pwd)
# A module of our own (hack/otelcol, its go.sum in the repo): the collector is a library; a
# distribution is a main that names its components, as the collector's own builder generates.
(cd "$here/otelcol" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/otelcol" .)
mv "$tmp/otelcol" "$bin/"
echo "build-otelcol: built in $(( $(date +%s) - start ))s" >&2
echo "$bin/otelcol"
