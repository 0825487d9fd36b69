"""Spans and metric points as the tests read them, from either real receiver: the OpenTelemetry
Collector (tests/support/otelcol.py, on CI) or Jaeger (tests/support/jaeger.py, opt-in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for none
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Point:
    """One data point of an OTLP metric."""

    name: str
    kind: str  # "sum" or "gauge"
    value: float
    attributes: dict[str, Any] = field(default_factory=dict)
    service: str = ""  # the resource's service.name
    monotonic: bool = False
