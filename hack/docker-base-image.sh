#!/usr/bin/env bash
# Local stand-ins for the images the Action's tests would otherwise pull (nothing can be pulled here):
#   bluegreen.local/python:3.11-slim  the Dockerfile's BASE_IMAGE: Debian bookworm with Python 3.11
#   bluegreen.local/act-job:1         act's job container (sh, bash, tail): the same root filesystem
# The root filesystem comes from debootstrap once and is cached as a tarball; later runs only import it.
# Idempotent.
set -euo pipefail
CACHE=${BLUEGREEN_CACHE:-$HOME/.cache/bluegreen}
BASE=bluegreen.local/python:3.11-slim
JOB=bluegreen.local/act-job:1
ROOTFS_TAR=$CACHE/images/bookworm-python3.11-rootfs.tar

if docker image inspect "$BASE" >/dev/null 2>&1 && docker image inspect "$JOB" >/dev/null 2>&1; then
  exit 0
fi
if [ ! -f "$ROOTFS_TAR" ]; then
  command -v debootstrap >/dev/null || { bash "$(dirname "$0")/apt.sh" update -qq && bash "$(dirname "$0")/apt.sh" install -y -qq debootstrap >/dev/null; }
  mkdir -p "$CACHE/images"
  work=$(mktemp -d "$CACHE/images/rootfs.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "debootstrap bookworm into $work (once per machine)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/root" http://deb.debian.org/debian >"$CACHE/images/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/images/debootstrap.log" >&2; exit 1; }
  # Smaller and like the official slim image: no apt lists, docs or caches.
  rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"* \
    "$work/root/usr/share/doc/"* "$work/root/usr/share/man/"* "$work/root/usr/share/locale/"*
  tar -C "$work/root" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
fi
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' "$ROOTFS_TAR" "$BASE" >/dev/null
docker tag "$BASE" "$JOB"
echo "imported $BASE and $JOB" >&2
