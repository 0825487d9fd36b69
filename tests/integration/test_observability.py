"""One release followed by one ID: the JSON logs, the Event, the history, and the requests the app got.

The CLI runs as a user runs it (a subprocess with GitHub's variables and a parent TRACEPARENT) against
the real local cluster, its gate checking real sample apps over HTTP; the log lines are validated
against docs/schemas/log-line.schema.json by check-jsonschema (installed by hack/install-action-tools.sh).
Traces and OTLP metrics go to a real OpenTelemetry Collector (built by `make deps`) and, opt-in, to a
real Jaeger (`make jaeger`); the Pushgateway's metrics to a real Pushgateway scraped by Prometheus.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Event, Service

from bluegreen.cli import execute
from hack.localcluster import LocalCluster
from tests.support import jaeger as jaeger_support
from tests.support import otelcol, otlp, pushgateway, sampleapp
from tests.support import prometheus as prom_support
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "schemas" / "log-line.schema.json"
TOOLS = Path(os.environ.get("BLUEGREEN_CACHE") or Path.home() / ".cache" / "bluegreen") / "tools" / "bin"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def check_jsonschema() -> Path:
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "install-action-tools.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"hack/install-action-tools.sh failed:\n{done.stdout}{done.stderr}")
    return TOOLS / "check-jsonschema"


@pytest.fixture
def apps() -> Iterator[dict[str, sampleapp.SampleApp]]:
    with sampleapp.running("blue", "green") as running:
        yield running


def validate(tool: Path, lines: list[str], folder: Path) -> None:
    files = []
    for n, line in enumerate(lines):
        path = folder / f"line-{n}.json"
        path.write_text(line)
        files.append(str(path))
    done = subprocess.run(
        [str(tool), "--schemafile", str(SCHEMA), *files], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_release_is_found_by_one_id_in_logs_event_history_and_the_apps_requests(
    cluster: LocalCluster,
    kube: Client,
    namespace: str,
    apps: dict[str, sampleapp.SampleApp],
    check_jsonschema: Path,
    tmp_path: Path,
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    config = tmp_path / "bluegreen.yaml"
    green, blue = apps["green"].url, apps["blue"].url
    config.write_text(
        f"""
checks:
  - name: ready
    kind: http
    url: "{green}/health/ready"
    conditions: ['checks.db == "ok"']
  - name: traffic
    kind: probe
    urls: {{blue: "{blue}/api/orders", green: "{green}/api/orders"}}
    requests: 3
