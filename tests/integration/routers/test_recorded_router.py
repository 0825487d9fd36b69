"""`init --router R` on the real apiserver: the colour Services R needs are created and checked, R is
recorded on the app, later commands use it without `--router`, and a disagreeing `--router` is refused."""

from __future__ import annotations

from typing import cast

from lightkube import Client
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.resources.networking_v1 import Ingress

from bluegreen.cli import Outcome, execute
from bluegreen.routers import RECORDED
from hack.localcluster import LocalCluster
from tests.integration.routers.test_routers_ingress import backends, ingress
from tests.support.apps import deployment, endpoint_ips, ready_pod_ips, wait_available

OWN = {"app": "shop"}  # the labels the app's pods carried before bluegreen: no app.kubernetes.io/name


def plain_app(kube: Client, namespace: str) -> None:
    """`shop` as it ran before bluegreen: Deployment `shop` and Service `shop`, both on `app: shop`."""
    dep = deployment("shop", "blue", replicas=1).to_dict()
    dep["metadata"]["name"] = "shop"
    dep["metadata"]["labels"] = dict(OWN)
    dep["spec"]["selector"]["matchLabels"] = dict(OWN)
    dep["spec"]["template"]["metadata"]["labels"] = dict(OWN)
    kube.create(cast(Deployment, Deployment.from_dict(dep)), namespace=namespace)
    kube.create(
        Service(
            metadata=ObjectMeta(name="shop"),
            spec=ServiceSpec(selector=dict(OWN), ports=[ServicePort(name="http", port=80, targetPort=8080)]),
        ),
        namespace=namespace,
    )
    wait_available(kube, namespace, "shop")


def recorded(kube: Client, namespace: str) -> str | None:
    stable = kube.get(Service, "shop", namespace=namespace)
    assert stable.metadata is not None
    return (stable.metadata.annotations or {}).get(RECORDED)


def bg(cluster: LocalCluster, namespace: str, *args: str) -> Outcome:
    return execute([*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)])


def test_init_router_ingress_sets_up_the_colour_services_and_later_commands_use_it(
    cluster: LocalCluster, kube: Client, namespace: str, crds: list[str]
) -> None:
    plain_app(kube, namespace)
    kube.create(ingress("shop-blue"), namespace=namespace)

    adopted = bg(cluster, namespace, "init", "--router", "ingress")

    assert adopted.exit_code == 0, adopted.error
    assert recorded(kube, namespace) == "ingress"
    for color in ("blue", "green"):
        svc = kube.get(Service, f"shop-{color}", namespace=namespace)
        assert svc.spec is not None and svc.spec.selector == {**OWN, "bluegreen.io/color": color}
    blue_pods = ready_pod_ips(kube, namespace, {**OWN, "bluegreen.io/color": "blue"})
    assert blue_pods and endpoint_ips(kube, namespace, "shop-blue") == blue_pods
    again = bg(cluster, namespace, "init", "--router", "ingress")
    assert again.exit_code == 0 and again.result is not None and again.result.result == "noop"

    # No --router from here on: deploy and switch use the recorded ingress router.
    deployed = bg(cluster, namespace, "deploy", "--image", "registry.local/shop:2.0", "--timeout", "60s")
    assert deployed.exit_code == 0, deployed.error
    switched = bg(cluster, namespace, "switch", "--to", "green")
    assert switched.exit_code == 0, switched.error
    assert backends(kube, namespace) == ["shop-green", "admin"]

    # A --router that disagrees with the recorded one: refused by name, nothing written.
    before = kube.get(Ingress, "shop", namespace=namespace)
    refused = bg(cluster, namespace, "switch", "--to", "blue", "--router", "service")
    assert refused.exit_code == 2
    assert refused.error is not None
    assert "--router service disagrees" in refused.error.message and "ingress" in refused.error.message
    after = kube.get(Ingress, "shop", namespace=namespace)
    assert before.metadata is not None and after.metadata is not None
    assert after.metadata.resourceVersion == before.metadata.resourceVersion
    assert backends(kube, namespace) == ["shop-green", "admin"]


def test_init_router_dns_refuses_to_create_the_colour_services_and_says_what_to_create(
    cluster: LocalCluster, kube: Client, namespace: str
) -> None:
    plain_app(kube, namespace)

    refused = bg(cluster, namespace, "init", "--router", "dns")

    assert refused.exit_code == 2
    assert refused.error is not None
    assert "shop-blue does not exist" in refused.error.message
    assert "LoadBalancer" in refused.error.remedy
    # Nothing was changed: no blue Deployment, no colour Service, no router recorded.
    names = {d.metadata.name for d in kube.list(Deployment, namespace=namespace) if d.metadata}
    assert names == {"shop"}
    services = {s.metadata.name for s in kube.list(Service, namespace=namespace) if s.metadata}
    assert services == {"shop"}
    assert recorded(kube, namespace) is None
