"""A server a test starts as a process: waited for until it answers, stopped when the block ends."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx2


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    ready: Callable[[httpx2.Client], bool],
    timeout: float,
    poll: float = 0.2,
) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` started in its own session with its output in `log`, once `ready` says it serves; it
    exiting first, or not being ready within `timeout`, fails with the log's tail."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        with httpx2.Client(timeout=1) as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited {process.returncode}: {log.read_text()[-3000:]}")
                try:
                    if ready(http):
                        break
                except (httpx2.HTTPError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout}s: {log.read_text()[-3000:]}")
                time.sleep(poll)
        yield process
    finally:
        stop(process)