gate: {{min-healthy: 0s, interval: 0.2s, p95-tolerance: 500%}}
watch: {{duration: 0s}}
"""
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "BLUEGREEN_")) and k != "TRACEPARENT"
    }
    env |= {"GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "2", "TRACEPARENT": PARENT}
    done = subprocess.run(
        [
            sys.executable, "-m", "bluegreen.cli", "release", "--app", "shop", "-n", namespace,
            "--kubeconfig", str(cluster.kubeconfig), "--image", "registry.local/shop:2.0",
            "--config", str(config), "--log-format", "json", "-o", "json",
        ],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    # The logs: every stderr line is one JSON object of the schema, all with the run's ID.
    lines = done.stderr.splitlines()
    validate(check_jsonschema, lines, tmp_path)
    records = [json.loads(line) for line in lines]
    assert {r["correlation_id"] for r in records} == {"4242-2"}
    assert {r["app"] for r in records} == {"shop"} and {r["namespace"] for r in records} == {namespace}
    assert {"release/deploy", "release/gate", "release/switch"} <= {r["phase"] for r in records}
    last = records[-1]
    assert (last["result"], last["colour"], last["exit_code"]) == ("switched", "green", 0)
    assert json.loads(done.stdout)["correlation_id"] == "4242-2"

    # The audit trail on the cluster: the history entry and the Event.
    annotations = kube.get(Service, "shop", namespace=namespace).to_dict()["metadata"]["annotations"]
    assert json.loads(annotations["bluegreen.io/history"])[0]["correlation_id"] == "4242-2"
    notes = [
        e.message or "" for e in kube.list(Event, namespace=namespace) if e.involvedObject.name == "shop"
    ]
    assert any("[correlation 4242-2]" in note for note in notes), notes

    # The app: the gate's HTTP check and probe requests carried the ID and a child of the parent trace.
    seen = apps["green"].requests_seen()
    assert {"/health/ready", "/api/orders"} <= {r["path"] for r in seen}
    assert {r["x-request-id"] for r in seen} == {"4242-2"}
    for request in seen:
        version, trace, span, flags = request["traceparent"].split("-")
        assert (version, trace, flags) == ("00", TRACE, "01") and len(span) == 16


def test_release_and_rollback_metrics_reach_prometheus_through_the_pushgateway(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    with (
        pushgateway.running(tmp_path) as port,
        prom_support.running(tmp_path, {}, pushgateway=port) as prometheus,
    ):
        common = ["--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
        common += ["--pushgateway", f"http://127.0.0.1:{port}"]
        quick = ("--min-healthy", "0s", "--interval", "0.2s", "--duration", "0s")
        released = execute(["release", *common, "--image", "registry.local/shop:2.0", *quick])
        assert (released.exit_code, released.result and released.result.result) == (0, "switched")
        rolled = execute(["rollback", *common, "--reason", "bad 2.0"])
        assert (rolled.exit_code, rolled.result and rolled.result.result) == (0, "rolled-back")

        app = f'app="shop",namespace="{namespace}",job="bluegreen"'
        # Scraped every second: wait for the rollback's push to arrive, then read everything at once.
        prometheus.wait_for(f'bluegreen_rollbacks_total{{{app},reason="manual"}} == 1')
        assert prometheus.query(f'bluegreen_releases_total{{{app},phase="release",result="switched"}}') == 1
        assert prometheus.query(f'bluegreen_live_color{{{app},color="blue"}}') == 1
        assert prometheus.query(f'bluegreen_live_color{{{app},color="green"}}') == 0
        assert prometheus.query(f'bluegreen_rollbacks_total{{{app},reason="watch"}}') is None
        api = prometheus.query(f'bluegreen_switch_duration_seconds{{{app},measure="api"}}')
        converged = prometheus.query(f'bluegreen_switch_duration_seconds{{{app},measure="converged"}}')
        assert api is not None and converged is not None and converged >= api > 0
        assert prometheus.query(f'bluegreen_gate_duration_seconds{{{app},result="successful"}}') is not None
        assert prometheus.query(f"sum(bluegreen_release_in_progress{{{app}}})") == 0
        assert prometheus.query(f"bluegreen_release_deadline_timestamp_seconds{{{app}}} > time()") is not None

        # A second release counts on from the Pushgateway's value.
        again = execute(["release", *common, "--image", "registry.local/shop:3.0", *quick])
        assert again.exit_code == 0, again.error
        prometheus.wait_for(f'bluegreen_releases_total{{{app},phase="release",result="switched"}} == 2')


@dataclass
class Receiver:
    env: dict[str, str]  # the OTEL_* variables that send to it
    spans: Callable[[int], list[otlp.Span]]  # the spans of TRACE, once at least n arrived
    points: Callable[[], list[otlp.Point]] | None  # the metric points so far; None: takes no metrics


@contextmanager
def otlp_receiver(kind: str, workdir: Path) -> Iterator[Receiver]:
    """A real OpenTelemetry Collector (built by `make deps`, run on CI) or a real Jaeger (opt-in:
    `make jaeger`); Jaeger takes traces only, so it gets the traces' own endpoint variable."""
    if kind == "jaeger":
        with jaeger_support.running(workdir) as jaeger:
            env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{jaeger.otlp}/v1/traces"}
            yield Receiver(env, lambda n: jaeger.trace(TRACE, at_least=n), None)
    else:
        with otelcol.running(workdir) as collector:
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.otlp}

            def points() -> list[otlp.Point]:
                # The counter is sent as the phase ends: then every metric is there.
                return collector.points(until="bluegreen_releases_total")

            yield Receiver(env, lambda n: collector.trace(TRACE, at_least=n), points)


