"""The dns router on the real apiserver (no external-dns here: tests/dns runs the real data plane).

Every state of the colour Services a watch sees is read the way external-dns reads it (which addresses
the record would carry): the record is the old colour's address until one write flips it.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from bluegreen.cli import execute
from bluegreen.model import AppSpec, Color
from bluegreen.routers import dns
from bluegreen.routers.dns import HOSTNAME, TARGET, TTL, DnsRouter
from hack.localcluster import LocalCluster
from tests.support.admission import refusing, wait_refusing
from tests.support.dnsrig import color_lb, set_address

BLUE_IP, GREEN_IP = "127.0.20.1", "127.0.20.2"
NAME = "shop.example.test"


def stored(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(Service, name, namespace=namespace).to_dict()
    return found


def annotations_of(kube: Client, namespace: str, name: str) -> dict[str, str]:
    return dns.annotations_of(stored(kube, namespace, name))


def selector_of(kube: Client, namespace: str, name: str) -> dict[str, str]:
    return dict(stored(kube, namespace, name)["spec"]["selector"])


def cli(cluster: LocalCluster, namespace: str, *args: str) -> Any:
    return execute(
        [*args, "--router", "dns", "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    )


def test_dns_record_serves_the_old_colour_until_one_write_flips_it(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec
) -> None:
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: NAME, TTL: "5"})
    color_lb(kube, namespace, "green", GREEN_IP, {TTL: "30"})  # a stale TTL from an earlier switch
    assert DnsRouter(app, kube).read().active is Color.BLUE

    records: list[tuple[str, ...]] = []
    stop = threading.Event()

    def watch() -> None:
        seen: dict[Color, dict[str, Any]] = {}
        for _, obj in kube.watch(Service, namespace=namespace, resource_version=None):
            service: dict[str, Any] = obj.to_dict()
            color = {"shop-blue": Color.BLUE, "shop-green": Color.GREEN}.get(service["metadata"]["name"])
            if color is not None:
                seen[color] = service
                if len(seen) == 2:
                    records.append(dns.record(seen))
            if stop.is_set():
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    switched = cli(cluster, namespace, "switch", "--to", "green", "-o", "json")
    assert switched.exit_code == 0, switched.result
    result = switched.result
    assert result.details["data_plane"]["checked"] is False
    assert any("no --dns-server was given" in m for m in result.messages), result.messages
    green = annotations_of(kube, namespace, "shop-green")
    assert green[HOSTNAME] == NAME and green[TTL] == "5" and TARGET not in green
    assert not set(annotations_of(kube, namespace, "shop-blue")) & {HOSTNAME, TTL, TARGET}
    # In-cluster clients follow: the stable Service selects green. The preview Service is not
    # written: it follows the candidate, green, which is live now.
    assert selector_of(kube, namespace, "shop")["bluegreen.io/color"] == "green"
    assert selector_of(kube, namespace, "shop-preview")["bluegreen.io/color"] == "green"

    stop.set()
    kube.patch(Service, "shop-blue", {"metadata": {"labels": {"nudge": "1"}}}, namespace=namespace)
    watcher.join(timeout=5)
    changes = [r for i, r in enumerate(records) if i == 0 or records[i - 1] != r]
    assert changes == [(BLUE_IP,), (GREEN_IP,)], records  # never both, never none
    assert not DnsRouter(app, kube).switch_to(Color.GREEN, state=DnsRouter(app, kube).read()).changed


def test_a_target_external_dns_cannot_publish_is_refused_and_never_created(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec
) -> None:
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: NAME})
    missing = cli(cluster, namespace, "switch", "--to", "green")
    assert missing.exit_code == 2 and missing.error is not None
    assert "shop-green does not exist" in missing.error.message
    assert "type LoadBalancer" in missing.error.remedy
    assert [s.metadata.name for s in kube.list(Service, namespace=namespace) if s.metadata] == [
        "shop",
        "shop-blue",
        "shop-preview",
    ]

    color_lb(kube, namespace, "green", None, kind="ClusterIP")
    internal = cli(cluster, namespace, "switch", "--to", "green")
    assert internal.exit_code == 2 and internal.error is not None
    assert "type ClusterIP" in internal.error.message and "spec.externalIPs" in internal.error.remedy


def test_a_target_with_no_load_balancer_address_is_refused_before_any_write(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec
) -> None:
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: NAME})
    color_lb(kube, namespace, "green", None)
    before = {
        n: stored(kube, namespace, n)["metadata"]["resourceVersion"] for n in ("shop-blue", "shop-green")
    }
    refused = cli(cluster, namespace, "switch", "--to", "green")
    assert refused.exit_code == 1 and refused.error is not None
    assert "no load-balancer address" in refused.error.message
    after = {
        n: stored(kube, namespace, n)["metadata"]["resourceVersion"] for n in ("shop-blue", "shop-green")
    }
    assert after == before
    set_address(kube, namespace, "shop-green", GREEN_IP)
    assert cli(cluster, namespace, "switch", "--to", "green").exit_code == 0


@pytest.mark.parametrize(
    ("service", "expression", "write"),
    [
        # write 2: the live Service may not lose the hostname
        (
            "shop-blue",
            f"'{HOSTNAME}' in oldObject.metadata.annotations && "
            f"!(has(object.metadata.annotations) && '{HOSTNAME}' in object.metadata.annotations)",
            2,
        ),
        # write 3: the target may not lose its pin while it keeps the hostname (the flip)
        (
            "shop-green",
            f"has(oldObject.metadata.annotations) && '{TARGET}' in oldObject.metadata.annotations && "
            f"has(object.metadata.annotations) && '{HOSTNAME}' in object.metadata.annotations && "
            f"!('{TARGET}' in object.metadata.annotations)",
            3,
        ),
    ],
)
def test_a_refused_later_write_is_undone_and_said_so_not_bad_usage(
    kube: Client,
    cluster: LocalCluster,
    namespace: str,
    app: AppSpec,
    service: str,
    expression: str,
    write: int,
) -> None:
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: NAME, TTL: "5"})
    color_lb(kube, namespace, "green", GREEN_IP)
    before = {n: annotations_of(kube, namespace, n) for n in ("shop-blue", "shop-green")}
    with refusing(kube, namespace, service, expression, f"refuse-{namespace}"):
        wait_refusing(kube, namespace, service)
        refused = cli(cluster, namespace, "switch", "--to", "green")
        assert refused.exit_code == 1 and refused.error is not None, refused.result
        message = refused.error.message
        assert f"stopped at write {write} of 3" in message and "undone" in message, message
        assert "publishes 127.0.20.1 (blue)" in message
        assert {n: annotations_of(kube, namespace, n) for n in ("shop-blue", "shop-green")} == before
    assert cli(cluster, namespace, "switch", "--to", "green").exit_code == 0


def test_switch_without_to_refuses_a_split_and_deploy_too(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec
) -> None:
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: NAME})
    color_lb(kube, namespace, "green", GREEN_IP, {HOSTNAME: NAME})
    switched = cli(cluster, namespace, "switch")
    assert switched.exit_code == 1 and switched.error is not None
    assert "both colours: a split" in switched.error.message and "--to" in switched.error.remedy
    deployed = cli(cluster, namespace, "deploy", "--image", "registry.local/shop:2.0")
    assert deployed.exit_code == 1 and deployed.error is not None
    assert "shop-blue, shop-green" in deployed.error.message and "switch --to" in deployed.error.remedy
    green = kube.get(Deployment, "shop-green", namespace=namespace)
    assert green.spec is not None and green.spec.template.spec is not None
    assert [c.image for c in green.spec.template.spec.containers] == ["registry.local/shop:1.0"]
    settled = cli(cluster, namespace, "switch", "--to", "blue")
    assert settled.exit_code == 0
    assert HOSTNAME not in annotations_of(kube, namespace, "shop-green")
