"""Watch after a switch, against real sample apps, a real Prometheus and the local cluster: errors that
start after the switch spend the budget and roll traffic back; a healthy run leaves it alone.

Rounds are counted, not timed: errors are switched on from inside the watch's own round callback,
so "within two intervals" is a count of rounds, whatever the machine's speed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from bluegreen.config import Config, parse
from bluegreen.gate import Round, WatchResult
from bluegreen.model import AppSpec, Color
from bluegreen.phases.watch import run_watch
from tests.support import prometheus as prom_support
from tests.support import sampleapp
from tests.support.apps import COLOR_LABEL, create_app
from tests.support.prometheus import ERROR_RATE, P95, Prometheus


@pytest.fixture
def apps() -> Iterator[dict[str, sampleapp.SampleApp]]:
    with sampleapp.running("blue", "green") as running:
        yield running


def rollback_via_engine(kube: Client, app: AppSpec) -> Callable[[str], object]:
    """The engine's own rollback phase, recording the reasons it was called with."""
    from bluegreen.phases import rollback as engine
    from bluegreen.phases.context import Context

    reasons: list[str] = []

    def rollback(reason: str) -> object:
        reasons.append(reason)
        return engine.run(Context(kube=kube, app=app), reason=reason)

    rollback.reasons = reasons  # type: ignore[attr-defined]
    return rollback


def live_color(kube: Client, app: AppSpec) -> str:
    svc = kube.get(Service, app.service, namespace=app.namespace)
    assert svc.spec is not None and svc.spec.selector is not None
    return str(svc.spec.selector[COLOR_LABEL])


def probe_config(apps: dict[str, sampleapp.SampleApp], watch: str) -> Config:
    return parse(
        f"""
checks:
  - name: pods
    kind: kubernetes
  - name: probe
    kind: probe
    urls: {{blue: "{apps["blue"].url}/api/orders", green: "{apps["green"].url}/api/orders"}}
    requests: 20
watch: {{interval: 1s, failures: 2, p95-tolerance: 50%, {watch}}}
"""
    )


def errors_from_round(
    n: int, app: sampleapp.SampleApp, rate: float
) -> tuple[Callable[[Round], None], list[int]]:
    """A round callback that starts errors after round `n`; it records how many rounds there were."""
    count = [0]

    def on_round(_: Round) -> None:
        count[0] += 1
        if count[0] == n:
            app.set(error_rate=rate)

    return on_round, count


def test_watch_rolls_back_within_two_intervals_when_errors_start(
    apps: dict[str, sampleapp.SampleApp], kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="green")  # just switched: green live, blue kept
    app = AppSpec(name="shop", namespace=namespace)
    on_round, rounds = errors_from_round(2, apps["green"], 0.1)
    rollback = rollback_via_engine(kube, app)
    report = run_watch(
        probe_config(apps, "duration: 5m"),
        app,
        live=Color.GREEN,
        rollback=rollback,
        kube=kube,
        on_round=on_round,
    )
    assert report.result is WatchResult.ROLLED_BACK and report.rolled_back
    assert report.exit_code == 1
    assert rounds[0] - 2 == 2  # errors began after round 2; rolled back after the second bad interval
    # On a busy machine the p95 threshold may break too; the error rate must be named either way.
    assert report.reason.startswith("error budget spent: checks failed in 2 consecutive intervals (probe: ")
    assert "error_rate=0.1 (broken: error_rate < 0.005)" in report.reason
    assert rollback.reasons == [report.reason]  # type: ignore[attr-defined]
    assert live_color(kube, app) == "blue"
    # The release the watch rolled back from is rejected: a re-run of switch will not promote it again.
    green = kube.get(Deployment, "shop-green", namespace=namespace)
    assert green.metadata is not None and green.metadata.annotations is not None
    assert "error budget spent" in json.loads(green.metadata.annotations["bluegreen.io/rejected"])["reason"]


def test_no_rollback_on_a_healthy_run(
    apps: dict[str, sampleapp.SampleApp], kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="green")
    app = AppSpec(name="shop", namespace=namespace)
    rollback = rollback_via_engine(kube, app)
    report = run_watch(
        probe_config(apps, "duration: 4s"), app, live=Color.GREEN, rollback=rollback, kube=kube
    )
    assert report.result is WatchResult.HEALTHY and not report.rolled_back
    assert report.exit_code == 0
    assert len(report.rounds) >= 2
    assert rollback.reasons == []  # type: ignore[attr-defined]
    assert live_color(kube, app) == "green"


def test_no_auto_rollback_reports_the_spent_budget_and_leaves_traffic(
    apps: dict[str, sampleapp.SampleApp], kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="green")
    app = AppSpec(name="shop", namespace=namespace)
    apps["green"].set(error_rate=0.5)
    rollback = rollback_via_engine(kube, app)
    config = probe_config(apps, "duration: 5m, auto-rollback: false")
    report = run_watch(config, app, live=Color.GREEN, rollback=rollback, kube=kube)
    assert report.result is WatchResult.BUDGET_SPENT and not report.rolled_back
    assert report.exit_code == 1
    assert rollback.reasons == []  # type: ignore[attr-defined]
    assert live_color(kube, app) == "green"


def test_watch_with_prometheus_rolls_back_on_errors(
    apps: dict[str, sampleapp.SampleApp], tmp_path: Path, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="green")
    app = AppSpec(name="shop", namespace=namespace)
    with prom_support.running(tmp_path, {c: a.port for c, a in apps.items()}) as prometheus:
        load = sampleapp.Load([apps["green"].url, apps["blue"].url]).start()
        try:
            prometheus.wait_for('sum(rate(http_requests_total{color="green"}[3s])) > 0')
            on_round, _ = errors_from_round(1, apps["green"], 0.2)
            rollback = rollback_via_engine(kube, app)
            report = run_watch(
                prometheus_config(prometheus),
                app,
                live=Color.GREEN,
                rollback=rollback,
                kube=kube,
                on_round=on_round,
            )
        finally:
            load.stop()
    assert report.result is WatchResult.ROLLED_BACK
    assert "errors: error_rate=0." in report.reason
    assert live_color(kube, app) == "blue"


