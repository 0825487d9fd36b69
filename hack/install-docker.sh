#!/usr/bin/env bash
# A running Docker engine for the Action's image tests: Debian's docker.io, dockerd started in the
# background when none answers. Idempotent. No image is ever pulled: see hack/docker-base-image.sh.
set -euo pipefail
CACHE=${BLUEGREEN_CACHE:-$HOME/.cache/bluegreen}
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  bash "$(dirname "$0")/apt.sh" update -qq && bash "$(dirname "$0")/apt.sh" install -y -qq docker.io >/dev/null
fi
mkdir -p "$CACHE"
setsid dockerd >"$CACHE/dockerd.log" 2>&1 < /dev/null &
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then echo "dockerd started" >&2; exit 0; fi
  sleep 1
done
echo "dockerd did not answer within 60s; see $CACHE/dockerd.log" >&2
tail -20 "$CACHE/dockerd.log" >&2
exit 1
