"""Traefik (hack/build-traefik.sh) in the traffic rig, in front of an app adopted by `init`: shared by
tests/traffic/test_proxy_routers.py and bench/proxy_routers.py.

Traefik runs as a process in the rig's network namespace with its kubernetesIngress and
kubernetesGateway providers on the rig's cluster; it sends each request straight to an EndpointSlice
address (a pod IP), where the rig's stand-in server for that pod answers with its colour.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from lightkube import Client, KubeConfig, codecs
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment

from hack.traffic_rig import Rig
from tests.support.apps import deployment, wait_available
from tests.support.traffic import bluegreen

ROOT = Path(__file__).resolve().parents[2]
PORT = 8000  # Traefik's entry point in the rig's namespace; a Gateway listener names the same port
PING = "http://127.0.0.1:8080/ping"
HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
Gateway = create_namespaced_resource("gateway.networking.k8s.io", "v1", "Gateway", "gateways")
GatewayClass = create_global_resource("gateway.networking.k8s.io", "v1", "GatewayClass", "gatewayclasses")


def binary() -> tuple[Path, Path]:
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


def missing() -> str | None:
    """Why Traefik cannot run here (not built), or None."""
    found, crds = binary()
    if found.is_file() and crds.is_dir():
        return None
    return f"Traefik is not built ({found}): run `make deps` (hack/build-traefik.sh, ~8 min once)"


def apply_all(kube: Client, text: str, namespace: str | None = None) -> None:
    client: Any = kube  # lightkube's overloads do not take a namespace for a loaded (untyped) object
    for obj in codecs.load_all_yaml(text):
        if namespace is None:
            client.apply(obj, field_manager="bluegreen-tests", force=True)
        else:
            client.apply(obj, namespace=namespace, field_manager="bluegreen-tests", force=True)


@contextlib.contextmanager
def running(rig: Rig) -> Iterator[str]:
    """Traefik serving the rig's Ingresses and HTTPRoutes at 127.0.0.1:8000 in its namespace."""
    traefik, crds = binary()
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
                str(traefik),
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
