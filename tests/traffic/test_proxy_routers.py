"""The ingress and gateway routers through a real proxy: Traefik in front of the colours, with traffic.

Traefik v3.6 (hack/build-traefik.sh, cached by `make deps`) runs in the traffic rig's network namespace
with its kubernetesIngress and kubernetesGateway providers on the rig's cluster. It sends each request
straight to an EndpointSlice address (a pod IP, no kube-proxy), where the rig's stand-in server for
that pod answers with the pod's colour: what a user of the app behind the proxy would see.

The app is adopted by `bluegreen init` from a plain Deployment whose pods carry their own labels
(`app: shop`), then deployed to green: the case where the colour Services used to select nothing.
Each switch and rollback runs with `--probe` through Traefik, so "verified" means the probe saw the new
colour answer alone; a bounded load alongside asserts no request failed and none answered by the old
colour after the verified moment. Delays are printed (bench/ has the medians), never asserted.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.networking_v1 import Ingress

from bluegreen.model import AppSpec
from bluegreen.routers._common import ensure_color_services
from bluegreen.traffic_probe import Sample, TrafficProbe, summarize
from hack.traffic_rig import Rig
from tests.support import traefik
from tests.support.traefik import HTTPRoute, adopted_app, apply_all, frontend
from tests.support.traffic import BLUEGREEN, between, bluegreen, wait_answering

pytestmark = pytest.mark.traffic

RATE = 50.0  # new connections per second through the proxy, besides the switch's own probe
PROBE = ("--probe-rate", "50", "--probe-after", "1s")


def unavailable_traefik() -> None:
    reason = traefik.missing()
    if reason is None:
        return
    if os.environ.get("BLUEGREEN_REQUIRE_TRAFFIC") == "1":
        pytest.fail(f"BLUEGREEN_REQUIRE_TRAFFIC=1, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def proxy(rig: Rig) -> Iterator[str]:
    """Traefik serving the rig's Ingresses and HTTPRoutes; its base URL in the rig's namespace."""
    unavailable_traefik()
    with traefik.running(rig) as url:
        yield url


def route_generation(kube: Client, namespace: str, router: str) -> int:
    """The frontend's generation: it grows with every spec write (a controller's status does not)."""
    found = kube.get(Ingress if router == "ingress" else HTTPRoute, "shop", namespace=namespace)
    return int(cast(Any, found).metadata.generation)


def event_time(result: dict[str, Any], prefix: str) -> float:
    for entry in result.get("timeline", []):
        if entry["event"].startswith(prefix):
            return datetime.fromisoformat(entry["time"]).timestamp()
    raise AssertionError(f"no `{prefix}` event in the result's timeline: {result.get('timeline')}")


@pytest.fixture(params=["ingress", "gateway"])
def router(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def shop(inside: Rig, kube: Client, namespace: str, proxy: str, router: str) -> str:
    """The adopted app behind the router's frontend in Traefik; its URL through the proxy."""
    adopted_app(inside, kube, namespace)
    # The colour Services as the router makes them on its first switch, so blue is served from the start.
    ensure_color_services(kube, AppSpec(name="shop", namespace=namespace))
    frontend(kube, namespace, router)
    url = f"{proxy}/{namespace}"
    wait_answering(url, "blue", timeout=60)
    return url


def load(url: str, seconds: float) -> TrafficProbe:
    return TrafficProbe(url, rate=RATE, max_requests=int(RATE * seconds), max_seconds=seconds)


