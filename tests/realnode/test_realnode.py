"""Releases with real pods under real traffic: the app's pods run on a real kubelet node, and a steady
load of new and keep-alive connections goes through the live Service's ClusterIP (kube-proxy) while
`bluegreen` deploys, gates, switches, watches, retires and rolls back.

Asserted as a user of the app would notice: no failed new connection; after a switch or rollback no
old-colour answer once the new colour has answered; keep-alive clients on the new colour once
`retire` ends, with no request in flight lost (the app's documented settings: readiness probe,
preStop sleep 5 s, grace 30 s, graceful SIGTERM); a retired colour rolled back to is waited for
before traffic moves. Figures are printed (run with -s), never asserted.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from hack.realnode import APP_IMAGE, RealNode
from tests.realnode.load import Load, Sample, between, cutover, failed, median_p95, write_time
from tests.support.apps import endpoint_ips, ready_pod_ips, wait_available

pytestmark = pytest.mark.realnode

BLUEGREEN = str(Path(sys.executable).with_name("bluegreen"))
NAME, COLOR = "app.kubernetes.io/name", "bluegreen.io/color"
SETTLE = 3.0  # seconds after a write: beyond kube-proxy's 1 s minimum sync period, with room
CONFIG = """
checks:
  - name: pods
    kind: kubernetes
  - name: web
    kind: http
    path: /
    port: http
gate:
  min-healthy: 2s
  interval: 1s
  window: 1s
watch:
  duration: 30s
  interval: 1s
  window: 1s
  failures: 2
"""


def deployment(color: str, release: str, *, prestop: int = 5, grace: int = 30, replicas: int = 2) -> Any:
    """The app with the documented drain settings (docs/real-pods.md)."""
    labels = {NAME: "shop", COLOR: color}
    container = {
        "name": "app",
        "image": f"{APP_IMAGE}:{release}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080}],
        "env": [
            {"name": "COLOR", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{COLOR}']"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
        "lifecycle": {"preStop": {"sleep": {"seconds": prestop}}},
    }
    return Deployment.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": f"shop-{color}", "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "terminationGracePeriodSeconds": grace,
                        "containers": [container],
                    },
                },
            },
        }
    )


def service(name: str, color: str) -> Service:
    return cast(
        Service,
        Service.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "labels": {NAME: "shop"}},
                "spec": {
                    "selector": {NAME: "shop", COLOR: color},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            }
        ),
    )


def create_app(kube: Client, namespace: str, **settings: int) -> tuple[str, int]:
    """Blue (v1) live, the preview Service on green; returns the live Service's ClusterIP and port."""
    kube.create(deployment("blue", "v1", **settings), namespace=namespace)
    live = kube.create(service("shop", "blue"), namespace=namespace)
    kube.create(service("shop-preview", "green"), namespace=namespace)
    wait_available(kube, namespace, "shop-blue", timeout=120)
    assert live.spec is not None and live.spec.clusterIP
    return live.spec.clusterIP, 80


