"""`dns`: external-dns's hostname annotation, moved from one colour's Service to the other's.

For disaster recovery and regional failover, the seed's secondary path. The colour Services
`<app>-blue` and `<app>-green` are LoadBalancer Services made by the user (external-dns publishes a
Service's load-balancer address or its spec.externalIPs; a ClusterIP Service it does not publish, so
the router refuses one and never creates one). The hostname annotation says which Service owns the
record; the live colour is the one whose address the record carries.

Why three writes and not two. external-dns merges every Service carrying the same hostname into one
record with all their addresses (source/utils.go MergeEndpoints, which also drops duplicates). Moving
the hostname with two writes therefore publishes both colours (add, then remove) or none (remove,
then add) whenever external-dns syncs between them, and with `--events` it syncs on the first one.
So the move is made of writes that each leave the record unchanged, and one that flips it:
  1. the target Service gets the hostname, the live record's TTL, and a `target` annotation pinning
     it to the live addresses: the record is still exactly the live addresses;
  2. the live Service loses the hostname (and its TTL and any pin): still the live addresses;
  3. the target Service loses its pin: the record is the target's address. One write on one object.
Every state in between serves one colour, the live one, so a write refused or cut short leaves DNS
untouched; the writes already made are undone, and a re-run resumes from whatever was left (the plan
is computed from what is stored). The router owns the `target` annotation of the colour Services.

Verified means DNS when `--dns-server HOST:PORT` names an authoritative server: the router queries it
until the answer is the target's address only. Without one it says the data plane was not checked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx2
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import dnsquery
from bluegreen.errors import BlueGreenError, ClusterError, ConfigError, ConflictError, RefusedError
from bluegreen.kube import call as kube_call
from bluegreen.model import AppSpec, Color
from bluegreen.routers._common import (
    POLL,
    Obj,
    as_dict,
    call,
    color_service,
    conflict_remedy,
    mapped,
    not_adopted,
    ready_endpoints,
)
from bluegreen.routers.base import RouteState, SwitchWrite, Verification

HOSTNAME = "external-dns.alpha.kubernetes.io/hostname"
TTL = "external-dns.alpha.kubernetes.io/ttl"
TARGET = "external-dns.alpha.kubernetes.io/target"
MOVED = (HOSTNAME, TTL, TARGET)  # the annotations a switch writes
DNS_POLL = 0.2  # seconds between queries to the authoritative server


class HalfMovedError(ClusterError):
    """A switch stopped between its writes and could not put back what it had written."""


# ---------------------------------------------------------------------------------------------------
# Pure: what external-dns would publish, and the writes that move it.


def annotations_of(service: Obj) -> dict[str, str]:
    return dict((service.get("metadata") or {}).get("annotations") or {})


def _split(text: str) -> tuple[str, ...]:
    return tuple(sorted({p.strip().rstrip(".") for p in text.split(",") if p.strip()}))


def own_addresses(service: Obj) -> tuple[str, ...]:
    """What external-dns publishes for this Service when nothing pins it (source/service.go): a
    LoadBalancer Service's spec.externalIPs, else its load balancer's IPs and hostnames."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return ()
    if spec.get("externalIPs"):
        return tuple(sorted(spec["externalIPs"]))
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(sorted({a for i in ingress for a in (i.get("ip"), i.get("hostname")) if a}))


def published(service: Obj) -> tuple[str, ...]:
    """The addresses this Service contributes to the record: its `target` annotation, else its own."""
    pinned = _split(annotations_of(service).get(TARGET, ""))
    return pinned or own_addresses(service)


def hostname_of(services: Mapping[Color, Obj]) -> str:
    return next((annotations_of(services[c]).get(HOSTNAME, "") for c in Color if _holds(services[c])), "")


def _holds(service: Obj) -> bool:
    return bool(annotations_of(service).get(HOSTNAME))


def record(services: Mapping[Color, Obj]) -> tuple[str, ...]:
    """The addresses external-dns publishes for the hostname: the union over the Services holding it."""
    return tuple(sorted({a for c in Color if _holds(services[c]) for a in published(services[c])}))


def active_of(services: Mapping[Color, Obj]) -> Color | None:
    """The colour whose own address is exactly the record; None when the record is empty, carries
    both colours (a split), or an address of neither."""
    published_now = set(record(services))
    if not published_now:
        return None
    matches = [c for c in Color if published_now == set(own_addresses(services[c]))]
    return matches[0] if len(matches) == 1 else None


