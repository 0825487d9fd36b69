"""A real Jaeger (cmd/jaeger, built by hack/build-jaeger.sh) as the tests' OTLP receiver.

Started with its in-memory storage, the OTLP/HTTP receiver and the query API on free loopback ports
(nothing on Jaeger's fixed default ports); stopped (and waited for) when the block ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support import processes
from tests.support.otlp import Span
from tests.support.prometheus import free_port

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    """The cached binary; its build is opt-in (`make jaeger`): it took 32 minutes on 2 shared cores,
    more than CI's whole budget allows, so without it the Jaeger test reports itself not run."""
    build = os.environ.get("BLUEGREEN_BUILD_JAEGER") == "1"
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-jaeger.sh"), *([] if build else ["--cached-only"])],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 3:
        pytest.skip("not run: Jaeger is not built here; `make jaeger` builds it (about 30 min on 2 cores)")
    if done.returncode != 0:
        pytest.fail(f"hack/build-jaeger.sh failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Jaeger:
    otlp: str  # the OTLP/HTTP endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT
    query: str  # the query API

    def trace(self, trace_id: str, *, at_least: int, timeout: float = 60) -> list[Span]:
        """The spans of `trace_id` once at least `at_least` have arrived, as the tests read them."""
        return [_span(s) for s in self.raw_trace(trace_id, at_least=at_least, timeout=timeout)]

    def raw_trace(self, trace_id: str, *, at_least: int, timeout: float = 60) -> list[dict[str, Any]]:
        """The spans of `trace_id` as Jaeger's query API returns them."""
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        with httpx2.Client(timeout=5) as http:
            while True:
                response = http.get(f"{self.query}/api/traces/{trace_id}")
                if response.status_code == 200:
                    data = response.json().get("data") or []
                    spans = [s for t in data for s in t.get("spans", [])]
                    if len(spans) >= at_least:
                        return spans
                if time.monotonic() > deadline:
                    raise AssertionError(f"{len(spans)} spans of trace {trace_id} after {timeout}s")
                time.sleep(0.5)


def _span(raw: dict[str, Any]) -> Span:
    parents = [r["spanID"] for r in raw.get("references", []) if r.get("refType") == "CHILD_OF"]
    return Span(
        name=raw["operationName"],
        trace_id=raw["traceID"].rjust(32, "0"),
        span_id=raw["spanID"].rjust(16, "0"),
        parent_id=parents[0].rjust(16, "0") if parents else "",
        attributes={t["key"]: t["value"] for t in raw.get("tags", [])},
    )


@contextmanager
def running(workdir: Path, *, timeout: float = 60) -> Iterator[Jaeger]:
    otlp, query, grpc = free_port(), free_port(), free_port()
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memory": {"memory": {"max_traces": 1000}}}},
            "jaeger_query": {
                "storage": {"traces": "memory"},
                "http": {"endpoint": f"127.0.0.1:{query}"},
                "grpc": {"endpoint": f"127.0.0.1:{grpc}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp}"}}}},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory"}},
    }
    path = workdir / "jaeger.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    jaeger = Jaeger(otlp=f"http://127.0.0.1:{otlp}", query=f"http://127.0.0.1:{query}")

    def ready(http: httpx2.Client) -> bool:
        return (
            http.get(f"{jaeger.query}/api/services").status_code == 200
            and http.post(f"{jaeger.otlp}/v1/traces", json={}).status_code < 500
        )

    with processes.serving(
        "jaeger", [binary(), "--config", str(path)], log=workdir / "jaeger.log", ready=ready, timeout=timeout
    ):
        yield jaeger