def test_switch_and_rollback_through_traefik_fail_no_request(
    inside: Rig, kube: Client, namespace: str, router: str, shop: str
) -> None:
    steps = [
        ("green", ("switch", "--to", "green")),
        ("blue", ("rollback",)),
        ("green", ("switch", "--to", "green", "--force")),
        ("blue", ("rollback",)),
    ]
    results: list[dict[str, Any]] = []
    with load(shop, seconds=25 * len(steps) + 10) as probe:
        time.sleep(1)
        for _, command in steps:
            results.append(
                bluegreen(
                    inside,
                    *command,
                    "--app",
                    "shop",
                    "-n",
                    namespace,
                    "--router",
                    router,
                    "--probe",
                    shop,
                    *PROBE,
                )
            )
        time.sleep(1)
    samples: list[Sample] = probe.samples
    writes = [event_time(r, "switched:") for r in results]
    # Each step's requests: from when its write was sent (the `switched:` event is when it returned;
    # Traefik may move a request or two in between) to when the next one's was.
    sent = [w - float(r.get("api_ms") or 0) / 1000 - 0.05 for w, r in zip(writes, results, strict=True)]
    bounds = [0.0, *sent[1:], float("inf")]
    print(f"\n{router} through Traefik: {len(samples)} requests at {RATE:.0f}/s")
    for index, ((color, command), result) in enumerate(zip(steps, results, strict=True)):
        old = "blue" if color == "green" else "green"
        assert result["result"] in ("switched", "rolled-back"), result
        part = between(samples, bounds[index], bounds[index + 1])
        cut = summarize(part, write_time=writes[index], old=old, new=color)
        verified = event_time(result, "verified:")
        late = [s for s in part if s.sent > verified and s.color != color]
        timing = result["details"]["verification"]
        print(
            f"  {command[0]:8} -> {color:5}: control plane verified {timing['control_plane_ms']:.0f} ms, "
            f"probe saw traffic move {timing['data_plane_ms']:.0f} ms, this load's cutover "
            f"{cut.cutover_ms} ms (last {old} answer {cut.last_old_ms} ms) after the write"
        )
        assert cut.failed == 0, f"{cut.failed} failed requests across the move to {color}: {cut.errors}"
        assert cut.moved and cut.old_after_new == 0, (
            f"traffic did not move cleanly to {color}: {cut.to_dict()}"
        )
        assert not late, (
            f"{len(late)} requests sent after bluegreen said verified were answered by {late[0].color}"
        )


def test_a_switch_to_a_colour_whose_service_has_no_endpoints_is_refused(
    inside: Rig, kube: Client, namespace: str, router: str, shop: str
) -> None:
    # The user's own `shop-green` (not made by bluegreen, so left as it is) selects no pod.
    kube.delete(Service, "shop-green", namespace=namespace)
    apply_all(
        kube,
        "apiVersion: v1\nkind: Service\nmetadata: {name: shop-green}\n"
        "spec: {selector: {app: nothing-here}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
        namespace,
    )
    before = route_generation(kube, namespace, router)
    with load(shop, seconds=30) as probe:
        time.sleep(1)
        refused = bluegreen(
            inside,
            "switch",
            "--to",
            "green",
            "--app",
            "shop",
            "-n",
            namespace,
            "--router",
            router,
            check=False,
        )
        time.sleep(2.5)  # beyond Traefik's 2 s throttle: a change would have reached traffic
    message = str(refused.get("error") or refused)
    assert "no ready endpoints" in message and "nothing was changed" in message, refused
    assert route_generation(kube, namespace, router) == before, f"the {router} frontend was written"
    failed = [s for s in probe.samples if s.failed]
    colors = {s.color for s in probe.samples}
    assert not failed and colors == {"blue"}, f"{len(failed)} failed, answers from {colors}"


def test_a_switch_traffic_does_not_follow_is_rolled_back(
    inside: Rig, kube: Client, namespace: str, router: str, shop: str
) -> None:
    """The probe watches a URL that only blue serves (a blue pod's own address): the switch's
    verification through it fails, and the router is moved back to blue by itself."""
    pod = next(iter(kube.list(Pod, namespace=namespace, labels={"bluegreen.io/color": "blue"})))
    assert pod.status is not None
    only_blue = f"http://{pod.status.podIP}:8080/"
    done = subprocess.run(
        inside.exec_args(
            BLUEGREEN,
            "switch",
            "--to",
            "green",
            "--app",
            "shop",
            "-n",
            namespace,
            "--router",
            router,
            "--probe",
            only_blue,
            "--timeout",
            "5s",
            "--kubeconfig",
            str(inside.kubeconfig),
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rolled back the switch" in done.stdout + done.stderr
    wait_answering(shop, "blue", timeout=10)
    state = bluegreen(inside, "status", "--app", "shop", "-n", namespace, "--router", router)
    assert state.get("active_color") == "blue", state
