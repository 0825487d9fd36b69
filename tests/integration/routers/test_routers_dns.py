"""The dns router on the real apiserver: the hostname annotation moves, added before it is removed."""

from __future__ import annotations

import threading
from typing import Any

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from bluegreen.cli import execute
from bluegreen.model import AppSpec, Color
from bluegreen.routers.dns import HOSTNAME, TTL, DnsRouter
from hack.localcluster import LocalCluster
from tests.support.apps import service


def annotations_of(kube: Client, namespace: str, name: str) -> dict[str, str]:
    found = kube.get(Service, name, namespace=namespace)
    assert found.metadata is not None
    return dict(found.metadata.annotations or {})


def test_dns_moves_hostname_add_then_remove(kube: Client, namespace: str, app: AppSpec) -> None:
    blue = service("shop-blue", "shop", "blue")
    assert blue.metadata is not None
    blue.metadata.annotations = {HOSTNAME: "shop.example.test", TTL: "60"}
    kube.create(blue, namespace=namespace)
    router = DnsRouter(app, kube)
    state = router.read()
    assert state.active is Color.BLUE

    # Watch the colour Services while switching: the name must never be on neither of them.
    holders_seen: list[set[str]] = []
    stop = threading.Event()

    def watch() -> None:
        held: dict[str, bool] = {}
        for _, obj in kube.watch(Service, namespace=namespace, resource_version=None):
            meta: Any = obj.metadata
            if meta.name in ("shop-blue", "shop-green"):
                held[meta.name] = HOSTNAME in (meta.annotations or {})
                holders_seen.append({n for n, h in held.items() if h})
            if stop.is_set():
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    write = router.switch_to(Color.GREEN, state=state)
    assert write.changed
    green = annotations_of(kube, namespace, "shop-green")
    assert green[HOSTNAME] == "shop.example.test" and green[TTL] == "60"
    assert HOSTNAME not in annotations_of(kube, namespace, "shop-blue")

    result = router.verify(Color.GREEN, timeout=20)
    assert result.ok, result.message
    assert any("TTL (60 s)" in u for u in result.unverified)
    stop.set()
    kube.patch(Service, "shop-blue", {"metadata": {"labels": {"nudge": "1"}}}, namespace=namespace)
    watcher.join(timeout=5)
    assert holders_seen and all(holders_seen), holders_seen
    assert not router.switch_to(Color.GREEN, state=router.read()).changed


def test_both_colour_services_carrying_the_hostname_is_a_split_deploy_refuses(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec
) -> None:
    for color in ("blue", "green"):
        svc = service(f"shop-{color}", "shop", color)
        assert svc.metadata is not None
        svc.metadata.annotations = {HOSTNAME: "shop.example.test"}
        kube.create(svc, namespace=namespace)
    common = ["--router", "dns", "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    deployed = execute(["deploy", "--image", "registry.local/shop:2.0", *common])
    assert deployed.exit_code == 1 and deployed.error is not None
    assert "shop-blue, shop-green" in deployed.error.message and "switch --to" in deployed.error.remedy
    green = kube.get(Deployment, "shop-green", namespace=namespace)
    assert green.spec is not None and green.spec.template.spec is not None
    assert [c.image for c in green.spec.template.spec.containers] == ["registry.local/shop:1.0"]
