#!/usr/bin/env bash
# Installs Debian's `postgresql` (server and psql) for tests/integration/test_migrate_postgres.py,
# which starts its own throwaway cluster (initdb, pg_ctl) on a Unix socket in a temporary directory.
# Idempotent and quick: does nothing when initdb and psql are already there. The package's maintainer
# scripts would start the distribution's cluster as a service; a temporary policy-rc.d forbids that,
# and a service that started anyway is stopped, so the only PostgreSQL running is the tests' own.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && command -v psql >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-postgres: needs root for apt-get (or install Debian's 'postgresql' package yourself)" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# installed by bluegreen hack/install-postgres.sh: no services start\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours=yes
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null

if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
  systemctl stop postgresql || true
  systemctl disable postgresql >/dev/null 2>&1 || true
fi
if command -v pg_ctlcluster >/dev/null 2>&1; then
  # the distribution's own cluster, if its service started: stop it, leave its data alone
  for version in /usr/lib/postgresql/*; do
    pg_ctlcluster "$(basename "$version")" main stop >/dev/null 2>&1 || true
  done
fi
