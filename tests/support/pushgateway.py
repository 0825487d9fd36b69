"""A real Pushgateway (Debian's `prometheus-pushgateway`, see hack/install-pushgateway.sh) for the tests.

Started on a free loopback port with nothing persisted; stopped (and waited for) when the block ends.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from tests.support.prometheus import free_port


@contextmanager
def running(workdir: Path, *, timeout: float = 30) -> Iterator[int]:
    """The port of a Pushgateway that runs until the block ends."""
    binary = shutil.which("prometheus-pushgateway")
    if not binary:
        pytest.fail(
            "no `prometheus-pushgateway` on PATH: run `bash hack/install-pushgateway.sh` (or `make deps`)"
        )
    port = free_port()
    log = workdir / "pushgateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        with httpx2.Client(timeout=1) as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"pushgateway exited {process.returncode}: {log.read_text()[-2000:]}")
                try:
                    if http.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pushgateway not ready after {timeout}s: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
