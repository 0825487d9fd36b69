"""Group switch and rollback on the real apiserver: several apps with different routers move as one."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Event, Service
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType

from bluegreen.cli import execute
from bluegreen.errors import ClusterError, ConfigError, LockHeldError, NotReadyError, RefusedError
from bluegreen.group import Group, Member
from bluegreen.model import Color
from bluegreen.phases import group as phase
from bluegreen.routers import RECORDED
from bluegreen.routers.base import Router
from bluegreen.routers.gateway import HTTPRoute
from bluegreen.routers.smi import traffic_split
from hack.localcluster import LocalCluster
from tests.integration.routers.test_routers_ingress import ingress
from tests.support.apps import create_app, deployment, wait_available


def route(name: str, namespace: str) -> Any:
    return HTTPRoute.from_dict(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": f"{name}-blue", "port": 80, "weight": 100},
                            {"name": f"{name}-green", "port": 80, "weight": 0},
                        ]
                    }
                ],
            },
        }
    )


def split(name: str, namespace: str) -> Any:
    return traffic_split().from_dict(
        {
            "apiVersion": "split.smi-spec.io/v1alpha2",
            "kind": "TrafficSplit",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"service": name, "backends": [{"service": f"{name}-blue", "weight": 100}]},
        }
    )


@pytest.fixture
def storefront(kube: Client, namespace: str, crds: list[str]) -> Group:
    """Three apps on blue: shop behind an Ingress, cart behind an HTTPRoute, pay behind a TrafficSplit."""
    for name in ("shop", "cart", "pay"):
        create_app(kube, namespace, name, replicas=1, wait=False)
    # Every colour of every member available before a test starts: on a busy machine, the last
    # app's rollout finishing says nothing about the first's.
    for name in ("shop", "cart", "pay"):
        for color in ("blue", "green"):
            wait_available(kube, namespace, f"{name}-{color}")
    kube.create(ingress("shop-blue"), namespace=namespace)
    kube.create(route("cart", namespace), namespace=namespace)
    kube.create(split("pay", namespace), namespace=namespace)
    return Group(
        name="storefront",
        members=(
            Member(app="shop", namespace=namespace, router="ingress"),
            Member(app="cart", namespace=namespace, router="gateway"),
            Member(app="pay", namespace=namespace, router="smi"),
        ),
    )


def colors(kube: Client, group: Group) -> dict[str, Color | None]:
    return {m.app: s.active if not isinstance(s, str) else None for m, s in phase.status(kube, group)}


def leases(kube: Client, namespace: str) -> list[str]:
    """The locks held now (a released lock keeps its Lease, with no holder)."""
    return [
        lease.metadata.name or ""
        for lease in kube.list(Lease, namespace=namespace)
        if lease.metadata and lease.spec and lease.spec.holderIdentity
    ]


def test_group_switch_then_rollback_moves_every_member(
    kube: Client, namespace: str, storefront: Group
) -> None:
    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30)
    assert result.ok, result.text()
    assert result.target is Color.GREEN
    assert colors(kube, storefront) == {"shop": Color.GREEN, "cart": Color.GREEN, "pay": Color.GREEN}
    assert result.skew_ms >= 0 and all(m.verified for m in result.members)
    assert "no gateway controller" in result.text()  # said plainly, once, in the report
    assert leases(kube, namespace) == []  # every lock released

    back = phase.run(kube, storefront, action="rollback", timeout=30)
    assert back.ok, back.text()
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}


def test_a_member_the_file_gives_no_router_moves_the_frontend_init_recorded(
    kube: Client, namespace: str, storefront: Group
) -> None:
    """shop was set up behind its Ingress (`init --router ingress` records it on the Service); a group
    file that names no router for it moves the Ingress, not the Service's selector. One that names
    another router is refused before anything is written: the frontend would stay on the old colour
    while the history said traffic moved."""
    recorded = {"metadata": {"annotations": {RECORDED: "ingress"}}}
    kube.patch(Service, "shop", recorded, namespace=namespace, patch_type=PatchType.MERGE)
    selector = kube.get(Service, "shop", namespace=namespace).spec.selector  # type: ignore[union-attr]
    unnamed = replace(storefront, members=(Member(app="shop", namespace=namespace), *storefront.members[1:]))

    result = phase.run(kube, unnamed, to=Color.GREEN, timeout=30)
    assert result.ok, result.text()
    assert "[ingress]" in result.text()
    assert colors(kube, unnamed) == {"shop": Color.GREEN, "cart": Color.GREEN, "pay": Color.GREEN}
    assert kube.get(Service, "shop", namespace=namespace).spec.selector == selector  # type: ignore[union-attr]

    named = replace(
        storefront,
        members=(Member(app="shop", namespace=namespace, router="service"), *storefront.members[1:]),
    )
    with pytest.raises(ConfigError, match="disagrees with the router recorded for app shop: ingress"):
        phase.run(kube, named, to=Color.BLUE, timeout=30)
    assert colors(kube, unnamed) == {"shop": Color.GREEN, "cart": Color.GREEN, "pay": Color.GREEN}
    assert leases(kube, namespace) == []


def test_a_failed_verification_moves_the_others_back(kube: Client, namespace: str, storefront: Group) -> None:
    # cart's gateway controller reports a status, but never accepts the new generation.
    status = {
        "parents": [
            {
                "parentRef": {"name": "public"},
                "controllerName": "example.test/gateway-controller",
                "conditions": [
                    {
                        "type": "Accepted",
                        "status": "True",
                        "reason": "Accepted",
                        "message": "",
                        "observedGeneration": 1,
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            }
        ]
    }
    kube.patch(HTTPRoute.Status, "cart", {"status": status}, namespace=namespace, patch_type=PatchType.MERGE)
    result = phase.run(kube, storefront, to=Color.GREEN, timeout=1)
    assert not result.ok
    assert result.failed == [f"{namespace}/cart"]
    assert sorted(result.moved_back) == sorted(f"{namespace}/{a}" for a in ("shop", "cart", "pay"))
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}
    assert "not yet 2" in result.text()


def test_a_failed_write_moves_the_others_back(kube: Client, namespace: str, storefront: Group) -> None:
    class Refuses:
        """Wraps pay's real router; its write fails as the apiserver would on a webhook denial."""

        def __init__(self, inner: Router) -> None:
            self.inner, self.name, self.app = inner, inner.name, inner.app

        def __getattr__(self, item: str) -> Any:
            return getattr(self.inner, item)

        def switch_to(self, color: Color, **kwargs: Any) -> Any:
            if color is Color.GREEN:
                raise ClusterError("patching TrafficSplit: HTTP 500: admission webhook denied the request")
            return self.inner.switch_to(color, **kwargs)

    def make(member: Member, client: Client) -> Router:
        real = phase.make_router(member, client)
        return Refuses(real) if member.app == "pay" else real  # type: ignore[return-value]

    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30, make=make)
    assert not result.ok and result.failed == [f"{namespace}/pay"]
    assert sorted(result.moved_back) == [f"{namespace}/cart", f"{namespace}/shop"]
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}


