"""The ingress router on the real apiserver: the Ingress backend moves between the colour Services."""

from __future__ import annotations

import pytest
from lightkube import Client
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
from lightkube.resources.core_v1 import Service
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType

from bluegreen.errors import ConflictError, NotAdoptedError
from bluegreen.model import AppSpec, Color
from bluegreen.routers.ingress import IngressRouter


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
