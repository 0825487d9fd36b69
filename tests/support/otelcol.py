"""A real OpenTelemetry Collector (hack/otelcol, built by hack/build-otelcol.sh in `make deps`) as the
tests' OTLP receiver: its OTLP/HTTP receiver on a free loopback port, its file exporter writing every
request it received (traces and metrics) as one OTLP JSON line; stopped (and waited for) at the end.
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
from tests.support.otlp import Point, Span
from tests.support.prometheus import free_port

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    """The cached binary. Not built: the test reports itself not run, except on CI (CI=true), where
    `make test` builds it first, so a missing binary there is a failure."""
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-otelcol.sh"), "--cached-only"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 3:
        reason = (
            "the OpenTelemetry Collector is not built; `make deps` builds it (hack/build-otelcol.sh, ~5 min)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, but {reason}")
        pytest.skip(f"not run: {reason}")
    if done.returncode != 0:
        pytest.fail(f"hack/build-otelcol.sh failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


def _value(any_value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as Python (its 64-bit integers are strings in JSON)."""
    for kind, value in any_value.items():
        return int(value) if kind == "intValue" else value
    return None


def _attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value") or {}) for a in items or []}


@dataclass
class Collector:
    otlp: str  # the OTLP/HTTP endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT
    output: Path  # the file exporter's JSON lines

    def _lines(self) -> list[dict[str, Any]]:
        if not self.output.exists():
            return []
        text = self.output.read_text()
        # Only whole lines: the exporter may be writing the next one.
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]

    def spans(self) -> list[Span]:
        return [
            Span(
                name=s["name"],
                trace_id=s["traceId"],
                span_id=s["spanId"],
                parent_id=s.get("parentSpanId", ""),
                attributes=_attributes(s.get("attributes")),
            )
            for line in self._lines()
            for resource in line.get("resourceSpans", [])
            for scope in resource.get("scopeSpans", [])
            for s in scope.get("spans", [])
        ]

    def trace(self, trace_id: str, *, at_least: int, timeout: float = 30) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            found = [s for s in self.spans() if s.trace_id == trace_id]
            if len(found) >= at_least:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} spans of trace {trace_id} after {timeout}s")
            time.sleep(0.2)

    def points(self, *, until: str, timeout: float = 30) -> list[Point]:
        """Every data point received, in order of arrival (a metric exported twice is there twice),
        once one of the metric `until` has arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._points()
            if any(p.name == until for p in found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no {until} after {timeout}s, only {sorted({p.name for p in found})}")
            time.sleep(0.2)

    def _points(self) -> list[Point]:
        found = []
        for line in self._lines():
            for resource in line.get("resourceMetrics", []):
                service = _attributes(resource.get("resource", {}).get("attributes")).get("service.name")
                for scope in resource.get("scopeMetrics", []):
                    for metric in scope.get("metrics", []):
                        kind = "sum" if "sum" in metric else "gauge"
                        data = metric.get(kind) or {}
                        for p in data.get("dataPoints", []):
                            value = float(p["asInt"]) if "asInt" in p else float(p.get("asDouble", 0))
                            found.append(
                                Point(
                                    name=metric["name"],
                                    kind=kind,
                                    value=value,
                                    attributes=_attributes(p.get("attributes")),
                                    service=str(service),
                                    monotonic=bool(data.get("isMonotonic")),
                                )
                            )
        return found


@contextmanager
def running(workdir: Path, *, timeout: float = 30) -> Iterator[Collector]:
    port = free_port()
    output = workdir / "otlp.jsonl"
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
        "exporters": {"file": {"path": str(output), "flush_interval": "100ms"}},
        "service": {
            "pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["file"]},
                "metrics": {"receivers": ["otlp"], "exporters": ["file"]},
            },
            # Its own metrics off: nothing listens on the collector's fixed default port 8888.
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
    }
    path = workdir / "otelcol.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    collector = Collector(otlp=f"http://127.0.0.1:{port}", output=output)

    def ready(http: httpx2.Client) -> bool:
        # An empty export request: answered once the receiver and its pipelines are up.
        return http.post(f"{collector.otlp}/v1/traces", json={}).status_code == 200

    with processes.serving(
        "otelcol",
        [binary(), "--config", str(path)],
        log=workdir / "otelcol.log",
        ready=ready,
        timeout=timeout,
    ):
        yield collector
