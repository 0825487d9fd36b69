"""The ingress router on the real apiserver: the Ingress backend moves between the colour Services."""

from __future__ import annotations

from typing import cast

import pytest
from lightkube import Client
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.networking_v1 import (
    HTTPIngressPath,
    HTTPIngressRuleValue,
    IngressBackend,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    ServiceBackendPort,
)
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType

from bluegreen.errors import ConflictError, NotAdoptedError, NotReadyError
from bluegreen.model import AppSpec, Color
from bluegreen.routers.ingress import IngressRouter
from tests.support.apps import deployment, endpoint_ips, ready_pod_ips, service, wait_available


def ingress(backend: str, *, other: str = "admin") -> Ingress:
    def path(p: str, service: str) -> HTTPIngressPath:
        return HTTPIngressPath(
            path=p,
            pathType="Prefix",
            backend=IngressBackend(
                service=IngressServiceBackend(name=service, port=ServiceBackendPort(number=80))
            ),
        )

    return Ingress(
        metadata=ObjectMeta(name="shop"),
        spec=IngressSpec(
            rules=[
                IngressRule(
                    host="shop.example.test",
                    http=HTTPIngressRuleValue(paths=[path("/", backend), path("/admin", other)]),
                )
            ]
        ),
    )


def backends(kube: Client, namespace: str) -> list[str]:
    found = kube.get(Ingress, "shop", namespace=namespace)
    assert found.spec is not None and found.spec.rules
    http = found.spec.rules[0].http
    assert http is not None
    return [p.backend.service.name for p in http.paths if p.backend.service]


def test_switch_moves_backend_and_creates_colour_services(kube: Client, namespace: str, app: AppSpec) -> None:
    kube.create(ingress("shop-blue"), namespace=namespace)
    router = IngressRouter(app, kube)
    state = router.read()
    assert state.active is Color.BLUE

    write = router.switch_to(Color.GREEN, state=state)
    assert write.changed
    assert backends(kube, namespace) == ["shop-green", "admin"]  # the other backend untouched
    for color in Color:
        svc = kube.get(Service, f"shop-{color}", namespace=namespace)
        assert svc.spec is not None and svc.spec.selector == app.pod_labels(color)
        assert svc.spec.ports and svc.spec.ports[0].port == 80

    result = router.verify(Color.GREEN, timeout=20)
    assert result.ok, result.message
    assert any("ingress controller" in u for u in result.unverified)
    assert router.read().active is Color.GREEN


def test_already_there_is_a_no_op(kube: Client, namespace: str, app: AppSpec) -> None:
    kube.create(ingress("shop-green"), namespace=namespace)
    router = IngressRouter(app, kube)
    state = router.read()
    write = router.switch_to(Color.GREEN, state=state)
    assert not write.changed
    assert router.read().resource_version == state.resource_version


def test_stale_read_is_a_conflict_and_nothing_changes(kube: Client, namespace: str, app: AppSpec) -> None:
    kube.create(ingress("shop-blue"), namespace=namespace)
    router = IngressRouter(app, kube)
    state = router.read()
    kube.patch(
        Ingress,
        "shop",
        {"metadata": {"labels": {"touched": "yes"}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    with pytest.raises(ConflictError):
        router.switch_to(Color.GREEN, state=state)
    assert backends(kube, namespace) == ["shop-blue", "admin"]


def test_ingress_without_colour_backend_is_refused(kube: Client, namespace: str, app: AppSpec) -> None:
    kube.create(ingress("shop"), namespace=namespace)
    router = IngressRouter(app, kube)
    state = router.read()
    assert state.active is None
    with pytest.raises(NotAdoptedError, match="shop-blue"):
        router.switch_to(Color.GREEN, state=state)
    assert backends(kube, namespace) == ["shop", "admin"]


def adopted(kube: Client, namespace: str) -> AppSpec:
    """`shop` as `init` leaves an app whose pods carry their own labels (`app: shop`), no
    `app.kubernetes.io/name`: both colours Ready, the stable Service on blue."""
    for color in Color:
        dep = deployment("shop", str(color), replicas=1).to_dict()
        labels = {"app": "shop", "bluegreen.io/color": str(color)}
        dep["metadata"]["labels"] = labels
        dep["spec"]["selector"]["matchLabels"] = labels
        dep["spec"]["template"]["metadata"]["labels"] = labels
        kube.create(cast(Deployment, Deployment.from_dict(dep)), namespace=namespace)
    stable = service("shop", "shop", "blue").to_dict()
    stable["spec"]["selector"] = {"app": "shop", "bluegreen.io/color": "blue"}
    kube.create(cast(Service, Service.from_dict(stable)), namespace=namespace)
    for color in Color:
        wait_available(kube, namespace, f"shop-{color}")
    return AppSpec(name="shop", namespace=namespace)


def test_colour_services_select_an_adopted_apps_own_pods(
    kube: Client, namespace: str, crds: list[str]
) -> None:
    app = adopted(kube, namespace)
    # A colour Service an earlier version made with the fixed name label: it selected nothing.
    kube.create(
        Service(
            metadata=ObjectMeta(name="shop-green", labels={"bluegreen.io/managed": "true"}),
            spec=ServiceSpec(
                selector={"app.kubernetes.io/name": "shop", "bluegreen.io/color": "green"},
                ports=[ServicePort(port=80, targetPort=8080)],
            ),
        ),
        namespace=namespace,
    )
    kube.create(ingress("shop-blue"), namespace=namespace)
    router = IngressRouter(app, kube)
    found = router.check_backend(Color.GREEN)
    assert "ready endpoint" in found, found
    for color in Color:
        svc = kube.get(Service, f"shop-{color}", namespace=namespace)
        assert svc.spec is not None and svc.spec.selector == {"app": "shop", "bluegreen.io/color": str(color)}
    assert endpoint_ips(kube, namespace, "shop-green") == ready_pod_ips(
        kube, namespace, {"app": "shop", "bluegreen.io/color": "green"}
    )


def test_a_target_whose_service_lists_no_endpoints_is_refused_before_the_write(
    kube: Client, namespace: str, crds: list[str]
) -> None:
    app = adopted(kube, namespace)
    # The user's own shop-green (not bluegreen's: left as it is) selects no pod.
    kube.create(
        Service(
            metadata=ObjectMeta(name="shop-green"),
            spec=ServiceSpec(selector={"app": "nothing"}, ports=[ServicePort(port=80, targetPort=8080)]),
        ),
        namespace=namespace,
    )
    kube.create(ingress("shop-blue"), namespace=namespace)
    before = kube.get(Ingress, "shop", namespace=namespace)
    with pytest.raises(NotReadyError, match=r"lists no ready endpoints.*nothing was changed"):
        IngressRouter(app, kube).check_backend(Color.GREEN)
    after = kube.get(Ingress, "shop", namespace=namespace)
    assert after.metadata is not None and before.metadata is not None
    assert after.metadata.resourceVersion == before.metadata.resourceVersion
