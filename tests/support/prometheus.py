"""A real Prometheus (Debian's `prometheus`, see hack/install-prometheus.sh) for the tests.

Started on a free loopback port with its own data directory, scraping the given sample apps every
second with the target label color=blue or color=green; stopped (and waited for) by `stop()`.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

# What the gate asks of the sample apps, in the form a user would write in bluegreen.yaml.
# `or vector(0)`: no 5xx series at all is a zero error rate, not "no data"; no requests stays NaN.
ERROR_RATE = (
    '(sum(rate(http_requests_total{color="{{color}}",code=~"5.."}[{{window}}])) or vector(0))'
    ' / sum(rate(http_requests_total{color="{{color}}"}[{{window}}]))'
)
P95 = 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{color="{{color}}"}[{{window}}])))'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        pytest.fail("no `prometheus` on PATH: run `bash hack/install-prometheus.sh` (or `make deps`)")
    return found


class Prometheus:
    def __init__(self, workdir: Path, targets: Mapping[str, int], *, pushgateway: int | None = None) -> None:
        """`targets`: colour -> the loopback port of that colour's sample app; `pushgateway`: its port."""
        self.workdir = workdir
        self.targets = dict(targets)
        self.pushgateway = pushgateway
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = workdir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {
                    "job_name": "sampleapp",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": {"color": color}}
                        for color, port in self.targets.items()
                    ],
                }
            ],
        }
        if self.pushgateway:  # honor_labels: the pushed job, app and namespace labels stay as pushed
            config["scrape_configs"].append(
                {
                    "job_name": "pushgateway",
                    "honor_labels": True,
                    "static_configs": [{"targets": [f"127.0.0.1:{self.pushgateway}"]}],
                }
            )
        path = self.workdir / "prometheus.yml"
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def start(self, *, timeout: float = 30) -> Prometheus:
        self.port = free_port()
        config = self.write_config()
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    binary(),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        with httpx2.Client(timeout=1) as http:
            while True:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"prometheus exited {self._process.returncode}: {self._log.read_text()[-2000:]}"
                    )
                try:
                    if http.get(f"{self.url}/-/ready").status_code == 200:
                        return self
                except httpx2.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"prometheus not ready after {timeout}s: {self._log.read_text()[-2000:]}"
                    )
                time.sleep(0.1)

    def query(self, promql: str) -> float | None:
        """The single value of an instant query; None for no series or NaN."""
        with httpx2.Client(timeout=5) as http:
            body = http.get(f"{self.url}/api/v1/query", params={"query": promql}).json()
        result = body["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def wait_for(self, promql: str, *, timeout: float = 60) -> float:
        """Wait until `promql` has a value (scrapes have come in), and return it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.query(promql)
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"no value for {promql} after {timeout}s")
            time.sleep(0.25)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@contextmanager
def running(
    workdir: Path, targets: Mapping[str, int], *, pushgateway: int | None = None
) -> Iterator[Prometheus]:
    prometheus = Prometheus(workdir, targets, pushgateway=pushgateway).start()
    try:
        yield prometheus
    finally:
        prometheus.stop()