def test_a_write_that_landed_but_timed_out_is_moved_back_too(
    kube: Client, namespace: str, storefront: Group
) -> None:
    class LandsThenTimesOut:
        """cart's write reaches the apiserver, but the answer never comes back (a read timeout)."""

        def __init__(self, inner: Router) -> None:
            self.inner, self.name, self.app = inner, inner.name, inner.app

        def __getattr__(self, item: str) -> Any:
            return getattr(self.inner, item)

        def switch_to(self, color: Color, **kwargs: Any) -> Any:
            written = self.inner.switch_to(color, **kwargs)
            if color is Color.GREEN:
                raise ClusterError("patching HTTPRoute: the apiserver did not answer in 10s")
            return written

    def make(member: Member, client: Client) -> Router:
        real = phase.make_router(member, client)
        return LandsThenTimesOut(real) if member.app == "cart" else real  # type: ignore[return-value]

    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30, make=make)
    assert not result.ok and result.failed == [f"{namespace}/cart"]
    # Re-read before reverting: cart was on green although its write "failed", so it moved back too.
    assert sorted(result.moved_back) == sorted(f"{namespace}/{a}" for a in ("shop", "cart", "pay"))
    assert result.not_moved_back == []
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}


def test_a_member_that_cannot_be_moved_back_is_named(kube: Client, namespace: str, storefront: Group) -> None:
    class NeverBack:
        """pay moves to green, then every write back is refused; cart's write fails."""

        def __init__(self, inner: Router, app: str) -> None:
            self.inner, self.name, self.app, self.member = inner, inner.name, inner.app, app

        def __getattr__(self, item: str) -> Any:
            return getattr(self.inner, item)

        def switch_to(self, color: Color, **kwargs: Any) -> Any:
            if self.member == "cart" and color is Color.GREEN:
                raise ClusterError("patching HTTPRoute: HTTP 500")
            if self.member == "pay" and color is Color.BLUE:
                raise ClusterError("patching TrafficSplit: HTTP 500: admission webhook denied the request")
            return self.inner.switch_to(color, **kwargs)

    def make(member: Member, client: Client) -> Router:
        return NeverBack(phase.make_router(member, client), member.app)  # type: ignore[return-value]

    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30, make=make)
    assert not result.ok
    assert result.not_moved_back == [f"{namespace}/pay"]
    assert f"could NOT move back (fix by hand): {namespace}/pay" in result.text()


