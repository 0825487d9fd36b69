#!/usr/bin/env bash
# `make deps`: the Go builds (hack/build-all.sh, two lanes) and the Debian installs side by side. On a
# fresh machine the installs (Docker, debootstrap's base image, Prometheus, PostgreSQL, BIND, ...) wait
# mostly on downloads and dpkg, the Go builds on the CPU, so together they take little more than the
# builds alone. Each script is a no-op once its part is in place; apt-gets queue on one lock (apt.sh).
# Usage: deps.sh INSTALL_SCRIPT...   (the Makefile's INSTALL_SCRIPTS, run in that order)
set -euo pipefail
here=$(dirname "$0")

installs() {
  local script
  for script in "$@"; do
    # A pipe, not a process substitution: that one's descriptor would be inherited by a daemon the
    # script starts (dockerd), and the marking sed, and `make`'s caller, would wait for it to exit.
    if [ -f "$script" ] && ! bash "$script" 2>&1 | sed -u "s/^/[installs] /" >&2; then
      echo "deps: $script failed (its output is above, marked [installs])" >&2
      return 1
    fi
  done
}

bash "$here/build-all.sh" &
builds=$!
installs "$@" &
installed=$!
trap 'kill "$builds" "$installed" 2>/dev/null || true' INT TERM
failed=0
wait "$builds" || failed=1
wait "$installed" || failed=1
exit "$failed"
