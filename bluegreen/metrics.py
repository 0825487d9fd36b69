"""Release metrics, pushed to a Prometheus Pushgateway when one is configured, and sent as OTLP
metrics when OTEL_EXPORTER_OTLP_ENDPOINT is (bluegreen.telemetry; the same names, with app and
namespace as attributes; a counter there is what the phase added: 1).

`--pushgateway URL` or BLUEGREEN_PUSHGATEWAY. Each app is one group (job="bluegreen", app, namespace);
a phase pushes when it starts (in progress, its deadline) and when it ends (result, timings, live
colour). The counters live in the Pushgateway: the current values are read back and pushed plus one
(the app's lock serialises the phases that count). The text exposition format over plain HTTP: no
client library. A Pushgateway that cannot be reached is a warning, never a failed release.
Scrape the Pushgateway with `honor_labels: true`; alert rules: examples/prometheus/.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple
from urllib.parse import quote

from bluegreen import correlation, telemetry
from bluegreen.model import Reporter, Result

ENV = "BLUEGREEN_PUSHGATEWAY"
JOB = "bluegreen"
# A release that reports no end this long after its own deadline is stuck (or was killed).
SLACK = 300.0

KINDS: dict[str, tuple[str, str]] = {
    "bluegreen_releases_total": ("counter", "Releases and switches that ended, by phase and result."),
    "bluegreen_rollbacks_total": ("counter", "Rollbacks, by reason: watch (automatic) or manual."),
    "bluegreen_switch_duration_seconds": (
        "gauge",
        "The last switch: api = the write's round trip, converged = write until verified.",
    ),
    "bluegreen_gate_duration_seconds": ("gauge", "How long the last gate took, by its result."),
    "bluegreen_live_color": ("gauge", "1 for the colour that takes the traffic, 0 for the other."),
    "bluegreen_release_in_progress": ("gauge", "1 while a phase that changes the app runs."),
    "bluegreen_release_deadline_timestamp_seconds": (
        "gauge",
        "When the running phase must have ended: its rollout, gate and watch timeouts from its start.",
    ),
    "bluegreen_last_switch_timestamp_seconds": ("gauge", "When traffic last moved (switch or rollback)."),
    "bluegreen_last_deploy_timestamp_seconds": ("gauge", "When the idle colour was last deployed."),
}
COUNTERS = ("bluegreen_releases_total", "bluegreen_rollbacks_total")
Counters = dict[tuple[str, frozenset[tuple[str, str]]], float]  # (name, labels) -> value


class Sample(NamedTuple):
    name: str
    value: float
    labels: dict[str, str] = {}  # noqa: RUF012  # never changed, so {} is shared


def started(*, phase: str, deadline_seconds: float, now: float) -> list[Sample]:
    return [
        Sample("bluegreen_release_in_progress", 1, {"phase": phase}),
        Sample("bluegreen_release_deadline_timestamp_seconds", now + deadline_seconds + SLACK),
    ]


def finished(result: Result, *, counters: Counters, now: float) -> list[Sample]:
    """What a phase that ended reports (pure): `counters` are the values the Pushgateway holds."""
    samples = [Sample("bluegreen_release_in_progress", 0, {"phase": result.phase})]
    if result.dry_run or result.phase == "status":
        return samples
    counts = dict(counters)

    def count(name: str, labels: dict[str, str]) -> None:
        key = (name, frozenset(labels.items()))
        counts[key] = counts.get(key, 0) + 1

    if result.phase in ("release", "switch"):
        count("bluegreen_releases_total", {"phase": result.phase, "result": result.result})
    if result.result == "rolled-back":
        count("bluegreen_rollbacks_total", {"reason": "manual" if result.phase == "rollback" else "watch"})
    for (name, labels), value in sorted(counts.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
        samples.append(Sample(name, value, dict(labels)))
    moved = result.result in ("switched", "rolled-back") and result.api_ms is not None
    if moved:
        samples.append(Sample("bluegreen_last_switch_timestamp_seconds", now))
    for measure, ms in (("api", result.api_ms), ("converged", result.converged_ms)):
        if ms is not None:
            samples.append(Sample("bluegreen_switch_duration_seconds", ms / 1000, {"measure": measure}))
    gate = result.details.get("gate")
    if isinstance(gate, dict) and gate.get("duration_seconds") is not None:
        judged = {"result": str(gate.get("result", ""))}
        samples.append(Sample("bluegreen_gate_duration_seconds", float(gate["duration_seconds"]), judged))
    if result.phase in ("deploy", "release") and result.changes:
        samples.append(Sample("bluegreen_last_deploy_timestamp_seconds", now))
    if result.active_color in ("blue", "green"):
        for color in ("blue", "green"):
            samples.append(
                Sample("bluegreen_live_color", float(color == result.active_color), {"color": color})
            )
    return samples


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(samples: Iterable[Sample]) -> str:
    """The Prometheus text format, one HELP and TYPE per metric (pure)."""
    by_name: dict[str, list[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    lines: list[str] = []
    for name, group in by_name.items():
        kind, text = KINDS[name]
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for s in group:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            value = "NaN" if math.isnan(s.value) else repr(float(s.value))
            lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return "\n".join(lines) + "\n"


class Pushgateway:
    def __init__(self, url: str, *, app: str, namespace: str, timeout: float = 5.0) -> None:
        self.group = f"{url.rstrip('/')}/metrics/job/{JOB}/app/{quote(app, safe='')}/namespace/{quote(namespace, safe='')}"
        self.base = url.rstrip("/")
        self.app = app
        self.namespace = namespace
        self.timeout = timeout

    def counters(self) -> Counters:
        """The counters this app's group holds now (empty for a new group)."""
        import httpx2

        body = httpx2.get(f"{self.base}/api/v1/metrics", timeout=self.timeout).raise_for_status().json()
        found: Counters = {}
        for group in body.get("data") or []:
            labels = group.get("labels") or {}
            if (labels.get("job"), labels.get("app"), labels.get("namespace")) != (
                JOB,
                self.app,
                self.namespace,
            ):
                continue
            for name in COUNTERS:
                for metric in (group.get(name) or {}).get("metrics") or []:
                    own = {
                        k: v
                        for k, v in (metric.get("labels") or {}).items()
                        if k not in ("job", "app", "namespace", "instance")
                    }
                    found[(name, frozenset(own.items()))] = float(metric.get("value", 0))
        return found

    def push(self, samples: list[Sample]) -> None:
        """POST: replaces the pushed metrics of the same names in this group, keeps the others."""
        import httpx2

        httpx2.post(
            self.group,
            content=exposition(samples).encode(),
            headers={"Content-Type": "text/plain; version=0.0.4"},
            timeout=self.timeout,
        ).raise_for_status()