def test_a_group_switch_leaves_each_members_audit_trail(
    kube: Client, namespace: str, storefront: Group
) -> None:
    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30)
    assert result.ok, result.text()
    notes = [e.message or "" for e in kube.list(Event, namespace=namespace)]
    for app in ("shop", "cart", "pay"):
        live = kube.get(Service, app, namespace=namespace)
        assert live.metadata is not None
        annotations = live.metadata.annotations or {}
        assert annotations["bluegreen.io/active-color"] == "green"
        assert annotations["bluegreen.io/previous-color"] == "blue"
        assert "bluegreen.io/switching-to" not in annotations
        (entry,) = json.loads(annotations["bluegreen.io/history"])
        assert (entry["action"], entry["from"], entry["to"]) == ("group switch", "blue", "green")
        preview = kube.get(Service, f"{app}-preview", namespace=namespace)
        assert preview.spec is not None and preview.spec.selector is not None
        # Not written: the preview follows the member's candidate, so it selects green with live.
        assert preview.spec.selector["bluegreen.io/color"] == "green"
        assert any(f"Service {app} from blue to green" in n for n in notes), notes


def test_unready_member_refuses_before_any_write(kube: Client, namespace: str, storefront: Group) -> None:
    kube.delete(type(deployment("pay", "green")), "pay-green", namespace=namespace)
    kube.create(deployment("pay", "green", replicas=1, fault="unready"), namespace=namespace)
    with pytest.raises(NotReadyError, match="pay-green"):
        phase.run(kube, storefront, to=Color.GREEN, timeout=5)
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}
    assert leases(kube, namespace) == []


def test_held_lock_refuses_before_any_write(kube: Client, namespace: str, storefront: Group) -> None:
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-cart"),
            spec=LeaseSpec(holderIdentity="someone-else", leaseDurationSeconds=300, renewTime=_now()),
        ),
        namespace=namespace,
    )
    with pytest.raises(LockHeldError, match="someone-else"):
        phase.run(kube, storefront, to=Color.GREEN, timeout=5)
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}
    assert leases(kube, namespace) == ["bluegreen-cart"]  # ours released, theirs untouched


