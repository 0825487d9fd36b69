"""The sample app's two versions as a real process that writes and reads its database continuously.

    python -m tests.support.pgapp --version 1|2 --log FILE [--pause SECONDS]

libpq's PG* variables name the database. One psql session (the app's connection) is kept open and fed
one statement at a time, as an app's connection pool would. Each round:

- version 1 writes `name`; version 2 writes `full_name` only (the expand step's trigger keeps `name`
  filled for version 1 while both run, and contract drops it);
- each reads back the row it wrote, by id, and expects its value;
- each reads the newest row the other version wrote, in its own column, and expects a value there:
  version 1 reads `name` of version 2's rows, version 2 reads `full_name` of version 1's rows.

Every outcome is one line in the log, flushed: `W <id> <value>` for an acknowledged write, `R` for a
good read, `F <op> <why>` for a failure. SIGTERM ends the loop after the round in progress.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
from types import FrameType
from typing import TextIO

END = "__END__"
MAX_ROUNDS = 100_000  # a bound: the test stops it long before


class Session:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=0"],
            env=dict(os.environ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )

    def query(self, sql: str) -> tuple[list[str], str]:
        """The output rows, and the error ('' when none)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{sql}\n\\echo {END}\n")
        self.process.stdin.flush()
        rows: list[str] = []
        error = ""
        while True:
            line = self.process.stdout.readline()
            if not line:
                return rows, "the connection's psql ended"
            line = line.rstrip("\n")
            if line == END:
                return rows, error
            if line.startswith(("ERROR:", "psql:", "FATAL:")) or "ERROR:" in line:
                error = error or line
            else:
                rows.append(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", type=int, choices=(1, 2), required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--pause", type=float, default=0.02)
    args = parser.parse_args()
    stop = False

    def handle(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handle)
    session = Session()
    own = "name" if args.version == 1 else "full_name"
    other = "v2" if args.version == 1 else "v1"
    me = f"v{args.version}"
    with open(args.log, "a", buffering=1) as log:
        for n in range(MAX_ROUNDS):
            if stop:
                break
            round_(session, log, me=me, own=own, other=other, value=f"{me}-{os.getpid()}-{n}")
            time.sleep(args.pause)
        log.write("END\n")
    session.close()


# The SQL is built from this module's own constants and counters, never from outside input.
def round_(session: Session, log: TextIO, *, me: str, own: str, other: str, value: str) -> None:
    rows, error = session.query(
        f"INSERT INTO people ({own}, writer) VALUES ('{value}', '{me}') RETURNING id;"  # noqa: S608
    )
    if error or len(rows) != 1:
        log.write(f"F write {error or rows}\n")
        return
    row_id = rows[0]
    log.write(f"W {row_id} {value}\n")
    rows, error = session.query(f"SELECT {own} FROM people WHERE id = {row_id};")  # noqa: S608
    log.write("R\n" if not error and rows == [value] else f"F read-own {error or rows}\n")
    rows, error = session.query(
        f"SELECT coalesce({own}, '<null>') FROM people WHERE writer = '{other}' ORDER BY id DESC LIMIT 1;"  # noqa: S608
    )
    ok = not error and (rows == [] or (len(rows) == 1 and rows[0] not in ("", "<null>")))
    log.write("R\n" if ok else f"F read-other {error or rows}\n")


if __name__ == "__main__":
    main()