def detail_of(app: AppSpec, services: Mapping[Color, Obj]) -> str:
    hostname = hostname_of(services)
    if not hostname:
        return "no hostname annotation"
    holders = [color_service(app, c) for c in Color if _holds(services[c])]
    addresses = record(services)
    owners = [str(c) for c in Color if set(own_addresses(services[c])) & set(addresses)]
    if not addresses:
        says = "no address (external-dns publishes nothing: the name has no record)"
    elif len(owners) > 1:
        says = f"{', '.join(addresses)} (both colours: a split)"
    else:
        says = f"{', '.join(addresses)} ({owners[0] if owners else 'neither colour'})"
    return f"hostname {hostname} on {', '.join(holders)} publishes {says}"


def unpublishable(app: AppSpec, services: Mapping[Color, Obj], color: Color) -> str | None:
    """Why external-dns could not publish `color`'s Service, or None when it can."""
    service = services[color]
    name = f"{app.namespace}/{color_service(app, color)}"
    if not (service.get("metadata") or {}).get("name"):
        return f"Service {name} does not exist"
    kind = (service.get("spec") or {}).get("type") or "ClusterIP"
    if kind != "LoadBalancer":
        return f"Service {name} is of type {kind}, which external-dns does not publish an address for"
    if not own_addresses(service):
        return f"Service {name} has no load-balancer address yet (status.loadBalancer.ingress is empty)"
    return None


def create_remedy(app: AppSpec, color: Color) -> str:
    return (
        f"Create {color_service(app, color)} as a Service of type LoadBalancer selecting the {color} pods "
        "(external-dns publishes its load balancer's address), or give it spec.externalIPs; "
        "then wait for its address and run again."
    )


def plan(services: Mapping[Color, Obj], color: Color) -> list[tuple[Color, dict[str, str | None]]]:
    """The ordered annotation writes that move the record to `color`'s address, each leaving it on
    one colour (see the module's docstring). Each is (colour of the Service, the annotations to set,
    None deleting one). Empty when already there. NotAdoptedError when no Service holds a hostname."""
    old = color.other
    hostname = hostname_of(services)
    if not hostname:
        raise not_adopted("dns router:", f"neither colour Service carries the {HOSTNAME} annotation")
    live = record(services)
    target, source = annotations_of(services[color]), annotations_of(services[old])
    # The TTL of the record as published: the live Service's, so a stale one on the target never wins
    # (the two must match while both hold the hostname, or external-dns keeps two records).
    ttl = source.get(TTL) if _holds(services[old]) else target.get(TTL)
    pin = ",".join(live) if live and set(live) != set(own_addresses(services[color])) else None
    writes: list[tuple[Color, dict[str, str | None]]] = []
    prepare = {HOSTNAME: hostname, TTL: ttl, TARGET: pin}
    if any(target.get(k) != v for k, v in prepare.items()):
        writes.append((color, {k: v for k, v in prepare.items() if target.get(k) != v}))
    if any(k in source for k in MOVED):
        writes.append((old, {k: None for k in MOVED if k in source}))
    if pin is not None:
        writes.append((color, {TARGET: None}))
    return writes


def undo_of(before: Obj, written: Mapping[str, str | None]) -> dict[str, str | None]:
    """The annotations that put back what a write changed."""
    found = annotations_of(before)
    return {k: found.get(k) for k in written}


def ttl_of(services: Mapping[Color, Obj]) -> str | None:
    return next((annotations_of(services[c]).get(TTL) for c in Color if _holds(services[c])), None)


def ttl_note(ttl: str | None) -> str:
    span = f"its TTL ({ttl} s)" if ttl else "its TTL (the DNS provider's default: no ttl annotation is set)"
    return f"that clients moved: resolvers and clients may keep the old address for {span} after the change"


# ---------------------------------------------------------------------------------------------------
# The cluster and DNS parts.