@pytest.mark.parametrize("receiver", ["otelcol", "jaeger"])
def test_a_release_is_traced_under_the_ci_parent_span(
    cluster: LocalCluster,
    kube: Client,
    namespace: str,
    apps: dict[str, sampleapp.SampleApp],
    tmp_path: Path,
    receiver: str,
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        f"""
checks:
  - name: ready
    kind: http
    url: "{apps["green"].url}/health/ready"
gate: {{min-healthy: 0s, interval: 0.2s}}
watch: {{duration: 0s}}
"""
    )
    with otlp_receiver(receiver, tmp_path) as got:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "BLUEGREEN_", "OTEL_")) and k != "TRACEPARENT"
        }
        env |= {"TRACEPARENT": PARENT, "GITHUB_RUN_ID": "99", **got.env}
        before = time.time()
        done = subprocess.run(
            [
                sys.executable, "-m", "bluegreen.cli", "release", "--app", "shop", "-n", namespace,
                "--kubeconfig", str(cluster.kubeconfig), "--image", "registry.local/shop:2.0",
                "--config", str(config),
            ],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "could not" not in done.stderr, done.stderr  # every export went through
        spans = got.spans(9)
        points = got.points() if got.points else []

    by_id = {s.span_id: s for s in spans}

    def named(name: str) -> list[otlp.Span]:
        return [s for s in spans if s.name == name]

    (root,) = named("bluegreen release")
    assert root.parent_id == "00f067aa0ba902b7"  # the CI system's span
    assert root.attributes["bluegreen.correlation_id"] == "99-1"
    assert root.attributes["bluegreen.result"] == "switched"
    for stage in ("deploy", "gate", "switch", "watch"):
        (found,) = named(stage)
        assert found.parent_id == root.span_id, stage
    (gate,) = named("gate")
    rounds = [r for r in named("check round") if r.parent_id == gate.span_id]
    assert rounds
    assert (rounds[0].attributes["bluegreen.color"], rounds[0].attributes["check.ready.http_status"]) == (
        "green",
        200,
    )
    (switch,) = named("switch")
    (write,) = named("switch write")
    (verify,) = named("switch verify")
    assert write.parent_id == verify.parent_id == switch.span_id
    assert write.attributes["bluegreen.api_ms"] > 0 and verify.attributes["bluegreen.verified"] is True
    assert verify.attributes["bluegreen.converged_ms"] >= write.attributes["bluegreen.api_ms"]

    # The app's requests were children of the check rounds, in the same trace.
    seen = [r for r in apps["green"].requests_seen() if r["path"] == "/health/ready"]
    assert seen
    for request in seen:
        _, trace, span_id, _ = request["traceparent"].split("-")
        assert trace == TRACE and by_id[span_id].name == "check round"

    if got.points is None:
        return  # Jaeger takes no metrics
    # The release metrics, as the Pushgateway gets them, here over OTLP: the phase exported them when it
    # started (in progress) and when it ended; the last point of each series is the one that stands.
    last: dict[tuple[str, frozenset[tuple[str, Any]]], otlp.Point] = {}
    for point in points:
        assert point.service == "bluegreen"
        assert (point.attributes["app"], point.attributes["namespace"]) == ("shop", namespace)
        labels = {k: v for k, v in point.attributes.items() if k not in ("app", "namespace")}
        last[(point.name, frozenset(labels.items()))] = point

    def series(name: str, **labels: str) -> otlp.Point:
        return last[(name, frozenset(labels.items()))]

    def value(name: str, **labels: str) -> float:
        return series(name, **labels).value

    assert any(p.name == "bluegreen_release_in_progress" and p.value == 1 for p in points)
    assert value("bluegreen_release_in_progress", phase="release") == 0
    counted = series("bluegreen_releases_total", phase="release", result="switched")
    assert (counted.kind, counted.monotonic, counted.value) == ("sum", True, 1)
    assert not [p for p in points if p.name == "bluegreen_rollbacks_total"]
    assert value("bluegreen_live_color", color="green") == 1
    assert value("bluegreen_live_color", color="blue") == 0
    # The same measurements as the release's span carries.
    api_ms, converged_ms = root.attributes["bluegreen.api_ms"], root.attributes["bluegreen.converged_ms"]
    assert value("bluegreen_switch_duration_seconds", measure="api") == api_ms / 1000
    assert value("bluegreen_switch_duration_seconds", measure="converged") == converged_ms / 1000
    assert 0 < value("bluegreen_gate_duration_seconds", result="successful") < time.time() - before
    assert value("bluegreen_release_deadline_timestamp_seconds") > time.time()
    assert before <= value("bluegreen_last_switch_timestamp_seconds") <= time.time()
    assert before <= value("bluegreen_last_deploy_timestamp_seconds") <= time.time()
