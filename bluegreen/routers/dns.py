"""`dns`: external-dns's hostname annotation, moved from one colour's Service to the other's.

For disaster recovery and regional failover, the seed's secondary path. The colour Services
`<app>-blue` and `<app>-green` (created if missing) carry `external-dns.alpha.kubernetes.io/hostname`;
the one that has it is active. A switch adds it to the target first, then removes it from the old one
(two writes, each guarded by the resourceVersion read), so the name never points nowhere. Clients and
resolvers may keep the old address until the record's TTL runs out: verify says so every time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx2
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen.errors import ConflictError
from bluegreen.model import AppSpec, Color
from bluegreen.routers._common import (
    POLL,
    Obj,
    as_dict,
    call,
    color_service,
    conflict_remedy,
    ensure_color_services,
    mapped,
    not_adopted,
    ready_endpoints,
)
from bluegreen.routers.base import RouteState, SwitchWrite, Verification

HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
TTL = "external-dns.alpha.kubernetes.io/ttl"


def annotations_of(service: Obj) -> dict[str, str]:
    return dict((service.get("metadata") or {}).get("annotations") or {})


def active_of(services: Mapping[Color, Obj]) -> Color | None:
    """The colour whose Service alone carries the hostname; None if neither or both do."""
    holders = [c for c in Color if HOSTNAME in annotations_of(services.get(c, {}))]
    return holders[0] if len(holders) == 1 else None


def encode_versions(services: Mapping[Color, Obj]) -> str:
    return ",".join(
        f"{c}={services[c]['metadata'].get('resourceVersion', '')}" for c in Color if c in services
    )


def plan(services: Mapping[Color, Obj], color: Color) -> list[tuple[Color, dict[str, Any]]]:
    """The ordered writes that move the hostname to `color`: add to the target, then remove from the other.

    Each is (colour of the Service to patch, merge-patch body without resourceVersion). Empty when
    already there. NotAdoptedError when neither Service carries a hostname to move.
    """
    old = color.other
    hostname = annotations_of(services[color]).get(HOSTNAME) or annotations_of(services[old]).get(HOSTNAME)
    if not hostname:
        raise not_adopted("dns router:", f"neither colour Service carries the {HOSTNAME} annotation")
    writes: list[tuple[Color, dict[str, Any]]] = []
    if annotations_of(services[color]).get(HOSTNAME) != hostname:
        added = {HOSTNAME: hostname}
        ttl = annotations_of(services[old]).get(TTL)
        if ttl and TTL not in annotations_of(services[color]):
            added[TTL] = ttl
        writes.append((color, {"metadata": {"annotations": added}}))
    if HOSTNAME in annotations_of(services[old]):
        writes.append((old, {"metadata": {"annotations": {HOSTNAME: None}}}))  # null deletes in a merge patch
    return writes


def ttl_warning(services: Mapping[Color, Obj]) -> str:
    ttl = next((annotations_of(s).get(TTL) for s in services.values() if annotations_of(s).get(TTL)), None)
    span = f"its TTL ({ttl} s)" if ttl else "its TTL (the DNS provider's default: no ttl annotation is set)"
    return (
        "that clients moved: resolvers and clients may keep the old address for "
        f"{span}, and that external-dns updated the record (it reports no status)"
    )


class DnsRouter:
    name: ClassVar[str] = "dns"

    def __init__(self, app: AppSpec, kube: Client, *, object_name: str = "") -> None:
        self.app = app
        self.kube = kube
        self._write_started: float | None = None

    def _services(self) -> dict[Color, dict[str, Any]]:
        """Both colour Services as stored; a missing one as {} (the switch creates it)."""
        found: dict[Color, dict[str, Any]] = {}
        for color in Color:
            name = color_service(self.app, color)
            try:
                found[color] = as_dict(self.kube.get(Service, name, namespace=self.app.namespace))
            except (ApiError, httpx2.TransportError) as error:
                if not (isinstance(error, ApiError) and error.status.code == 404):
                    raise mapped(f"reading Service {self.app.namespace}/{name}", error) from None
                found[color] = {"metadata": {}}
        return found

    def _detail(self, services: Mapping[Color, Obj]) -> str:
        holders = [f"{color_service(self.app, c)}" for c in Color if HOSTNAME in annotations_of(services[c])]
        hostname = next(
            (annotations_of(s)[HOSTNAME] for s in services.values() if HOSTNAME in annotations_of(s)), ""
        )
        return (
            f"hostname {hostname} on " + (", ".join(holders) or "no Service")
            if holders
            else "no hostname annotation"
        )

    def read(self) -> RouteState:
        services = self._services()
        return RouteState(
            active=active_of(services),
            resource_version=encode_versions(services),
            detail=self._detail(services),
        )

    def switch_to(self, color: Color, *, state: RouteState, dry_run: bool = False) -> SwitchWrite:
        services: dict[Color, Obj] = dict(self._services())
        if encode_versions(services) != state.resource_version:
            raise ConflictError(
                f"dns router: colour Services of {self.app.namespace}/{self.app.name} changed since they were read "
                f"({state.resource_version} -> {encode_versions(services)})",
                remedy=conflict_remedy(),
            )
        before = self._detail(services)
        writes = plan(services, color)
        if writes and not dry_run and any(not s["metadata"] for s in services.values()):
            ensure_color_services(self.kube, self.app)
            services = {c: s if s["metadata"] else self._services()[c] for c, s in services.items()}
        if not writes:
            return SwitchWrite(
                changed=False,
                api_ms=0.0,
                before=before,
                after=before,
                resource_version=state.resource_version,
            )
        sent: dict[str, object] = {}
        api_ms = 0.0
        first_sent = time.monotonic()
        for target, body in writes:
            name = color_service(self.app, target)
            patch = {
                "metadata": {
                    **body["metadata"],
                    "resourceVersion": services[target]["metadata"]["resourceVersion"],
                }
            }
            sent[name] = patch
            started = time.monotonic()
            stored = call(
                f"patching Service {self.app.namespace}/{name}",
                lambda name=name, patch=patch: self.kube.patch(  # type: ignore[misc]
                    Service,
                    name,
                    patch,
                    namespace=self.app.namespace,
                    patch_type=PatchType.MERGE,
                    dry_run=dry_run,
                ),
            )
            api_ms += (time.monotonic() - started) * 1000
            services[target] = as_dict(stored)
        if not dry_run:
            self._write_started = first_sent  # converged_ms counts from when the change was sent
        return SwitchWrite(
            changed=True,
            api_ms=api_ms,
            before=before,
            after=self._detail(services),
            patch=sent,
            resource_version=encode_versions(services),
        )

    def verify(self, color: Color, *, timeout: float) -> Verification:
        start = self._write_started or time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            services = self._services()
            problem: str | None = None
            if active_of(services) != color:
                problem = f"stored: {self._detail(services)}"
            elif ready_endpoints(self.kube, self.app.namespace, color_service(self.app, color)) == 0:
                problem = f"Service {color_service(self.app, color)} lists no ready endpoints"
            if problem is None or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        elapsed = (time.monotonic() - start) * 1000
        unverified = (ttl_warning(services),)
        if problem is None:
            return Verification(
                ok=True,
                converged_ms=elapsed,
                message=f"hostname annotation only on {color_service(self.app, color)}, which lists ready endpoints",
                unverified=unverified,
            )
        return Verification(
            ok=False, converged_ms=elapsed, message=f"dns router: {problem}", unverified=unverified
        )
