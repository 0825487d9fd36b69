"""A throwaway PostgreSQL cluster for one test: initdb and pg_ctl in a temporary directory, listening
on a Unix socket only (no TCP port), stopped and removed at the end.

PostgreSQL refuses to run as root: as root the cluster runs as the `postgres` user the Debian package
creates (`runuser`), in a directory that user owns; as anyone else, as that user. The clients (the
sample apps, the hooks' psql) connect as role `postgres` over the socket with trust authentication,
which only processes on this machine that can reach the socket directory can use.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PORT = 5432  # only names the socket file (.s.PGSQL.5432) in our own directory: no TCP listener


class PostgresUnavailable(Exception):
    pass


def bindir() -> Path | None:
    """Debian's server binaries (/usr/lib/postgresql/<version>/bin), the newest; None when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def unavailable() -> str:
    """Why no test cluster can start here; '' when it can."""
    if bindir() is None:
        return "PostgreSQL's initdb is not installed (make deps runs hack/install-postgres.sh)"
    if shutil.which("psql") is None:
        return "psql is not installed (make deps runs hack/install-postgres.sh)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to start the server as `postgres`"
    return ""


class Postgres:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bluegreen-pg-"))
        self.data = self.root / "data"
        self.socket = self.root / "socket"
        self.log = self.root / "server.log"
        self.port = PORT
        self.started = False

    def _as_server(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def up(self) -> Postgres:
        binaries = bindir()
        if binaries is None:
            raise PostgresUnavailable("initdb not found")
        self.socket.mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.root, self.socket):
                os.chown(path, user.pw_uid, user.pw_gid)
        self.root.chmod(0o755)  # root's clients reach the socket; the data directory stays 0700
        subprocess.run(
            self._as_server(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-k {self.socket} -c listen_addresses='' -p {self.port} -c fsync=off"
        subprocess.run(
            self._as_server(
                [
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.started = True
        self.psql("CREATE DATABASE app", database="postgres")
        return self

    def env(self) -> dict[str, str]:
        """libpq's variables that reach this cluster's database `app`."""
        return {
            "PGHOST": str(self.socket),
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
            "PGDATABASE": "app",
        }

    def psql(self, sql: str, *, database: str = "app") -> str:
        done = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
            env={**os.environ, **self.env(), "PGDATABASE": database},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"psql {sql!r} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def columns(self, table: str) -> list[str]:
        return self.psql(
            f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"  # noqa: S608 (the tests' own table name)
        ).split()

    def down(self) -> None:
        binaries = bindir()
        if self.started and binaries is not None:
            subprocess.run(
                self._as_server(
                    [str(binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
                timeout=60,
                check=False,
            )
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()
