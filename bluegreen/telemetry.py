"""Traces of a release over OTLP/HTTP: a span per phase, per check round, per switch write and
verification, with the measurements as attributes.

On only when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: only then is
the OpenTelemetry SDK imported (`pip install 'bluegreen[otel]'`), configured by the standard OTEL_*
variables. Off, every span is a no-op costing one attribute check. The release metrics
(bluegreen.metrics) go the same way as OTLP metrics when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set: `record` them, each phase flushes at its start and end. A parent TRACEPARENT in the
environment becomes the release's parent, so a CI system's trace includes it; without one the
trace ID is the one derived from the correlation ID (bluegreen.correlation), as in the headers sent
to the app.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from bluegreen import correlation

P = ParamSpec("P")
T = TypeVar("T")
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
METRIC_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")


class _State:
    tracer: Any = None
    provider: Any = None
    parent: Any = None  # the OpenTelemetry Context of TRACEPARENT, for root spans
    problem: str = ""  # why tracing is off although asked for (told once, as a warning)
    meters: Any = None  # the MeterProvider, when metrics go over OTLP


_state = _State()
_instruments: dict[str, Any] = {}  # by metric name, made on first use


def wanted(env: Mapping[str, str] | None = None, *, signal: str = "traces") -> bool:
    env = os.environ if env is None else env
    names = METRIC_ENDPOINTS if signal == "metrics" else ENDPOINTS
    return any(env.get(name, "").strip() for name in names)


def start(env: Mapping[str, str] | None = None) -> str:
    """Set up tracing and OTLP metrics as the environment asks (once per process). Returns a warning or ""."""
    env = os.environ if env is None else env
    if _state.problem:
        return ""
    if _state.meters is None and wanted(env, signal="metrics"):
        problem = _start_metrics(env)
        if problem:
            return problem
    if _state.tracer is not None or not wanted(env):
        return ""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as error:
        return _missing(error)

    derived = int(correlation.trace_id(correlation.correlation_id(env), env), 16)

    class Derived(RandomIdGenerator):
        """A root span's trace ID is the correlation ID's, so the headers and the trace agree."""

        def generate_trace_id(self) -> int:
            return derived

    _state.parent = (
        TraceContextTextMapPropagator().extract({"traceparent": env.get("TRACEPARENT", "").strip()})
        if correlation.parent(env)
        else None
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "bluegreen"}),
        id_generator=Derived(),
    )
    # A collector that is down must not hold the release up for the SDK's default 10 s of retries
    # (at each flush and again at exit): 3 s unless the OTEL_* timeout says otherwise.
    timeouts = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    exporter = OTLPSpanExporter() if any(env.get(t) for t in timeouts) else OTLPSpanExporter(timeout=3)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _state.provider = provider
    _state.tracer = provider.get_tracer("bluegreen")
    return ""


def _start_metrics(env: Mapping[str, str]) -> str:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
    except ImportError as error:
        return _missing(error)
    timeouts = ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
    exporter = OTLPMetricExporter() if any(env.get(t) for t in timeouts) else OTLPMetricExporter(timeout=3)
    # Exported when a phase starts and ends (`record` flushes), not on a timer: a phase is one short
    # process, and a timer would only repeat the same values.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=24 * 3600 * 1000)
    _state.meters = MeterProvider(
        resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "bluegreen"}),
        metric_readers=[reader],
    )
    return ""


def _missing(error: ImportError) -> str:
    _state.problem = (
        f"OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is missing ({error.name}): "
        "no traces or OTLP metrics; install `bluegreen[otel]`"
    )
    return _state.problem


def metering() -> bool:
    """Whether `record` sends anything (metrics over OTLP are set up)."""
    return _state.meters is not None


def record(points: Iterable[tuple[str, str, str, float, Mapping[str, str]]]) -> None:
    """Record (name, "counter" or "gauge", description, value, attributes) and export them now.

    A counter's value is what this process adds (each phase is its own process: the backend sums
    them, as for any short-lived job); a gauge's is its current value.
    """
    if _state.meters is None:
        return
    meter = _state.meters.get_meter("bluegreen")
    for name, kind, description, value, attributes in points:
        instrument = _instruments.get(name)
        if instrument is None:
            make = meter.create_counter if kind == "counter" else meter.create_gauge
            instrument = _instruments[name] = make(name, description=description)
        if kind == "counter":
            instrument.add(value, dict(attributes))
        else:
            instrument.set(value, dict(attributes))
    _state.meters.force_flush(timeout_millis=3000)


def flush() -> None:
    """Send the spans so far (the end of a phase: a process may end right after)."""
    if _state.provider is not None:
        _state.provider.force_flush(timeout_millis=3000)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around the block (None when tracing is off); set more attributes with `note`."""
    if _state.tracer is None:
        yield None
        return
    from opentelemetry import trace

    context = None if trace.get_current_span().get_span_context().is_valid else _state.parent
    with _state.tracer.start_as_current_span(name, context=context, attributes=_clean(attributes)) as current:
        yield current


def note(current: Any, **attributes: Any) -> None:
    if current is not None:
        current.set_attributes(_clean(attributes))


def traced(name: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """A span around every call of the decorated function."""

    def wrap(function: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(function)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            with span(name):
                return function(*args, **kwargs)

        return call

    return wrap


def traceparent() -> str | None:
    """The current span as a W3C traceparent (the parent of a request sent now); None when off."""
    if _state.tracer is None:
        return None
    from opentelemetry import trace

    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return None
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{int(found.trace_flags):02x}"


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts: None dropped, anything else not a scalar as text."""
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in attributes.items()
        if value is not None
    }
