"""The gateway, istio and smi routers on the real apiserver with the published CRDs installed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import history
from bluegreen.cli import Outcome, execute
from bluegreen.errors import ConflictError
from bluegreen.model import AppSpec, Color, NullReporter
from bluegreen.phases import switch
from bluegreen.phases.context import Context
from bluegreen.routers.gateway import GatewayRouter, HTTPRoute
from bluegreen.routers.istio import DestinationRule, IstioRouter, VirtualService
from bluegreen.routers.smi import SmiRouter, traffic_split
from hack.localcluster import LocalCluster


def http_route(namespace: str, blue: int, green: int) -> Any:
    return HTTPRoute.from_dict(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "shop", "namespace": namespace},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "hostnames": ["shop.example.test"],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": [
                            {"name": "shop-blue", "port": 80, "weight": blue},
                            {"name": "shop-green", "port": 80, "weight": green},
                        ],
                    }
                ],
            },
        }
    )


def weights(kube: Client, namespace: str) -> list[int]:
    found = kube.get(HTTPRoute, "shop", namespace=namespace)
    return [r["weight"] for r in found["spec"]["rules"][0]["backendRefs"]]


def set_route_status(kube: Client, namespace: str, *, generation: int, accepted: str) -> None:
    """What a gateway controller would write: Accepted and ResolvedRefs for the parent `public`."""
    now = "2026-01-01T00:00:00Z"
    conditions = [
        {
            "type": kind,
            "status": status,
            "reason": "Accepted" if status == "True" else "NotAllowedByListeners",
            "message": "",
            "observedGeneration": generation,
            "lastTransitionTime": now,
        }
        for kind, status in (("Accepted", accepted), ("ResolvedRefs", "True"))
    ]
    status = {
        "parents": [
            {
                "parentRef": {"name": "public"},
                "controllerName": "example.test/gateway-controller",
                "conditions": conditions,
            }
        ]
    }
    kube.patch(HTTPRoute.Status, "shop", {"status": status}, namespace=namespace, patch_type=PatchType.MERGE)


def test_gateway_switch_sets_weights_and_says_no_controller(
    kube: Client, namespace: str, app: AppSpec
) -> None:
    kube.create(http_route(namespace, 100, 0), namespace=namespace)
    router = GatewayRouter(app, kube)
    state = router.read()
    assert state.active is Color.BLUE and state.detail == "weights blue=100 green=0"

    write = router.switch_to(Color.GREEN, state=state)
    assert write.changed and weights(kube, namespace) == [0, 100]
    result = router.verify(Color.GREEN, timeout=20)
    assert result.ok, result.message
    assert any("no gateway controller" in u for u in result.unverified)
    assert not router.switch_to(Color.GREEN, state=router.read()).changed


def test_gateway_verify_waits_for_accepted_at_the_new_generation(
    kube: Client, namespace: str, app: AppSpec
) -> None:
    kube.create(http_route(namespace, 100, 0), namespace=namespace)
    router = GatewayRouter(app, kube)
    set_route_status(kube, namespace, generation=1, accepted="True")
    router.switch_to(Color.GREEN, state=router.read())

    stale = router.verify(Color.GREEN, timeout=0.5)
    assert not stale.ok and "not yet 2" in stale.message

    set_route_status(kube, namespace, generation=2, accepted="False")
    refused = router.verify(Color.GREEN, timeout=0.5)
    assert not refused.ok and "Accepted=False" in refused.message

    set_route_status(kube, namespace, generation=2, accepted="True")
    accepted = router.verify(Color.GREEN, timeout=5)
    assert accepted.ok, accepted.message
    assert not any("no gateway controller" in u for u in accepted.unverified)


def test_gateway_stale_read_conflicts(kube: Client, namespace: str, app: AppSpec) -> None:
    kube.create(http_route(namespace, 100, 0), namespace=namespace)
    router = GatewayRouter(app, kube)
    state = router.read()
    kube.patch(
        HTTPRoute,
        "shop",
        {"spec": {"hostnames": ["other.example.test"]}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    with pytest.raises(ConflictError):
        router.switch_to(Color.GREEN, state=state)
    assert weights(kube, namespace) == [100, 0]


def test_istio_switch_creates_subsets_and_moves_weights(kube: Client, namespace: str, app: AppSpec) -> None:
    kube.create(
        VirtualService.from_dict(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "shop", "namespace": namespace},
                "spec": {
                    "hosts": ["shop"],
                    "http": [{"route": [{"destination": {"host": "shop", "subset": "blue"}}]}],
                },
            }
        ),
        namespace=namespace,
    )
    router = IstioRouter(app, kube)
    state = router.read()
    assert state.active is Color.BLUE

    write = router.switch_to(Color.GREEN, state=state)
    assert write.changed
    routes = kube.get(VirtualService, "shop", namespace=namespace)["spec"]["http"][0]["route"]
    assert {r["destination"]["subset"]: r["weight"] for r in routes} == {"blue": 0, "green": 100}
    rule = kube.get(DestinationRule, "shop", namespace=namespace)["spec"]
    assert rule["host"] == "shop"
    assert {s["name"]: s["labels"] for s in rule["subsets"]} == {
        "blue": {"bluegreen.io/color": "blue"},
        "green": {"bluegreen.io/color": "green"},
    }
    result = router.verify(Color.GREEN, timeout=10)
    assert result.ok, result.message
    assert any("istiod" in u for u in result.unverified)
    back = router.switch_to(Color.BLUE, state=router.read())
    assert back.changed and router.read().active is Color.BLUE


def test_smi_switch_moves_weights(kube: Client, namespace: str, app: AppSpec) -> None:
    split = traffic_split()
    kube.create(
        split.from_dict(
            {
                "apiVersion": "split.smi-spec.io/v1alpha2",
                "kind": "TrafficSplit",
                "metadata": {"name": "shop", "namespace": namespace},
                "spec": {"service": "shop", "backends": [{"service": "shop-blue", "weight": 100}]},
            }
        ),
        namespace=namespace,
    )
    router = SmiRouter(app, kube)
    state = router.read()
    assert state.active is Color.BLUE
    router.switch_to(Color.GREEN, state=state)
    backends = kube.get(split, "shop", namespace=namespace)["spec"]["backends"]
    assert {b["service"]: b["weight"] for b in backends} == {"shop-blue": 0, "shop-green": 100}
    result = router.verify(Color.GREEN, timeout=20)
    assert result.ok, result.message
    assert result.unverified == ("that the mesh applied the split: a TrafficSplit has no status",)


def test_a_split_route_is_refused_by_deploy_and_by_switch_without_to(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec
) -> None:
    kube.create(http_route(namespace, 50, 50), namespace=namespace)

    def bg(*args: str) -> Outcome:
        return execute(
            [
                *args,
                "--router",
                "gateway",
                "--app",
                "shop",
                "-n",
                namespace,
                "--kubeconfig",
                str(cluster.kubeconfig),
            ]
        )

    deployed = bg("deploy", "--image", "registry.local/shop:2.0")
    assert deployed.exit_code == 1 and deployed.error is not None
    assert "blue=50 green=50" in deployed.error.message and "switch --to" in deployed.error.remedy
    switched = bg("switch")
    assert switched.exit_code == 1 and switched.error is not None
    assert "blue=50 green=50" in switched.error.message and "switch --to" in switched.error.remedy
    assert weights(kube, namespace) == [50, 50]
    # Naming the colour settles it.
    settled = bg("switch", "--to", "blue")
    assert settled.exit_code == 0, settled.error
    assert weights(kube, namespace) == [100, 0]


def test_a_history_that_cannot_be_recorded_after_the_switch_is_reported_not_dropped(
    kube: Client, namespace: str, app: AppSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bluegreen import kube as seam
    from bluegreen.model import Reporter
    from bluegreen.phases import switch
    from bluegreen.phases.context import Context

    kube.create(http_route(namespace, 100, 0), namespace=namespace)

    class Contended:
        """The real client; notes when the HTTPRoute was written (a typed call)."""

        def __init__(self, inner: Client) -> None:
            self.inner, self.moved, self.bumps = inner, False, 0

        def __getattr__(self, item: str) -> Any:
            return getattr(self.inner, item)

        def patch(self, resource: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            if resource is HTTPRoute:
                self.moved = True
            return self.inner.patch(resource, name, *args, **kwargs)

    contended = Contended(kube)
    real_send = seam._send
    live_path = f"/api/v1/namespaces/{namespace}/services/shop"

    def send(client: Any, method: str, path: str, **kwargs: Any) -> bytes:
        """Once the HTTPRoute was written, another writer changes the live Service between every read
        and write of it (a real 409 from the apiserver each time): the history reads it as JSON."""
        answer = real_send(client, method, path, **kwargs)
        if contended.moved and method == "GET" and path == live_path:
            contended.bumps += 1
            kube.patch(
                Service,
                "shop",
                {"metadata": {"annotations": {"someone-else": str(contended.bumps)}}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )
        return answer

    monkeypatch.setattr(seam, "_send", send)

    warnings: list[str] = []

    class Collect:
        def progress(self, message: str) -> None:
            pass

        def warning(self, message: str) -> None:
            warnings.append(message)

        def stage(self, name: str) -> None:
            pass

    reporter: Reporter = Collect()
    ctx = Context(kube=contended, app=app, router="gateway", reporter=reporter)  # type: ignore[arg-type]
    result = switch.run(ctx, to=Color.GREEN, verify_timeout=20)
    monkeypatch.undo()

    assert contended.bumps > 0
    assert weights(kube, namespace) == [0, 100]  # traffic moved
    assert any("history could not be recorded" in w for w in warnings)
    assert any("history could not be recorded" in m for m in result.messages)
    live = kube.get(Service, "shop", namespace=namespace)
    assert live.metadata is not None and live.metadata.annotations is not None
    # The intent is still there, so status says the history lags.
    assert live.metadata.annotations["bluegreen.io/switching-to"] == "green"


@pytest.mark.parametrize("undo", [True, False])
def test_a_switch_that_does_not_verify_is_undone_unless_no_undo(
    kube: Client, namespace: str, app: AppSpec, undo: bool
) -> None:
    """A gateway controller reports the route Accepted, then never accepts the new weights: the
    verification fails, and the switch is moved back to blue by itself (or left, with --no-undo)."""
    kube.create(http_route(namespace, 100, 0), namespace=namespace)
    set_route_status(kube, namespace, generation=1, accepted="True")
    ctx = Context(kube=kube, app=app, router="gateway", reporter=NullReporter())
    result = switch.run(ctx, to=Color.GREEN, verify_timeout=1, undo=undo)

    assert result.result == "failed"
    assert "not yet 2" in " ".join(result.messages)
    if undo:
        assert weights(kube, namespace) == [100, 0]
        assert result.active_color == "blue"
        assert any(m.startswith("rolled back the switch") for m in result.messages), result.messages
        newest = json.loads(
            kube.get(Service, "shop", namespace=namespace).to_dict()["metadata"]["annotations"][
                history.HISTORY
            ]
        )[0]
        assert (newest["action"], newest["to"]) == ("undo", "blue")
    else:
        assert weights(kube, namespace) == [0, 100]
        assert not any("rolled back" in m for m in result.messages)