def bluegreen(node: RealNode, *args: str) -> dict[str, Any]:
    """`bluegreen ARGS -o json` in the node's network namespace: the Result as a dict."""
    done = subprocess.run(
        [
            "nsenter",
            f"--net=/run/netns/{node.name}",
            "--",
            BLUEGREEN,
            *args,
            "--kubeconfig",
            str(node.kubeconfig),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    result: dict[str, Any] = payload.get("result") or payload
    result["exit_code"], result["stderr"] = done.returncode, done.stderr
    return result


def wait_answering(host: str, port: int, color: str, *, timeout: float = 30) -> None:
    """Until 5 new connections in a row are answered by `color` (kube-proxy has synced)."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < 5:
        assert time.monotonic() < deadline, f"{host}:{port} not answered by {color} within {timeout}s"
        with Load(host, port, rate=1000, keepalive=0, max_requests=1) as one:
            pass
        streak = streak + 1 if one.new and one.new[0].color == color else 0
        time.sleep(0.05)


def wait_endpoints(kube: Client, namespace: str, service_name: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(endpoint_ips(kube, namespace, service_name)) != count:
        assert time.monotonic() < deadline, f"{service_name} has not {count} ready endpoints"
        time.sleep(0.1)


CUTOVERS: list[float] = []  # ms from each write to the new colour's first answer, this session


@pytest.fixture(scope="module", autouse=True)
def cutover_summary() -> Iterator[None]:
    yield
    if CUTOVERS:
        median, p95 = median_p95(CUTOVERS)
        print(
            f"\ncutover after the write over {len(CUTOVERS)} switches and rollbacks: "
            f"median {median:.0f} ms, p95 {p95:.0f} ms, max {max(CUTOVERS):.0f} ms"
        )


def figures(label: str, samples: list[Sample], write: float, old: str, new: str) -> Any:
    cut = cutover(samples, write=write, old=old, new=new)
    if cut.first_new_ms is not None:
        CUTOVERS.append(cut.first_new_ms)
    print(
        f"\n{label}: {cut.requests} new-connection requests, {cut.failed} failed; {new} first answered "
        f"{cut.first_new_ms:.0f} ms after the write, {old} last answered {cut.last_old_ms or 0:.0f} ms; "
        f"{old} answers after the first {new}: {cut.old_after_new}"
    )
    return cut


def test_a_release_with_real_pods_under_load_fails_no_request(
    inside: RealNode, kube: Client, namespace: str, tmp_path: Path
) -> None:
    host, port = create_app(kube, namespace)
    wait_answering(host, port, "blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(CONFIG)
    app = ("--app", "shop", "-n", namespace)
    with Load(host, port, rate=50, keepalive=2, max_seconds=150) as load:
        time.sleep(1)
        deployed = bluegreen(inside, "deploy", *app, "--image", f"{APP_IMAGE}:v2")
        assert deployed["exit_code"] == 0, deployed
        assert not [m for m in deployed["messages"] if m.startswith("drain:")], deployed["messages"]
        # The gate's http check goes through the apiserver's service proxy, which reads Endpoints:
        # they follow the pods' readiness a moment after the rollout is done.
        wait_endpoints(kube, namespace, "shop-preview", 2)
        gated = bluegreen(inside, "gate", *app, "--config", str(config))
        assert gated["exit_code"] == 0 and gated["result"] == "passed", (
            json.dumps(gated["details"])[-3000:],
            gated["stderr"][-2000:],
        )
        switched = bluegreen(inside, "switch", *app)
        assert switched["exit_code"] == 0, switched
        to_green = write_time(switched)
        time.sleep(SETTLE)
        retire_start = time.time()
        retired = bluegreen(inside, "retire", *app, "--after", "0s")
        retire_end = time.time()
        assert retired["exit_code"] == 0, retired
        time.sleep(2)
        rolled = bluegreen(inside, "rollback", *app, "--reason", "test")
        assert rolled["exit_code"] == 0 and rolled["result"] == "rolled-back", rolled
        to_blue = write_time(rolled)
        time.sleep(SETTLE)
    new = load.new
    kept = [s for client in load.kept for s in client]

    to_green_cut = figures("switch to green", between(new, 0, to_blue), to_green, "blue", "green")
    to_blue_cut = figures(
        "rollback to retired blue", between(new, to_blue - 1, 1e12), to_blue, "green", "blue"
    )
    drain = retired["details"]["drain"]
    lost = failed(kept)
    reconnects = sum(1 for s in kept if s.reconnected)
    print(
        f"retire: drain of {drain['pods']} pods took {drain['seconds']:.1f}s (preStop 5 s), killed at the "
        f"grace deadline: {len(drain['killed'])}; retire ran {retire_end - retire_start:.1f}s"
    )
    print(
        f"keep-alive: {len(kept)} requests (100 ms each) on 2 connections, {len(lost)} lost, "
        f"{reconnects} retried on a new connection after an idle close"
    )
    print(
        f"rollback of the retired colour took {rolled.get('api_ms') or 0:.0f} ms of API time; whole run "
        f"{len(new)} new-connection requests, {len(failed(new))} failed"
    )

    assert failed(new) == [], f"new connections failed: {failed(new)[:5]}"
    assert to_green_cut.first_new_ms is not None and to_green_cut.old_after_new == 0, to_green_cut
    assert to_blue_cut.first_new_ms is not None and to_blue_cut.old_after_new == 0, to_blue_cut
    # The rolled-back colour had no pods: an answer from blue at all, and no failure, means the
    # rollback waited for them before it switched.
    assert drain["pods"] == 2 and drain["killed"] == [] and drain["left"] == [], drain
    assert lost == [], f"keep-alive requests lost at retire: {lost[:5]}"
    after_retire = [s for s in kept if retire_end <= s.sent < to_blue - 1]
    assert after_retire and {s.color for s in after_retire} == {"green"}, {s.color for s in after_retire}


def test_watch_rolls_back_a_bad_release_with_no_failed_connection(
    inside: RealNode, kube: Client, namespace: str, tmp_path: Path
) -> None:
    host, port = create_app(kube, namespace)
    wait_answering(host, port, "blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(CONFIG)
    app = ("--app", "shop", "-n", namespace)
    with Load(host, port, rate=50, keepalive=0, max_seconds=120) as load:
        time.sleep(1)
        assert bluegreen(inside, "deploy", *app, "--image", f"{APP_IMAGE}:v3")["exit_code"] == 0
        switched = bluegreen(inside, "switch", *app)
        assert switched["exit_code"] == 0, switched
        watched = bluegreen(inside, "watch", *app, "--config", str(config))
        time.sleep(SETTLE)
    assert watched["result"] == "rolled-back", watched
    back = write_time(watched)
    cut = figures("watch's auto-rollback to blue", between(load.new, back - 1, 1e12), back, "green", "blue")
    bad = sum(1 for s in load.new if s.status == 500)
    print(
        f"the bad release (v3) answered {bad} requests with 500 before the watch rolled it back; "
        f"whole run {len(load.new)} new-connection requests, {len(failed(load.new))} failed"
    )
    assert failed(load.new) == [], f"new connections failed: {failed(load.new)[:5]}"
    assert cut.first_new_ms is not None and cut.old_after_new == 0, cut


def test_a_grace_period_shorter_than_a_request_is_refused_by_the_gate_and_reported_by_retire(
    inside: RealNode, kube: Client, namespace: str, tmp_path: Path
) -> None:
    host, port = create_app(kube, namespace, prestop=1, grace=2, replicas=1)
    wait_answering(host, port, "blue")
    app = ("--app", "shop", "-n", namespace)
    assert bluegreen(inside, "deploy", *app, "--image", f"{APP_IMAGE}:v2")["exit_code"] == 0
    config = tmp_path / "bluegreen.yaml"
    config.write_text("gate: {drain-check: refuse, max-request: 10s}\n")
    refused = bluegreen(inside, "gate", *app, "--config", str(config))
    assert refused["exit_code"] != 0 and "terminationGracePeriodSeconds" in refused["stderr"], refused
    assert bluegreen(inside, "switch", *app)["exit_code"] == 0
    # Blue's pod, the old colour's, from its labels: the preview Service follows the candidate, so
    # after the switch it selects green with live.
    (blue_ip,) = ready_pod_ips(kube, namespace, {NAME: "shop", COLOR: "blue"})
    # A 10 s request in flight on the old colour's pod when it is retired: the grace period cuts it.
    outcome: list[str] = []

    def long_request() -> None:
        connection = http.client.HTTPConnection(blue_ip, 8080, timeout=30)
        try:
            connection.request("GET", "/?sleep=10000")
            outcome.append(f"HTTP {connection.getresponse().status}")
        except (OSError, http.client.HTTPException) as error:
            outcome.append(type(error).__name__)

    request = threading.Thread(target=long_request)
    request.start()
    time.sleep(0.5)
    retired = bluegreen(inside, "retire", *app, "--after", "0s")
    request.join(timeout=30)
    drain = retired["details"]["drain"]
    print(
        f"\nretire with preStop 1 s, grace 2 s and a 10 s request in flight: {drain}; the request: {outcome}"
    )
    assert retired["exit_code"] == 0 and len(drain["killed"]) == 1, retired
    assert "killed at the grace deadline" in retired["stderr"]
    assert outcome and not outcome[0].startswith("HTTP"), f"the request cut at the deadline: {outcome}"
