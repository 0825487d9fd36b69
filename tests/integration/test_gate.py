"""The switching gate against real things: a real Prometheus scraping real sample apps (one process
per colour on loopback) and, for the `kubernetes` check, the real local cluster with kwok pods.

Windows are seconds long here (interval 1s, min-healthy 3s, metrics window 3s) so each gate ends in
a few seconds; nothing asserts how long anything took.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from bluegreen.checks import build
from bluegreen.checks.base import Target
from bluegreen.config import Config, KubernetesCheckConfig, parse
from bluegreen.model import AppSpec, Color
from bluegreen.phases.gate import GateReport, run_gate
from bluegreen.verdict import Phase, judge
from tests.support import prometheus as prom_support
from tests.support import sampleapp
from tests.support.apps import create_app, deployment, service, wait_available
from tests.support.prometheus import ERROR_RATE, P95, Prometheus


@dataclass
class Stack:
    apps: dict[str, sampleapp.SampleApp]
    prometheus: Prometheus
    load: sampleapp.Load | None

    def start_load(self, *colors: str) -> None:
        self.load = sampleapp.Load([self.apps[c].url for c in colors]).start()
        for color in colors:  # two scrapes with traffic, so rate() has something to say
            self.prometheus.wait_for(f'sum(rate(http_requests_total{{color="{color}"}}[3s])) > 0')


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with (
        sampleapp.running("blue", "green") as apps,
        prom_support.running(tmp_path, {c: a.port for c, a in apps.items()}) as prometheus,
    ):
        running = Stack(apps=apps, prometheus=prometheus, load=None)
        try:
            yield running
        finally:
            if running.load:
                running.load.stop()


def gate_config(stack: Stack, *, extra_checks: str = "", gate: str = "") -> Config:
    return parse(
        f"""
checks:
  - name: ready
    kind: http
    url: "{stack.apps["green"].url}/health/ready"
    conditions: ['checks.db == "ok"', 'checks.redis == "ok"', 'workers.running >= 1']
  - name: error-rate
    kind: prometheus
    url: {stack.prometheus.url}
    measure: error-rate
    query: '{ERROR_RATE}'
  - name: p95
    kind: prometheus
    url: {stack.prometheus.url}
    measure: p95
    query: '{P95}'
{extra_checks}
gate:
  min-healthy: 3s
  interval: 1s
  window: 3s
  timeout: 30s
  consecutive-error-limit: 1
{gate}
"""
    )


APP = AppSpec(name="shop", namespace="unused")


def phases(report: GateReport) -> dict[str, set[Phase]]:
    found: dict[str, set[Phase]] = {}
    for round_ in report.rounds:
        for judged in round_.judged:
            found.setdefault(judged.check, set()).add(judged.phase)
    return found


def test_gate_passes_for_a_good_green(stack: Stack, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop")
    stack.start_load("blue", "green")
    config = gate_config(
        stack,
        extra_checks=f"""
  - name: pods
    kind: kubernetes
  - name: smoke
    kind: command
    command: ["{sys.executable}", "-c", "import sys; print('smoke ok for', sys.argv[1])", "{{{{color}}}}"]