class DnsRouter:
    name: ClassVar[str] = "dns"

    def __init__(self, app: AppSpec, kube: Client, *, object_name: str = "", dns_server: str = "") -> None:
        self.app = app
        self.kube = kube
        self.dns_server = dnsquery.server(dns_server) if dns_server else None
        self._write_started: float | None = None

    def _services(self) -> dict[Color, dict[str, Any]]:
        """Both colour Services as stored; a missing one as {"metadata": {}}."""
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

    def read(self) -> RouteState:
        services = self._services()
        return RouteState(
            active=active_of(services),
            resource_version=encode_versions(services),
            detail=detail_of(self.app, services),
        )

    def switch_to(self, color: Color, *, state: RouteState, dry_run: bool = False) -> SwitchWrite:
        services: dict[Color, Obj] = dict(self._services())
        if encode_versions(services) != state.resource_version:
            raise ConflictError(
                f"dns router: colour Services of {self.app.namespace}/{self.app.name} changed since they were read "
                f"({state.resource_version} -> {encode_versions(services)})",
                remedy=conflict_remedy(),
            )
        before = detail_of(self.app, services)
        writes = plan(services, color)
        if not writes:
            return SwitchWrite(
                changed=False,
                api_ms=0.0,
                before=before,
                after=before,
                resource_version=state.resource_version,
            )
        # Before any write: a target external-dns cannot publish is a name with no address (NXDOMAIN).
        problem = unpublishable(self.app, services, color)
        if problem:
            error = RefusedError if "no load-balancer address" in problem else ConfigError
            raise error(
                f"dns router: {problem}: switching to it would leave the name without an address",
                remedy=create_remedy(self.app, color),
            )
        sent: dict[str, object] = {}
        done: list[tuple[Color, dict[str, str | None], Obj]] = []  # (colour, written, as it was before)
        api_ms = 0.0
        first_sent = time.monotonic()
        for step, (target, changes) in enumerate(writes, start=1):
            name = color_service(self.app, target)
            patch = {
                "metadata": {
                    "annotations": changes,
                    "resourceVersion": services[target]["metadata"]["resourceVersion"],
                }
            }
            sent[f"{step}: {name}"] = patch
            started = time.monotonic()
            try:
                stored = self._patch(target, patch, dry_run=dry_run)
            except BlueGreenError as error:
                if not done or dry_run:
                    raise
                stopped = self._undo(color, step, len(writes), error, done, services)
                if isinstance(error, ConflictError):
                    raise  # undone; someone else wrote: read again and decide afresh
                raise RefusedError(
                    f"dns router: {stopped}; undone, DNS never moved: {detail_of(self.app, services)}",
                    remedy="Find what refused the write (an admission policy or webhook on Services?), "
                    "let the router write these annotations, and run again.",
                ) from None
            api_ms += (time.monotonic() - started) * 1000
            done.append((target, changes, services[target]))
            services[target] = as_dict(stored)
        if not dry_run:
            self._write_started = first_sent  # converged_ms counts from when the change was sent
        after = detail_of(self.app, services)
        if not dry_run:
            after += self._point_stable(color)
        return SwitchWrite(
            changed=True,
            api_ms=api_ms,
            before=before,
            after=after,
            patch=sent,
            resource_version=encode_versions(services),
        )

    def _patch(
        self, color: Color, patch: dict[str, Any], *, dry_run: bool = False, guard: bool = True
    ) -> Any:
        name = color_service(self.app, color)
        return kube_call(
            f"patching Service {self.app.namespace}/{name}",
            lambda: self.kube.patch(
                Service,
                name,
                patch,
                namespace=self.app.namespace,
                patch_type=PatchType.MERGE,
                dry_run=dry_run,
            ),
            idempotent=False,
            guard=guard,
        )

    def _undo(
        self,
        color: Color,
        step: int,
        total: int,
        error: BlueGreenError,
        done: list[tuple[Color, dict[str, str | None], Obj]],
        services: dict[Color, Obj],
    ) -> str:
        """Put back the writes made, newest first (each undo also leaves the record on the live
        colour); if that fails too, raise HalfMovedError naming where the annotations are. Returns
        what stopped the switch, for the message."""
        stopped = f"the switch to {color} stopped at write {step} of {total} ({error})"
        try:
            for target, written, before in reversed(done):
                patch = {
                    "metadata": {
                        "annotations": undo_of(before, written),
                        "resourceVersion": services[target]["metadata"]["resourceVersion"],
                    }
                }
                # Not guarded: an undo must run even once a signal asked the run to stop.
                services[target] = as_dict(self._patch(target, patch, guard=False))
        except BlueGreenError as undo_error:
            now = self._services()
            raise HalfMovedError(
                f"dns router: {stopped}, and putting back the writes before it failed ({undo_error}). "
                f"Now: {detail_of(self.app, now)}",
                remedy=f"Run `bluegreen switch --to {color}` to finish the move, or `--to {color.other}` to "
                "settle on the old colour; each state in between publishes one colour only.",
            ) from None
        return stopped

    def _point_stable(self, color: Color) -> str:
        """The app's stable Service follows the record, so in-cluster clients move too; what was done."""
        what = f"Service {self.app.namespace}/{self.app.service}"
        try:
            stable = as_dict(
                kube_call(
                    f"reading {what}",
                    lambda: self.kube.get(Service, self.app.service, namespace=self.app.namespace),
                )
            )
            selector = (stable.get("spec") or {}).get("selector") or {}
            if self.app.color_label not in selector or selector[self.app.color_label] == str(color):
                return ""
            patch: dict[str, Any] = {"spec": {"selector": {self.app.color_label: str(color)}}}
            call(
                f"pointing {what} at {color}",
                lambda: self.kube.patch(
                    Service, self.app.service, patch, namespace=self.app.namespace, patch_type=PatchType.MERGE
                ),
            )
        except BlueGreenError as error:
            return f"; {what} still selects {color.other}: {error}"
        return f"; {what} selects {color}"

    def verify(self, color: Color, *, timeout: float) -> Verification:
        start = self._write_started or time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            services = self._services()
            problem: str | None = None
            if active_of(services) != color or _split(annotations_of(services[color]).get(TARGET, "")):
                problem = f"stored: {detail_of(self.app, services)}"
            elif ready_endpoints(self.kube, self.app.namespace, color_service(self.app, color)) == 0:
                problem = f"Service {color_service(self.app, color)} lists no ready endpoints"
            if problem is None or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        control_ms = (time.monotonic() - start) * 1000
        ttl = ttl_of(services)
        if problem is not None:
            return Verification(
                ok=False,
                converged_ms=control_ms,
                message=f"dns router: {problem}",
                unverified=(ttl_note(ttl),),
                data_plane={"checked": False, "control_plane_ms": round(control_ms, 1)},
            )
        stored = f"the hostname is only on {color_service(self.app, color)}, which lists ready endpoints"
        if self.dns_server is None:
            return Verification(
                ok=True,
                converged_ms=control_ms,
                message=f"{stored} (control plane only)",
                unverified=(
                    "the data plane: no --dns-server was given, so no DNS server was asked; external-dns "
                    "publishes the change at its next sync (about 5 s with --events, its interval without)",
                    ttl_note(ttl),
                ),
                data_plane={"checked": False, "control_plane_ms": round(control_ms, 1)},
            )
        return self._verify_dns(color, services, stored, start, deadline, control_ms, ttl)

    def _verify_dns(
        self,
        color: Color,
        services: Mapping[Color, Obj],
        stored: str,
        start: float,
        deadline: float,
        control_ms: float,
        ttl: str | None,
    ) -> Verification:
        assert self.dns_server is not None
        host, port = self.dns_server
        hostname = hostname_of(services)
        want = set(own_addresses(services[color]))
        where = f"{host}:{port}"
        seen: list[str] = []
        answer: dnsquery.Answer | None = None
        while True:
            try:
                answer = dnsquery.query(host, port, hostname, want)
                got = set(answer.addresses)
                if not seen or seen[-1] != answer.text:
                    seen.append(answer.text)
            except dnsquery.QueryError as error:
                got = set()
                if not seen or seen[-1] != str(error):
                    seen.append(str(error))
            if got == want or time.monotonic() >= deadline:
                break
            time.sleep(DNS_POLL)
        data_ms = (time.monotonic() - start) * 1000
        plane = {
            "checked": True,
            "server": where,
            "control_plane_ms": round(control_ms, 1),
            "data_plane_ms": round(data_ms, 1) if got == want else None,
            "answers": seen[-10:],
        }
        served_ttl = answer.ttl if answer is not None and got == want else None
        if got == want:
            plane["ttl"] = served_ttl
            return Verification(
                ok=True,
                converged_ms=data_ms,
                message=(
                    f"{where} answers {hostname} with {', '.join(sorted(want))} ({color}) only, "
                    f"{data_ms:.0f} ms after the write; {stored} after {control_ms:.0f} ms"
                ),
                unverified=(ttl_note(str(served_ttl) if served_ttl is not None else ttl),),
                data_plane=plane,
            )
        return Verification(
            ok=False,
            converged_ms=data_ms,
            message=(
                f"dns router: {stored} after {control_ms:.0f} ms, but {where} still answers {hostname} with "
                f"{seen[-1] if seen else 'nothing'} (want {', '.join(sorted(want))}): is external-dns running "
                "and allowed to update the zone?"
            ),
            unverified=(ttl_note(ttl),),
            data_plane=plane,
        )


def encode_versions(services: Mapping[Color, Obj]) -> str:
    return ",".join(f"{c}={(services[c].get('metadata') or {}).get('resourceVersion', '')}" for c in Color)
