"""The routers' pure parts on plain dicts: which colour an object routes to, and the patch that moves it."""

from __future__ import annotations

from typing import Any, cast

import pytest
from lightkube import Client

from bluegreen.errors import NotAdoptedError
from bluegreen.model import AppSpec, Color
from bluegreen.routers._common import active_of_splits
from bluegreen.routers.gateway import GatewayRouter
from bluegreen.routers.ingress import IngressRouter
from bluegreen.routers.istio import IstioRouter
from bluegreen.routers.smi import SmiRouter

APP = AppSpec(name="shop", namespace="prod")
NO_CLUSTER = cast(Client, None)  # the pure parts never touch it


def test_splits_agreeing_on_one_colour() -> None:
    assert active_of_splits([{Color.BLUE: 100, Color.GREEN: 0}, {Color.BLUE: 1}]) is Color.BLUE
    assert active_of_splits([{Color.BLUE: 50, Color.GREEN: 50}]) is None  # split traffic
    assert active_of_splits([{Color.BLUE: 100}, {Color.GREEN: 100}]) is None  # rules disagree


def ingress(*backends: str, default: str | None = None) -> dict[str, Any]:
    paths = [
        {"path": f"/{i}", "pathType": "Prefix", "backend": {"service": {"name": b, "port": {"number": 80}}}}
        for i, b in enumerate(backends)
    ]
    spec: dict[str, Any] = {"rules": [{"host": "shop.test", "http": {"paths": paths}}]}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {"metadata": {"resourceVersion": "7"}, "spec": spec}


def test_ingress_patch_renames_only_colour_backends() -> None:
    router = IngressRouter(APP, NO_CLUSTER)
    obj = ingress("shop-blue", "admin", default="shop-blue")
    assert router.active_of(obj) is Color.BLUE
    patch = router.patch_for(obj, Color.GREEN)
    paths = patch["spec"]["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["name"] for p in paths] == ["shop-green", "admin"]
    assert paths[0]["backend"]["service"]["port"] == {"number": 80}
    assert patch["spec"]["defaultBackend"]["service"]["name"] == "shop-green"
    assert router.active_of({"spec": patch["spec"]}) is Color.GREEN


def test_ingress_mixed_or_unadopted() -> None:
    router = IngressRouter(APP, NO_CLUSTER)
    assert router.active_of(ingress("shop-blue", "shop-green")) is None
    with pytest.raises(NotAdoptedError, match="shop-blue or shop-green"):
        router.patch_for(ingress("shop"), Color.GREEN)


def route(*refs: dict[str, Any], generation: int = 2, status: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"generation": generation},
        "spec": {"rules": [{"backendRefs": list(refs)}]},
    }
    if status is not None:
        obj["status"] = status
    return obj


def test_gateway_weights_and_default_weight() -> None:
    router = GatewayRouter(APP, NO_CLUSTER)
    assert (
        router.active_of(route({"name": "shop-blue", "weight": 100}, {"name": "shop-green", "weight": 0}))
        is Color.BLUE
    )
    # No weight means 1 in Gateway API: both colours get traffic.
    assert router.active_of(route({"name": "shop-blue"}, {"name": "shop-green"})) is None
    # A Service in another namespace or another kind of backend is not one of ours.
    assert router.active_of(route({"name": "shop-blue", "namespace": "other"})) is None


def test_gateway_patch_adds_missing_colour_and_keeps_other_refs() -> None:
    router = GatewayRouter(APP, NO_CLUSTER)
    obj = route({"name": "shop-blue", "port": 80}, {"name": "legacy", "port": 80, "weight": 5})
    refs = router.patch_for(obj, Color.GREEN)["spec"]["rules"][0]["backendRefs"]
    assert refs == [
        {"name": "shop-blue", "port": 80, "weight": 0},
        {"name": "legacy", "port": 80, "weight": 5},
        {"name": "shop-green", "port": 80, "weight": 100},
    ]


def parent(kind: str, status: str, generation: int) -> dict[str, Any]:
    return {
        "parentRef": {"name": "public"},
        "controllerName": "example/gw",
        "conditions": [
            {"type": kind, "status": status, "observedGeneration": generation, "reason": "R", "message": "m"}
        ],
    }


def test_gateway_status_needs_accepted_at_the_new_generation() -> None:
    router = GatewayRouter(APP, NO_CLUSTER)
    assert router.status_problem(route(), Color.GREEN) == (None, False)
    stale, reported = router.status_problem(
        route(status={"parents": [parent("Accepted", "True", 1)]}), Color.GREEN
    )
    assert reported and stale and "not yet 2" in stale
    refused, _ = router.status_problem(
        route(status={"parents": [parent("Accepted", "False", 2)]}), Color.GREEN
    )
    assert refused and "Accepted=False" in refused
    assert router.status_problem(route(status={"parents": [parent("Accepted", "True", 2)]}), Color.GREEN) == (
        None,
        True,
    )
    assert "no gateway controller" in router.unverified(route())[0]