""",
    )
    lines: list[str] = []
    report = run_gate(
        config, AppSpec(name="shop", namespace=namespace), live=Color.BLUE, kube=kube, progress=lines.append
    )
    assert report.phase is Phase.SUCCESSFUL, report.reason
    assert report.exit_code == 0
    assert report.healthy_for >= 3
    assert phases(report) == {
        name: {Phase.SUCCESSFUL} for name in ("ready", "error-rate", "p95", "pods", "smoke")
    }
    # Every measurement is reported, each with its values; the one-shot smoke test ran once.
    smoke = [j for r in report.rounds for j in r.judged if j.check == "smoke"]
    assert len(smoke) == 1 and smoke[0].measurement.detail == "smoke ok for green"
    pods = next(j for j in report.rounds[-1].judged if j.check == "pods")
    assert pods.measurement.values == {"pods": 2, "ready": 2, "restarts_growth": 0}
    assert any("p95 (prometheus): p95=" in line for line in lines)


def test_gate_fails_for_a_crash_looping_green(stack: Stack, kube: Client, namespace: str) -> None:
    kube.create(deployment("shop", "blue"), namespace=namespace)
    kube.create(deployment("shop", "green", fault="crashloop"), namespace=namespace)
    kube.create(service("shop", "shop", "blue"), namespace=namespace)
    kube.create(service("shop-preview", "shop", "green"), namespace=namespace)
    wait_available(kube, namespace, "shop-blue")
    config = parse("checks: [{name: pods, kind: kubernetes}]\ngate: {min-healthy: 3s, interval: 1s}")
    report = run_gate(config, AppSpec(name="shop", namespace=namespace), live=Color.BLUE, kube=kube)
    assert report.phase is Phase.FAILED
    assert report.exit_code == 1
    judged = report.rounds[-1].judged[0]
    assert "CrashLoopBackOff, 5 restarts" in judged.measurement.detail
    assert judged.measurement.values["ready"] == 0


def test_gate_fails_for_a_green_with_5_percent_errors(stack: Stack) -> None:
    stack.apps["green"].set(error_rate=0.05)
    stack.start_load("blue", "green")
    report = run_gate(gate_config(stack), APP, live=Color.BLUE)
    assert report.phase is Phase.FAILED
    assert report.reason.startswith("error-rate: error_rate=0.0")
    assert "(broken: error_rate < 0.005)" in report.reason


def test_gate_fails_for_a_slow_green(stack: Stack) -> None:
    stack.apps["green"].set(latency=0.15)  # 3x blue's 50 ms
    stack.start_load("blue", "green")
    report = run_gate(gate_config(stack), APP, live=Color.BLUE)
    assert report.phase is Phase.FAILED
    assert report.reason.startswith("p95: p95=")
    assert "(broken: p95 <= baseline_p95 * 1.2" in report.reason
    assert phases(report)["error-rate"] == {Phase.SUCCESSFUL}


def test_gate_fails_when_greens_database_is_down(stack: Stack) -> None:
    stack.apps["green"].set(db="down")
    stack.start_load("blue", "green")
    report = run_gate(gate_config(stack), APP, live=Color.BLUE)
    assert report.phase is Phase.FAILED
    assert "checks.db='down' (broken: checks.db == 'ok')" in report.reason


def test_gate_is_inconclusive_when_green_gets_no_traffic(stack: Stack) -> None:
    stack.start_load("blue")
    stack.prometheus.wait_for('sum(rate(http_requests_total{color="green"}[3s])) == 0')  # scraped, idle
    report = run_gate(gate_config(stack), APP, live=Color.BLUE)
    assert report.phase is Phase.INCONCLUSIVE
    assert report.exit_code == 1
    assert "green: the query returned NaN" in report.reason


def test_gate_is_an_error_when_prometheus_is_down(stack: Stack) -> None:
    stack.start_load("blue", "green")
    stack.prometheus.stop()
    report = run_gate(gate_config(stack), APP, live=Color.BLUE)
    assert report.phase is Phase.ERROR
    assert report.exit_code == 3
    assert "unreachable" in report.reason
    # Tolerated once (consecutive-error-limit 1), then final: an error never passes.
    assert len(report.rounds) == 2


def test_probe_gate_without_prometheus(stack: Stack) -> None:
    """The gate's own requests catch a 5% error green with no Prometheus at all."""
    config = parse(
        f"""
checks:
  - name: probe
    kind: probe
    urls: {{blue: "{stack.apps["blue"].url}/api/orders", green: "{stack.apps["green"].url}/api/orders"}}
    requests: 40
gate: {{min-healthy: 2s, interval: 1s, p95-tolerance: 50%}}
"""
    )
    assert run_gate(config, APP, live=Color.BLUE).phase is Phase.SUCCESSFUL
    stack.apps["green"].set(error_rate=0.05)
    report = run_gate(config, APP, live=Color.BLUE)
    assert report.phase is Phase.FAILED
    assert report.reason == "probe: error_rate=0.05 (broken: error_rate < 0.005)"


JOB = """
checks:
  - name: e2e
    kind: job
    timeout: {timeout}
    template:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            {node_selector}
            containers:
              - name: tests
                image: registry.local/shop-e2e:1.0
                args: ["--base-url", "http://shop-preview.{{{{namespace}}}}.svc", "--color", "{{{{color}}}}"]
gate: {{min-healthy: 0s, interval: 1s}}
"""


