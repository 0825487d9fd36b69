#!/usr/bin/env bash
# apt-get, one at a time: `make deps` runs the Debian installs beside the Go builds (hack/deps.sh), and
# the real node's build installs runc and CNI plugins from Debian too; two apt-gets at once would fail
# on dpkg's lock instead of waiting for it.
set -euo pipefail
exec flock /var/lock/bluegreen-apt.lock apt-get "$@"