def vs(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"hosts": ["shop"], "http": [{"route": list(routes)}]}}


def test_istio_lone_destination_gets_everything_and_patch_adds_subset() -> None:
    router = IstioRouter(APP, NO_CLUSTER)
    lone = vs({"destination": {"host": "shop.prod.svc.cluster.local", "subset": "green"}})
    assert router.active_of(lone) is Color.GREEN
    routes = router.patch_for(lone, Color.BLUE)["spec"]["http"][0]["route"]
    assert {r["destination"]["subset"]: r["weight"] for r in routes} == {"green": 0, "blue": 100}
    assert all(r["destination"]["host"] == "shop.prod.svc.cluster.local" for r in routes)
    # Another host's route is not ours.
    assert router.active_of(vs({"destination": {"host": "cart", "subset": "blue"}})) is None


def test_smi_weights_including_legacy_quantities() -> None:
    router = SmiRouter(APP, NO_CLUSTER)
    obj = {
        "spec": {
            "service": "shop",
            "backends": [
                {"service": "shop-blue", "weight": "1000m"},
                {"service": "shop-green", "weight": "0m"},
            ],
        }
    }
    assert router.active_of(obj) is Color.BLUE
    backends = router.patch_for(
        {"spec": {"service": "shop", "backends": [{"service": "shop-blue", "weight": 100}]}}, Color.GREEN
    )["spec"]["backends"]
    assert backends == [{"service": "shop-blue", "weight": 0}, {"service": "shop-green", "weight": 100}]


def test_the_router_given_else_recorded_else_service() -> None:
    from bluegreen.routers import chosen, recorded

    service = {"metadata": {"annotations": {"bluegreen.io/router": "ingress"}}}
    where = {"app": "shop", "namespace": "prod", "service": "shop"}
    assert chosen("", recorded(service), **where) == "ingress"
    assert chosen("ingress", recorded(service), **where) == "ingress"
    assert chosen("gateway", recorded({"metadata": {}}), **where) == "gateway"
    assert chosen("", recorded(None), **where) == "service"


def test_a_given_router_that_disagrees_with_the_recorded_one_is_refused_naming_both() -> None:
    from bluegreen.errors import ConfigError
    from bluegreen.routers import chosen

    with pytest.raises(ConfigError, match=r"--router service disagrees .*: ingress") as refused:
        chosen("service", "ingress", app="shop", namespace="prod", service="shop")
    assert "kubectl -n prod annotate service shop bluegreen.io/router-" in refused.value.remedy


def deployment(name: str, *, replicas: int = 3, ready: int = 3, observed: int = 2) -> dict[str, Any]:
    counts = {"replicas": replicas, "updatedReplicas": replicas, "availableReplicas": ready}
    return {
        "metadata": {"name": name, "generation": 2},
        "spec": {"replicas": replicas},
        "status": {**counts, "readyReplicas": ready, "observedGeneration": observed},
    }


def endpoint(pod: str, *, ready: bool = True, kind: str = "Pod") -> dict[str, Any]:
    return {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": ready},
        "targetRef": {"kind": kind, "name": pod},
    }


def test_the_target_pods_are_known_unlisted_only_from_a_complete_rollout_with_an_unambiguous_name() -> None:
    from bluegreen.routers.service import expected_pods

    assert expected_pods(deployment("shop-green"), deployment("shop-blue")) == ("shop-green-", 3)
    assert expected_pods(deployment("shop-green", ready=2), None) is None  # not every replica Ready
    assert expected_pods(deployment("shop-green", observed=1), None) is None  # spec not yet observed
    assert expected_pods(deployment("shop-green", replicas=0, ready=0), None) is None
    assert expected_pods(deployment("shop"), deployment("shop-canary")) is None  # one prefixes the other
    assert expected_pods(deployment("x" * 47), None) is None  # pod names may cut the Deployment's name
    assert expected_pods(None, deployment("shop-blue")) is None


def test_slices_list_exactly_the_target_pods_counted_once_per_pod() -> None:
    from bluegreen.routers.service import lists_exactly

    green = [endpoint(f"shop-green-5d8f-{n}") for n in ("a", "b", "c")]
    assert lists_exactly([{"endpoints": green}], "shop-green-", 3)
    # Dual stack: an IPv4 and an IPv6 slice list the same pods.
    assert lists_exactly([{"endpoints": green}, {"endpoints": green}], "shop-green-", 3)
    assert not lists_exactly([{"endpoints": green[:2]}], "shop-green-", 3)  # one missing
    old = endpoint("shop-blue-77aa-d")
    assert not lists_exactly([{"endpoints": [*green, old]}], "shop-green-", 3)  # the old colour still in
    terminating = endpoint("shop-blue-77aa-d", ready=False)
    assert lists_exactly([{"endpoints": [*green, terminating]}], "shop-green-", 3)  # offers no traffic
    assert not lists_exactly(
        [{"endpoints": [*green, endpoint("shop-green-x", kind="Node")]}], "shop-green-", 3
    )
