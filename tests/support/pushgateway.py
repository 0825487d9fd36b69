"""A real Pushgateway (Debian's `prometheus-pushgateway`, see hack/install-pushgateway.sh) for the tests.

Started on a free loopback port with nothing persisted; stopped (and waited for) when the block ends.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import processes
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
    with processes.serving(
        "pushgateway",
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        log=workdir / "pushgateway.log",
        ready=lambda http: http.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200,
        timeout=timeout,
        poll=0.1,
    ):
        yield port
