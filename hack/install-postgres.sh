#!/usr/bin/env bash
# Installs Debian's `postgresql` (server and psql) for tests/integration/test_migrate_postgres.py,
# which starts its own throwaway cluster (initdb, pg_ctl) on a Unix socket in a temporary directory.
# Idempotent and quick: does nothing when initdb and psql are already there. No system service is
# left running (hack/apt-install-quiet.sh), nor the distribution's own cluster: the only PostgreSQL
# running is the tests' own.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v psql >/dev/null 2>&1; then
  exit 0
fi

bash "$(dirname "$0")/apt-install-quiet.sh" postgresql postgresql postgresql-client
if command -v pg_ctlcluster >/dev/null 2>&1; then
  # the distribution's own cluster, if its service started: stop it, leave its data alone
  for version in /usr/lib/postgresql/*; do
    pg_ctlcluster "$(basename "$version")" main stop >/dev/null 2>&1 || true
  done
fi
