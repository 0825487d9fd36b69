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
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import Client, KubeConfig, codecs
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.networking_v1 import Ingress

from bluegreen.traffic_probe import Sample, TrafficProbe, summarize
from hack.traffic_rig import Rig
from tests.support.apps import deployment, wait_available
from tests.support.traffic import BLUEGREEN, between, bluegreen, wait_answering

pytestmark = pytest.mark.traffic

ROOT = Path(__file__).resolve().parents[2]
RATE = 50.0  # new connections per second through the proxy, besides the switch's own probe
PORT = 8000  # Traefik's entry point in the rig's namespace; a Gateway listener names the same port
PING = "http://127.0.0.1:8080/ping"
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
Gateway = create_namespaced_resource("gateway.networking.k8s.io", "v1", "Gateway", "gateways")
GatewayClass = create_global_resource("gateway.networking.k8s.io", "v1", "GatewayClass", "gatewayclasses")
PROBE = ("--probe-rate", "50", "--probe-after", "1s")


def traefik_binary() -> tuple[Path, Path]:
    """The cached Traefik and its Gateway API CRDs, as hack/build-traefik.sh leaves them."""
    script = (ROOT / "hack" / "build-traefik.sh").read_text()
    found = re.search(r"^TRAEFIK_VERSION=(\S+)", script, re.M)
    assert found, "hack/build-traefik.sh names no TRAEFIK_VERSION"
    cache = Path(
        os.environ.get("BLUEGREEN_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bluegreen"
    )
    folder = cache / f"traefik-{found.group(1)}"
    return folder / "traefik", folder / "gateway-api-crds"


def unavailable_traefik(binary: Path, crds: Path) -> None:
    if binary.is_file() and crds.is_dir():
        return
    reason = f"Traefik is not built ({binary}): run `make deps` (hack/build-traefik.sh, ~8 min once)"
    if os.environ.get("BLUEGREEN_REQUIRE_TRAFFIC") == "1":
        pytest.fail(f"BLUEGREEN_REQUIRE_TRAFFIC=1, but {reason}")
    pytest.skip(reason)


def apply_all(kube: Client, text: str, namespace: str | None = None) -> None:
    for obj in codecs.load_all_yaml(text):
        if namespace is not None:
            cast(Any, obj).metadata.namespace = namespace
        kube.apply(cast(Any, obj), field_manager="bluegreen-tests", force=True)


@pytest.fixture(scope="session")
def traefik(rig: Rig) -> Iterator[str]:
    """Traefik serving the rig's Ingresses and HTTPRoutes at 127.0.0.1:8000 in its namespace."""
    binary, crds = traefik_binary()
    unavailable_traefik(binary, crds)
    with rig.inside():
        kube = Client(KubeConfig.from_file(rig.kubeconfig), field_manager="bluegreen-tests")
        for path in sorted(crds.glob("*.yaml")):
            apply_all(kube, path.read_text())
        deadline = time.monotonic() + 60
        while True:  # the CRDs served before a controller or a test asks for them
            try:
                list(kube.list(GatewayClass))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        apply_all(
            kube,
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: traefik}\n"
            "spec: {controller: traefik.io/ingress-controller}\n---\n"
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: traefik}\n"
            "spec: {controllerName: traefik.io/gateway-controller}\n",
        )
    log = rig.logs / "traefik.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            rig.exec_args(
                str(binary),
                f"--entryPoints.web.address=127.0.0.1:{PORT}",
                "--entryPoints.traefik.address=127.0.0.1:8080",
                "--ping=true",
                "--providers.kubernetesIngress=true",
                "--providers.kubernetesGateway=true",
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
                "--log.level=INFO",
            ),
            env={**os.environ, "KUBECONFIG": str(rig.kubeconfig)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with rig.inside():
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(PING, timeout=1) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"Traefik did not start: {log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{PORT}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def adopted_app(rig: Rig, kube: Client, namespace: str) -> None:
    """`shop` as a user has it before bluegreen (pods labelled `app: shop` only), adopted by `init`
    (blue) and deployed to green: both colours Ready, the stable Service on blue."""
    plain = deployment("shop", "blue", replicas=2).to_dict()
    plain["metadata"]["name"] = "shop"
    plain["metadata"]["labels"] = {"app": "shop"}
    plain["spec"]["selector"]["matchLabels"] = {"app": "shop"}
    plain["spec"]["template"]["metadata"]["labels"] = {"app": "shop"}
    kube.create(cast(Deployment, Deployment.from_dict(plain)), namespace=namespace)
    apply_all(
        kube,
        "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\n"
        "spec: {selector: {app: shop}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
        namespace,
    )
    wait_available(kube, namespace, "shop")
    bluegreen(rig, "init", "--app", "shop", "-n", namespace)
    bluegreen(rig, "deploy", "--image", "registry.local/shop:2.0", "--app", "shop", "-n", namespace)
    wait_available(kube, namespace, "shop-green")


def frontend(kube: Client, namespace: str, router: str) -> None:
    """The user's Ingress or HTTPRoute (with its Gateway) on `/<namespace>`, sending all to blue."""
    if router == "ingress":
        apply_all(
            kube,
            f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop}}
spec:
  ingressClassName: traefik
  rules:
  - http:
      paths:
      - {{path: /{namespace}, pathType: Prefix, backend: {{service: {{name: shop-blue, port: {{number: 80}}}}}}}}
""",
            namespace,
        )
        return
    apply_all(
        kube,
        f"""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web}}
spec:
  gatewayClassName: traefik
  listeners: [{{name: web, port: {PORT}, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop}}
spec:
  parentRefs: [{{name: web}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /{namespace}}}}}]
    backendRefs:
    - {{name: shop-blue, port: 80, weight: 100}}
    - {{name: shop-green, port: 80, weight: 0}}
""",
        namespace,
    )


def route_version(kube: Client, namespace: str, router: str) -> str:
    found = kube.get(Ingress if router == "ingress" else HTTPRoute, "shop", namespace=namespace)
    return str(cast(Any, found).metadata.resourceVersion)


def event_time(result: dict[str, Any], prefix: str) -> float:
    for entry in result.get("timeline", []):
        if entry["event"].startswith(prefix):
            return datetime.fromisoformat(entry["time"]).timestamp()
    raise AssertionError(f"no `{prefix}` event in the result's timeline: {result.get('timeline')}")


@pytest.fixture(params=["ingress", "gateway"])
def router(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def shop(inside: Rig, kube: Client, namespace: str, traefik: str, router: str) -> str:
    """The adopted app behind the router's frontend in Traefik; its URL through the proxy."""
    from bluegreen.model import AppSpec
    from bluegreen.routers._common import ensure_color_services

    adopted_app(inside, kube, namespace)
    # The colour Services as the router makes them on its first switch, so blue is served from the start.
    ensure_color_services(kube, AppSpec(name="shop", namespace=namespace))
    frontend(kube, namespace, router)
    url = f"{traefik}/{namespace}"
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
    bounds = [0.0, *writes[1:], float("inf")]
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
    before = route_version(kube, namespace, router)
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
    assert route_version(kube, namespace, router) == before, f"the {router} frontend was written"
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
