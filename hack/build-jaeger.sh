#!/usr/bin/env bash
# Builds Jaeger (`cmd/jaeger`, the v2 binary on the OpenTelemetry Collector: OTLP in, query API out)
# once per machine and version, into a cache outside the repo, for the trace tests. Prints the binary.
set -euo pipefail

JAEGER_VERSION=v1.76.0  # the Go module's tag of the Jaeger v2 release line; keep hack/jaeger/go.mod in step
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
bin=$cache/jaeger-$JAEGER_VERSION/bin
if [ -x "$bin/jaeger" ]; then echo "$bin/jaeger"; exit 0; fi
# --cached-only: say it is not built (exit 3) instead of starting a build that takes half an hour.
if [ "${1:-}" = "--cached-only" ]; then echo "build-jaeger: not built; run make jaeger" >&2; exit 3; fi

command -v go >/dev/null || { echo "build-jaeger: Go is needed to build Jaeger" >&2; exit 1; }
mkdir -p "$bin"
tmp=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "build-jaeger: building jaeger $JAEGER_VERSION into $bin (once per machine)" >&2
here=$(cd "$(dirname "$0")" && pwd)
# A wrapper module (hack/jaeger), as for Kubernetes: Jaeger's go.mod has a replace directive, which
# `go install module@version` refuses. go.sum is in the repo, so the build is reproducible.
(cd "$here/jaeger" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/" github.com/jaegertracing/jaeger/cmd/jaeger)
mv "$tmp/jaeger" "$bin/"
echo "build-jaeger: built in $(( $(date +%s) - start ))s" >&2
echo "$bin/jaeger"
