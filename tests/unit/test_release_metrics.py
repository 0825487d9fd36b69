"""Release metrics: what each outcome reports, in the text format (pure), a lost Pushgateway, and what
goes to the OpenTelemetry SDK when metrics go over OTLP."""

from __future__ import annotations

import pytest

from bluegreen import metrics, telemetry
from bluegreen.model import Result
from tests.support.prometheus import free_port


def values(samples: list[metrics.Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def test_a_release_counts_on_from_the_pushed_counters_and_reports_its_timings() -> None:
    result = Result(
        phase="release", result="switched", app="shop", namespace="prod", active_color="green", api_ms=12.0
    )
    result.converged_ms, result.changes = 340.0, ["Deployment shop-green: image 2.0"]
    result.details["gate"] = {"result": "successful", "duration_seconds": 61.5}
    held = {("bluegreen_releases_total", frozenset({("phase", "release"), ("result", "switched")})): 4.0}
    got = values(metrics.finished(result, counters=held, now=1000.0))
    assert got[("bluegreen_releases_total", (("phase", "release"), ("result", "switched")))] == 5
    assert got[("bluegreen_switch_duration_seconds", (("measure", "converged"),))] == 0.34
    assert got[("bluegreen_gate_duration_seconds", (("result", "successful"),))] == 61.5
    assert got[("bluegreen_live_color", (("color", "green"),))] == 1
    assert got[("bluegreen_live_color", (("color", "blue"),))] == 0
    assert got[("bluegreen_last_switch_timestamp_seconds", ())] == 1000.0
    assert got[("bluegreen_last_deploy_timestamp_seconds", ())] == 1000.0
    assert got[("bluegreen_release_in_progress", (("phase", "release"),))] == 0
    assert not any(name == "bluegreen_rollbacks_total" for name, _ in got)


def test_rollbacks_are_counted_by_who_rolled_back() -> None:
    by_watch = Result(
        phase="release", result="rolled-back", app="shop", namespace="prod", active_color="blue"
    )
    manual = Result(phase="rollback", result="rolled-back", app="shop", namespace="prod", active_color="blue")
    assert (
        values(metrics.finished(by_watch, counters={}, now=0))[
            ("bluegreen_rollbacks_total", (("reason", "watch"),))
        ]
        == 1
    )
    assert (
        values(metrics.finished(manual, counters={}, now=0))[
            ("bluegreen_rollbacks_total", (("reason", "manual"),))
        ]
        == 1
    )


def test_the_text_format_has_one_help_and_type_per_metric() -> None:
    text = metrics.exposition(
        [
            metrics.Sample("bluegreen_live_color", 1, {"color": "green"}),
            metrics.Sample("bluegreen_live_color", 0, {"color": "blue"}),
        ]
    )
    assert text.splitlines() == [
        "# HELP bluegreen_live_color 1 for the colour that takes the traffic, 0 for the other.",
        "# TYPE bluegreen_live_color gauge",
        'bluegreen_live_color{color="green"} 1.0',
        'bluegreen_live_color{color="blue"} 0.0',
    ]


class Warnings:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def progress(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        self.seen.append(message)

    def stage(self, name: str) -> None:
        pass


def test_a_pushgateway_that_does_not_answer_is_a_warning_never_a_failed_release() -> None:
    reporter = Warnings()
    done = Result(phase="switch", result="switched", app="shop", namespace="prod")
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    result = metrics.observed(
        url,
        app="shop",
        namespace="prod",
        phase="switch",
        deadline_seconds=60,
        reporter=reporter,
        run=lambda: done,
    )
    assert result is done
    assert len(reporter.seen) == 2 and all(f"could not push metrics to {url}" in w for w in reporter.seen)


def test_over_otlp_a_phase_that_failed_counts_one_error_and_is_no_longer_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK's own in-memory reader in place of the OTLP exporter: what `record` hands the SDK.
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

    reader = InMemoryMetricReader()
    monkeypatch.setattr(telemetry._state, "meters", MeterProvider(metric_readers=[reader]))
    monkeypatch.setattr(telemetry, "_instruments", {})

    def broken() -> Result:
        raise RuntimeError("the cluster went away")

    with pytest.raises(RuntimeError):
        metrics.observed(
            None, app="shop", namespace="prod", phase="switch", deadline_seconds=60,
            reporter=Warnings(), run=broken, clock=lambda: 1000.0, otlp=True,
        )  # fmt: skip
    data = reader.get_metrics_data()
    assert data is not None
    got = {
        (m.name, tuple(sorted((p.attributes or {}).items()))): p.value
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        for p in m.data.data_points
        if isinstance(p, NumberDataPoint)
    }
    shop = (("app", "shop"), ("namespace", "prod"))
    assert got[("bluegreen_releases_total", (*shop, ("phase", "switch"), ("result", "error")))] == 1
    assert got[("bluegreen_release_in_progress", (*shop, ("phase", "switch")))] == 0
    assert got[("bluegreen_release_deadline_timestamp_seconds", shop)] == 1000.0 + 60 + metrics.SLACK
    assert not any(name == "bluegreen_live_color" for name, _ in got)