def prometheus_config(prometheus: Prometheus) -> Config:
    return parse(
        f"""
checks:
  - name: errors
    kind: prometheus
    url: {prometheus.url}
    measure: error-rate
    query: '{ERROR_RATE}'
watch: {{duration: 5m, interval: 1s, window: 3s, failures: 2}}
"""
    )


def test_a_watch_started_as_its_own_run_after_the_switch_judges_against_the_switchs_baseline(
    apps: dict[str, sampleapp.SampleApp], tmp_path: Path, kube: Client, namespace: str
) -> None:
    """The release workflow's watch is its own job, after an approval: by then the previous colour has
    had no traffic for longer than the window, so its p95 is no data. The switch recorded the live
    colour's numbers in the history; the watch judges against those and ends healthy."""
    from bluegreen.phases import checked, switch
    from bluegreen.phases.context import Context
    from bluegreen.phases.watch import measure_baseline

    create_app(kube, namespace, "shop", active="blue")
    app = AppSpec(name="shop", namespace=namespace)
    with prom_support.running(tmp_path, {c: a.port for c, a in apps.items()}) as prometheus:
        config = baseline_config(prometheus)
        before = sampleapp.Load([apps["blue"].url]).start()  # traffic on blue, the live colour
        try:
            prometheus.wait_for(P95.replace("{{color}}", "blue").replace("{{window}}", "3s"))
            switched = switch.run(
                Context(kube=kube, app=app),
                to=Color.GREEN,  # no deploy recorded a candidate: the colour is named
                baseline=lambda live: measure_baseline(config, app, live=live, kube=kube),
            )
        finally:
            before.stop()
        assert switched.result == "switched"
        recorded = switched.details["history"][0]["baseline"]
        assert recorded["color"] == "blue" and recorded["checks"]["latency"]["p95"] > 0

        after = sampleapp.Load([apps["green"].url]).start()  # traffic follows the switch to green
        try:
            # The approval: longer than the window, so blue's own numbers are gone.
            gone = 'sum(rate(http_requests_total{color="blue"}[3s])) == 0'
            prometheus.wait_for(gone, timeout=30)
            assert prometheus.query(P95.replace("{{color}}", "blue").replace("{{window}}", "3s")) is None
            watched = checked.watch(Context(kube=kube, app=app), config)  # a new run, as a new job
        finally:
            after.stop()
    assert watched.result == "passed", watched.messages
    rounds = watched.details["watch"]["rounds"]
    latency = [c for r in rounds for c in r["checks"] if c["check"] == "latency"]
    assert latency and all(c["phase"] == "successful" for c in latency)
    assert all(c["values"]["baseline_p95"] == recorded["checks"]["latency"]["p95"] for c in latency)
    assert live_color(kube, app) == "green"


def baseline_config(prometheus: Prometheus) -> Config:
    return parse(
        f"""
checks:
  - name: latency
    kind: prometheus
    url: {prometheus.url}
    measure: p95
    query: '{P95}'
watch: {{duration: 4s, interval: 1s, window: 3s, failures: 2, p95-tolerance: 200%}}
"""
    )


def drain_watch_config(prometheus: Prometheus) -> Config:
    query = 'sum by (instance) (rate(http_requests_total{color="{{color}}"}[3s]))'
    return parse(
        "checks:\n  - {name: pods, kind: kubernetes}\n"
        "watch: {duration: 2s, interval: 1s, window: 3s}\n"
        "drain:\n  http: {}\n  old-traffic:\n"
        f"    url: {prometheus.url}\n    query: '{query}'\n    within: 3s\n"
    )


def test_after_the_watch_the_old_colours_lingering_traffic_is_named_then_seen_drained(
    apps: dict[str, sampleapp.SampleApp], tmp_path: Path, kube: Client, namespace: str
) -> None:
    """Clients that stay on the old colour after the switch (here: a load sent to blue's own address,
    as pinned keep-alive clients would) are reported by Prometheus series once `within` has passed;
    once they stop, the old colour is reported drained. Neither rolls back."""
    from bluegreen.phases import checked, switch
    from bluegreen.phases.context import Context

    create_app(kube, namespace, "shop", active="blue")
    app = AppSpec(name="shop", namespace=namespace)
    with prom_support.running(tmp_path, {c: a.port for c, a in apps.items()}) as prometheus:
        config = drain_watch_config(prometheus)
        pinned = sampleapp.Load([apps["blue"].url]).start()
        try:
            prometheus.wait_for('sum(rate(http_requests_total{color="blue"}[3s])) > 0')
            assert switch.run(Context(kube=kube, app=app), to=Color.GREEN).result == "switched"
            lingering = checked.watch(Context(kube=kube, app=app), config)
        finally:
            pinned.stop()
        prometheus.wait_for('sum(rate(http_requests_total{color="blue"}[3s])) == 0', timeout=30)
        drained = checked.watch(Context(kube=kube, app=app), config)
    old = lingering.details["old_traffic"]
    assert lingering.result == "passed" and old["state"] == "lingering", lingering.details
    assert list(old["lingering"]) == [f"instance=127.0.0.1:{apps['blue'].port}"], old
    assert any(m.startswith("old traffic lingers: blue still receives") for m in lingering.messages)
    assert drained.details["old_traffic"]["state"] == "drained", drained.details
    assert live_color(kube, app) == "green"