def observed(
    url: str | None,
    *,
    app: str,
    namespace: str,
    phase: str,
    deadline_seconds: float,
    reporter: Reporter,
    run: Callable[[], Result],
    clock: Callable[[], float] = time.time,
    otlp: bool = False,
) -> Result:
    """Run one phase, reporting its metrics before and after: pushed when `url` names a
    Pushgateway, recorded as OTLP metrics when `otlp`."""
    if not (url or otlp) or not app or not namespace:
        return run()
    gateway = Pushgateway(url, app=app, namespace=namespace) if url else None

    def report(samples: Callable[[Counters], list[Sample]], *, counted: bool = False) -> None:
        if gateway is not None:
            _quietly(
                reporter,
                f"push metrics to {gateway.base}",
                lambda: gateway.push(samples(gateway.counters() if counted else {})),
            )
        if otlp:
            # Counted from none: a counter over OTLP is what this phase adds.
            points = [_point(s, app=app, namespace=namespace) for s in samples({})]
            _quietly(reporter, "send OTLP metrics", lambda: telemetry.record(points))

    report(lambda _: started(phase=phase, deadline_seconds=deadline_seconds, now=clock()))
    try:
        result = run()
    except Exception:
        # The phase stopped with an error (the cluster, a conflict): counted as a result `error`.
        failed = Result(phase=phase, result="error", app=app, namespace=namespace)
        report(lambda counters: finished(failed, counters=counters, now=clock()), counted=True)
        raise
    except BaseException:
        # Interrupted (SIGTERM, Ctrl-C): no longer in progress, nothing counted.
        report(lambda _: [Sample("bluegreen_release_in_progress", 0, {"phase": phase})])
        raise
    report(lambda counters: finished(result, counters=counters, now=clock()), counted=True)
    return result


def _point(sample: Sample, *, app: str, namespace: str) -> tuple[str, str, str, float, dict[str, str]]:
    kind, description = KINDS[sample.name]
    return sample.name, kind, description, sample.value, {"app": app, "namespace": namespace, **sample.labels}


def _quietly(reporter: Reporter, what: str, push: Callable[[], Any]) -> None:
    try:
        push()
    except Exception as error:  # metrics never fail a release
        reporter.warning(f"could not {what}: {type(error).__name__}: {error}")


def run(url: str | None, options: Any, reporter: Reporter) -> Result:
    """options.run(options), observed: its span (telemetry.py, when OTLP is configured) and its metrics."""
    warning = telemetry.start()
    if warning:
        reporter.warning(warning)
    name = type(options).__name__.removesuffix("Options").lower()
    root = {
        "bluegreen.app": options.target.app,
        "bluegreen.namespace": options.target.namespace,
        "bluegreen.correlation_id": correlation.correlation_id(),
    }
    try:
        with telemetry.span(f"bluegreen {name}", **root) as span:
            result = _pushed(url, options, reporter)
            telemetry.note(
                span,
                **{
                    "bluegreen.result": result.result,
                    "bluegreen.active_color": result.active_color,
                    "bluegreen.api_ms": result.api_ms,
                    "bluegreen.converged_ms": result.converged_ms,
                },
            )
            return result
    finally:
        telemetry.flush()


def _pushed(url: str | None, options: Any, reporter: Reporter) -> Result:
    from bluegreen import options as phases

    name = type(options).__name__.removesuffix("Options").lower()
    writes = getattr(options, "writes", None)
    otlp = telemetry.metering()
    if not (url or otlp) or name == "status" or (writes is not None and writes.dry_run):
        return phases.run(options, reporter)
    deadline = float(options.target.timeout)
    checks = getattr(options, "checks", None)
    if checks is not None:
        config = checks.load()  # a bad file fails here as it would in the phase, before any push
        if name in ("gate", "release"):
            deadline += config.gate.deadline
        if name in ("watch", "release"):
            deadline += config.watch.duration
    return observed(
        url,
        app=options.target.app,
        namespace=options.target.namespace,
        phase=name,
        deadline_seconds=deadline,
        reporter=reporter,
        run=lambda: phases.run(options, reporter),
        otlp=otlp,
    )