def test_a_lease_taken_whose_answer_was_lost_is_released(
    kube: Client, namespace: str, storefront: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cart's Lease is written but the answer lost (a reset): the run fails before any switch, and
    still gives that Lease back (it was ours), so the re-run goes ahead at once."""
    from bluegreen import kube as seam
    from bluegreen.apiclient import NoAnswer

    real_send = seam._send
    fired: list[str] = []

    def send(client: Any, method: str, path: str, **kwargs: Any) -> bytes:
        answer = real_send(client, method, path, **kwargs)
        body = json.loads(kwargs.get("body") or b"{}")
        cart = (body.get("metadata") or {}).get("name") == "bluegreen-cart"
        if method in ("POST", "PUT") and "/leases" in path and cart and not fired:
            fired.append(path)
            raise NoAnswer(
                "RemoteProtocolError: Server disconnected without sending a response.",
                kind="protocol",
                sent=True,
            )
        return answer

    monkeypatch.setattr(seam, "_send", send)
    with pytest.raises(ClusterError, match="could not take every lock, nothing was written"):
        phase.run(kube, storefront, to=Color.GREEN, timeout=30)
    monkeypatch.undo()
    assert fired
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}
    assert leases(kube, namespace) == []  # before: bluegreen-cart held for 60 s, the re-run refused
    again = phase.run(kube, storefront, to=Color.GREEN, timeout=30)
    assert again.ok, again.text()


def test_with_a_wait_the_group_outlasts_a_members_lock_left_by_a_dead_run(
    kube: Client, namespace: str, storefront: Group
) -> None:
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-pay"),
            spec=LeaseSpec(holderIdentity="a run that died", leaseDurationSeconds=2, renewTime=_now()),
        ),
        namespace=namespace,
    )
    with pytest.raises(LockHeldError, match="a run that died"):
        phase.run(kube, storefront, to=Color.GREEN, timeout=30)  # no wait: refused at once
    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30, wait=30)
    assert result.ok, result.text()
    assert colors(kube, storefront) == {"shop": Color.GREEN, "cart": Color.GREEN, "pay": Color.GREEN}
    assert leases(kube, namespace) == []


def test_a_group_switch_without_to_promotes_each_members_candidate_and_a_re_run_moves_nothing(
    kube: Client, cluster: LocalCluster, namespace: str, storefront: Group
) -> None:
    with pytest.raises(RefusedError, match="no candidate is recorded"):
        phase.run(kube, storefront, timeout=30)  # nothing deployed: which release, nobody said
    for member in storefront.members:
        deployed = execute(
            [
                "deploy",
                "--app",
                member.app,
                "-n",
                namespace,
                "--router",
                member.router,
                "--image",
                "registry.local/shop:2.0",
                "--kubeconfig",
                str(cluster.kubeconfig),
            ]
        )
        assert deployed.exit_code == 0, deployed.error
    first = phase.run(kube, storefront, timeout=30)
    assert first.ok and first.target is Color.GREEN, first.text()
    again = phase.run(kube, storefront, timeout=30)
    assert again.ok and again.target is Color.GREEN
    assert not any(m.changed for m in again.members)  # a re-run is a no-op, never a flip back
    assert colors(kube, storefront) == {"shop": Color.GREEN, "cart": Color.GREEN, "pay": Color.GREEN}


def test_members_on_different_colours_need_an_explicit_target(
    kube: Client, namespace: str, storefront: Group
) -> None:
    one = Group(name="one", members=storefront.members[:1])
    assert phase.run(kube, one, to=Color.GREEN, timeout=30).ok  # shop alone to green
    with pytest.raises(RefusedError, match="--to"):
        phase.run(kube, storefront, timeout=30)
    result = phase.run(kube, storefront, to=Color.GREEN, timeout=30)
    assert result.ok, result.text()
    shop = next(m for m in result.members if m.member.app == "shop")
    assert not shop.changed  # already there: no write
    assert colors(kube, storefront) == {"shop": Color.GREEN, "cart": Color.GREEN, "pay": Color.GREEN}


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_a_member_whose_target_service_lists_no_endpoints_is_refused_before_any_write(
    kube: Client, namespace: str, storefront: Group
) -> None:
    # cart's own cart-green (the user's, not bluegreen's: left as it is) selects no pod.
    kube.create(
        Service(
            metadata=ObjectMeta(name="cart-green"),
            spec=ServiceSpec(selector={"app": "nothing"}, ports=[ServicePort(port=80, targetPort=8080)]),
        ),
        namespace=namespace,
    )
    frontends = [(Ingress, "shop"), (HTTPRoute, "cart"), (traffic_split(), "pay")]

    def versions() -> list[str | None]:
        return [
            kube.get(kind, name, namespace=namespace).metadata.resourceVersion for kind, name in frontends
        ]

    before = versions()
    with pytest.raises(
        NotReadyError, match=r"(?s)nothing was written.*cart: .*cart-green lists no ready endpoints"
    ):
        phase.run(kube, storefront, to=Color.GREEN, timeout=30)
    assert versions() == before  # no member's frontend was written, not even the ready ones
    assert colors(kube, storefront) == {"shop": Color.BLUE, "cart": Color.BLUE, "pay": Color.BLUE}
    assert leases(kube, namespace) == []