def test_job_check_passes_when_the_job_succeeds(kube: Client, namespace: str) -> None:
    config = parse(JOB.format(timeout="60s", node_selector=""))
    report = run_gate(config, AppSpec(name="shop", namespace=namespace), live=Color.BLUE, kube=kube)
    assert report.phase is Phase.SUCCESSFUL, report.reason
    judged = report.rounds[0].judged[0]
    assert judged.measurement.values["outcome"] == "Complete"
    # kwok simulates the pod: there is no container and no log, and the report says so.
    assert "no logs" in judged.measurement.detail and "kwok" in judged.measurement.detail
    (job,) = kube.list(Job, namespace=namespace, labels={"bluegreen.io/check": "e2e"})
    assert job.metadata is not None and job.metadata.labels is not None
    assert job.metadata.labels["bluegreen.io/color"] == "green"
    assert job.spec is not None
    container = job.spec.template.spec.containers[0]  # type: ignore[union-attr]
    assert container.args == ["--base-url", f"http://shop-preview.{namespace}.svc", "--color", "green"]


def test_job_check_fails_when_the_job_fails(kube: Client, namespace: str) -> None:
    # Pods that no node accepts never run; the Job's deadline (the check's timeout) fails it.
    config = parse(JOB.format(timeout="2s", node_selector="nodeSelector: {bluegreen.test/none: 'true'}"))
    report = run_gate(config, AppSpec(name="shop", namespace=namespace), live=Color.BLUE, kube=kube)
    assert report.phase is Phase.FAILED
    assert "DeadlineExceeded" in report.reason


def test_http_check_through_the_apiserver_service_proxy(kube: Client, namespace: str) -> None:
    """The request really goes through the apiserver to the preview Service; kwok pods serve nothing,
    so the proxy cannot reach a backend, and the gate fails rather than passing on no answer."""
    create_app(kube, namespace, "shop")
    config = parse(
        "checks: [{name: ready, kind: http, path: /health/ready, timeout: 5s}]\ngate: {min-healthy: 0s}"
    )
    report = run_gate(config, AppSpec(name="shop", namespace=namespace), live=Color.BLUE, kube=kube)
    assert report.phase is Phase.FAILED
    judged = report.rounds[0].judged[0]
    assert (
        judged.measurement.target
        == f"/api/v1/namespaces/{namespace}/services/shop-preview/proxy/health/ready"
    )
    assert judged.measurement.values["http_status"] != 200


class CountingLists:
    """A lightkube Client that counts LIST requests (everything else passes through)."""

    def __init__(self, kube: Client) -> None:
        self.kube, self.lists = kube, 0

    def list(self, *args: object, **kwargs: object) -> object:
        self.lists += 1
        return self.kube.list(*args, **kwargs)  # type: ignore[call-overload]

    def __getattr__(self, name: str) -> object:
        return getattr(self.kube, name)


def test_kubernetes_check_follows_pods_with_one_watch_stream(kube: Client, namespace: str) -> None:
    """Pods are listed once and then followed; growing restarts fail the check without a re-list."""
    create_app(kube, namespace, "shop")
    counting = CountingLists(kube)
    check = build(KubernetesCheckConfig(name="pods"), kube=counting)  # type: ignore[arg-type]
    target = Target(
        app=AppSpec(name="shop", namespace=namespace),
        color=Color.GREEN,
        baseline=Color.BLUE,
        service="shop-preview",
        window=1,
        max_error_rate=0.005,
        p95_tolerance=0.2,
    )
    try:
        first = judge(check.measure(target))
        assert first.phase is Phase.SUCCESSFUL and first.measurement.values["pods"] == 2
        pod = next(iter(kube.list(Pod, namespace=namespace, labels={"bluegreen.io/color": "green"})))
        assert pod.metadata is not None and pod.status is not None and pod.status.containerStatuses
        status = pod.status.containerStatuses[0]
        kube.patch(
            Pod.Status,
            pod.metadata.name,  # type: ignore[arg-type]
            {"status": {"containerStatuses": [{**status.to_dict(), "restartCount": 2}]}},
            namespace=namespace,
        )
        for _ in range(100):  # the stream brings the change; wait for it, not for a time
            later = judge(check.measure(target))
            if later.phase is not Phase.SUCCESSFUL:
                break
            time.sleep(0.1)
        assert later.phase is Phase.FAILED
        assert later.measurement.values["restarts_growth"] == 2
        assert counting.lists == 1
    finally:
        check.close()
