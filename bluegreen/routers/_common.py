"""What the ingress, gateway, istio, smi and dns routers share.

Each of those routers owns one object, reads the active colour from it, and moves it with one merge
patch carrying the resourceVersion it read, so the apiserver refuses the write (409) if anyone
changed the object in between. The pure parts (reading a colour, computing a patch body) take plain
dicts, the way the apiserver returns the object, so they are unit-tested without a cluster.

The cluster calls go through `call()`, which is kube.py's seam: errors mapped to ours.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from bluegreen.errors import (
    BlueGreenError,
    ConflictError,
    NotAdoptedError,
    NotFoundError,
    NotReadyError,
)
from bluegreen.kube import call as kube_call
from bluegreen.kube import found as kube_found
from bluegreen.kube import mapped as mapped  # re-exported: the routers map errors with it
from bluegreen.model import AppSpec, Color
from bluegreen.routers.base import RouteState, SwitchWrite, Verification

if TYPE_CHECKING:
    from lightkube import Client

T = TypeVar("T")
Obj = Mapping[str, Any]
POLL = 0.05  # seconds between reads while verifying: cheap GETs on a local apiserver
MANAGED = "bluegreen.io/managed"  # on the colour Services bluegreen created (and may correct)
ENDPOINTS_WAIT = 10.0  # seconds a colour Service just created or corrected gets to list its endpoints


# ---------------------------------------------------------------------------------------------------
# Pure helpers.


def color_service(app: AppSpec, color: Color) -> str:
    """The Service that selects only `color`'s pods: `<app>-blue` / `<app>-green`."""
    return f"{app.name}-{color}"


def color_of_service(app: AppSpec, name: str) -> Color | None:
    for color in Color:
        if name == color_service(app, color):
            return color
    return None


def weights_text(weights: Mapping[Color, float]) -> str:
    return " ".join(f"{c}={_num(weights[c])}" for c in Color if c in weights)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def active_of_splits(splits: Iterable[Mapping[Color, float]]) -> Color | None:
    """The colour every split sends all its traffic to; None when they disagree or split traffic.

    A split maps colour -> weight for one rule/route; a colour absent from a split gets nothing.
    """
    found: set[Color] = set()
    for split in splits:
        live = [c for c in Color if split.get(c, 0) > 0]
        if len(live) != 1:
            return None
        found.add(live[0])
    return found.pop() if len(found) == 1 else None


def conflict_remedy() -> str:
    return "Someone changed it after bluegreen read it; re-run to read it again and decide afresh."


# ---------------------------------------------------------------------------------------------------
# The cluster calls.


def call(what: str, fn: Callable[[], T]) -> T:
    """One API call through kube.py's seam: its error mapping, and a retry only where the request never
    left (these routers' calls are mostly writes, so a timed-out one is not sent again)."""
    return kube_call(what, fn, idempotent=False)


def read(what: str, fn: Callable[[], T]) -> T:
    """A read through the seam as a read: retried like one, and not counted as a write. A read sent
    down `call` marked the switch's shielded step as begun, so a signal under the lock (reading the
    object again, checking the endpoints) no longer stopped the run before its first write."""
    return kube_call(what, fn)


def prepare(what: str, fn: Callable[[], T]) -> T:
    """A write that prepares the switch (a colour Service created or corrected) through the seam: the
    Lease checked first, not sent twice, and not the step's first write, so a signal right after it
    still stops the run before the frontend is written (kube.call's begins_step)."""
    return kube_call(what, fn, idempotent=False, begins_step=False)


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object (typed or generic) as the plain dict the apiserver sent."""
    out: dict[str, Any] = obj.to_dict()
    return out


def service_ports_of(service: Obj) -> list[dict[str, Any]]:
    """The ports a colour Service copies from the app's stable Service (no nodePort: it is taken)."""
    keep = ("name", "port", "targetPort", "protocol", "appProtocol")
    return [{k: p[k] for k in keep if k in p} for p in (service.get("spec") or {}).get("ports") or []]


def color_selector(
    app: AppSpec, color: Color, deployments: Mapping[Color, Obj | None], stable: Obj | None
) -> dict[str, str]:
    """The selector of `color`'s pods of this app (pure): the colour's Deployment's own matchLabels,
    else the other colour's with the colour label swapped, else the stable Service's selector, each
    with the colour label set. Derived the way `init` derives the stable Service's: an adopted app's
    pods carry their own labels (`app: shop`), not necessarily `app.kubernetes.io/name`."""
    for source in (color, color.other):
        dep = deployments.get(source)
        match = ((dep or {}).get("spec") or {}).get("selector") or {}
        labels = dict(match.get("matchLabels") or {})
        if labels:
            return {**labels, app.color_label: str(color)}
    selector = dict(((stable or {}).get("spec") or {}).get("selector") or {})
    if selector:
        return {**selector, app.color_label: str(color)}
    return app.pod_labels(color)


def _get_or_none(kube: Client, resource: Any, name: str, namespace: str) -> dict[str, Any] | None:
    obj = kube_found(
        f"reading {resource.__name__} {namespace}/{name}",
        lambda: kube.get(resource, name, namespace=namespace),
    )
    return as_dict(obj) if obj is not None else None


def ensure_color_services(kube: Client, app: AppSpec, *, dry_run: bool = False) -> list[str]:
    """Create `<app>-blue` and `<app>-green` where missing, each selecting exactly its colour's pods
    of this app (`color_selector`); a colour Service bluegreen created earlier with another selector
    (before the selector was derived, it was a fixed `app.kubernetes.io/name`) is corrected.

    Ports are copied from the app's stable Service. Returns what was created or corrected (or would be).
    """
    # Imported on use: a module that imports this one for its pure helpers loads no lightkube.
    from lightkube.models.core_v1 import ServicePort, ServiceSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.apps_v1 import Deployment
    from lightkube.resources.core_v1 import Service
    from lightkube.types import PatchType

    changed: list[str] = []
    existing = {c: _get_or_none(kube, Service, color_service(app, c), app.namespace) for c in Color}
    managed = [c for c, svc in existing.items() if svc is None or _managed(svc)]
    if not managed:
        return changed
    deployments = {c: _get_or_none(kube, Deployment, app.deployment(c), app.namespace) for c in Color}
    stable = _get_or_none(kube, Service, app.service, app.namespace)
    for color in managed:
        name = color_service(app, color)
        selector = color_selector(app, color, deployments, stable)
        found = existing[color]
        if found is not None:
            if dict((found.get("spec") or {}).get("selector") or {}) == selector:
                continue
            changed.append(f"Service {name}: selector -> {selector}")
            if dry_run:
                continue
            # A merge patch merges maps: a key of the old selector must be removed by name.
            old = (found.get("spec") or {}).get("selector") or {}
            body = {k: None for k in old if k not in selector} | selector
            prepare(
                f"correcting the selector of Service {app.namespace}/{name}",
                lambda: kube.patch(
                    Service,
                    name,
                    {
                        "metadata": {"resourceVersion": found["metadata"].get("resourceVersion")},
                        "spec": {"selector": body},
                    },
                    namespace=app.namespace,
                    patch_type=PatchType.MERGE,
                ),
            )
            continue
        if stable is None:
            raise NotFoundError(
                f"Service {app.namespace}/{app.service} does not exist: the colour Services copy its ports",
                remedy="Create the app's Service (or run `bluegreen init`) first.",
            )
        changed.append(f"create Service {name} selecting {selector}")
        if dry_run:
            continue
        service = Service(
            metadata=ObjectMeta(
                name=name,
                labels={
                    app.name_label: app.name,
                    app.color_label: str(color),
                    MANAGED: "true",
                },
            ),
            spec=ServiceSpec(
                selector=selector,
                ports=[cast(ServicePort, ServicePort.from_dict(p)) for p in service_ports_of(stable)],
            ),
        )
        with contextlib.suppress(ConflictError):  # another run created it meanwhile, which is fine
            prepare(
                f"creating Service {app.namespace}/{name}",
                lambda: kube.create(service, namespace=app.namespace),
            )
    return changed


def _managed(service: Obj) -> bool:
    return ((service.get("metadata") or {}).get("labels") or {}).get(MANAGED) == "true"


def ready_endpoints(kube: Client, namespace: str, service: str) -> int:
    """How many ready addresses the Service's EndpointSlices list."""
    from lightkube.resources.discovery_v1 import EndpointSlice

    slices = read(
        f"listing EndpointSlices of Service {namespace}/{service}",
        lambda: list(
            kube.list(EndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": service})
        ),
    )
    return sum(
        len(e.addresses)
        for s in slices
        for e in s.endpoints or []
        if e.conditions is None or e.conditions.ready is not False
    )


# ---------------------------------------------------------------------------------------------------
# The shared shape of a router that owns one object.


class ObjectRouter:
    """Read / switch / verify for a router whose state is one namespaced object.

    Subclasses give the resource, the object's name, and the pure parts: `active_of`, `detail_of`,
    `patch_for`, and what `verify` can and cannot check.
    """

    name: ClassVar[str]
    kind: ClassVar[str]  # for messages: "Ingress", "HTTPRoute"...
    resource: Any  # a lightkube resource class
    uses_color_services: ClassVar[bool] = True
    # A proxy or mesh applies the write after its own delay: with --probe, verify through its traffic.
    verifies_through_probe: ClassVar[bool] = True

    def __init__(self, app: AppSpec, kube: Client, *, object_name: str = "") -> None:
        self.app = app
        self.kube = kube
        self.object_name = object_name or app.name
        self._write_started: float | None = None
        self._read: dict[str, Any] | None = None

    # --- pure parts, per router -----------------------------------------------------------------

    def active_of(self, obj: Obj) -> Color | None:
        raise NotImplementedError

    def detail_of(self, obj: Obj) -> str:
        raise NotImplementedError

    def patch_for(self, obj: Obj, color: Color) -> dict[str, Any]:
        """The merge-patch body (without metadata) that sends all traffic to `color`."""
        raise NotImplementedError

    def status_problem(self, obj: Obj, color: Color) -> tuple[str | None, bool]:
        """(what is not yet true per the object's status, whether any controller reports status)."""
        return None, False

    def unverified(self, obj: Obj) -> tuple[str, ...]:
        return ()

    # --- cluster parts --------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.kind} {self.app.namespace}/{self.object_name}"

    def get(self) -> dict[str, Any]:
        return as_dict(
            read(
                f"reading {self.where}",
                lambda: self.kube.get(self.resource, self.object_name, namespace=self.app.namespace),
            )
        )

    def read(self) -> RouteState:
        obj = self.get()
        self._read = obj  # the patch is computed from this very object: no second GET to switch
        return RouteState(
            active=self.active_of(obj),
            resource_version=str(obj["metadata"].get("resourceVersion", "")),
            detail=self.detail_of(obj),
        )

    def prepare(self, color: Color, *, dry_run: bool) -> None:
        """Objects the switch needs besides the one it writes (created if missing)."""
        if self.uses_color_services:
            ensure_color_services(self.kube, self.app, dry_run=dry_run)

    def check_backend(self, color: Color, *, allow_empty: bool = False) -> str:
        """Before the write: the colour Service exists, selects `color`'s pods, and lists ready
        endpoints, so the frontend is never pointed at nothing (a proxy answers 404 or 503 for every
        request then). NotReadyError otherwise, with nothing written to the frontend. `allow_empty`
        (--force --allow-no-endpoints): say so and go on. Returns what was found."""
        if not self.uses_color_services:
            return ""
        changed = ensure_color_services(self.kube, self.app)
        service = color_service(self.app, color)
        deadline = time.monotonic() + (ENDPOINTS_WAIT if changed else 0.0)
        while True:
            ready = ready_endpoints(self.kube, self.app.namespace, service)
            if ready or time.monotonic() >= deadline:
                break
            time.sleep(POLL * 4)  # the EndpointSlice controller fills a new Service's slices
        if ready:
            return f"Service {service} lists {ready} ready endpoint(s)"
        problem = f"Service {self.app.namespace}/{service} lists no ready endpoints"
        if allow_empty:
            return f"{problem}; switching anyway (--allow-no-endpoints)"
        raise NotReadyError(
            f"{problem}: pointing the {self.kind} at it would send every request to nothing; "
            "nothing was changed",
            remedy=(
                f"Check that {self.app.deployment(color)} has ready pods and that `kubectl -n "
                f"{self.app.namespace} get service {service} -o yaml` selects them (its selector is "
                "the Deployment's matchLabels plus the colour label)."
            ),
        )

    def switch_to(self, color: Color, *, state: RouteState, dry_run: bool = False) -> SwitchWrite:
        cached = self._read
        fresh = cached is not None and cached["metadata"].get("resourceVersion") == state.resource_version
        obj = cached if cached is not None and fresh else self.get()
        current_rv = str(obj["metadata"].get("resourceVersion", ""))
        if current_rv != state.resource_version:
            raise ConflictError(
                f"{self.where} changed since it was read (resourceVersion {state.resource_version} -> {current_rv})",
                remedy=conflict_remedy(),
            )
        before = self.detail_of(obj)
        if state.active == color and self.active_of(obj) == color:
            return SwitchWrite(
                changed=False, api_ms=0.0, before=before, after=before, resource_version=current_rv
            )
        body = self.patch_for(obj, color)
        self.prepare(color, dry_run=dry_run)
        from lightkube.types import PatchType

        patch: dict[str, Any] = {"metadata": {"resourceVersion": state.resource_version}, **body}
        started = time.monotonic()
        written = call(
            f"patching {self.where}",
            lambda: self.kube.patch(
                self.resource,
                self.object_name,
                patch,
                namespace=self.app.namespace,
                patch_type=PatchType.MERGE,
                dry_run=dry_run,
            ),
        )
        done = time.monotonic()
        api_ms = (done - started) * 1000
        stored = as_dict(written)
        if not dry_run:
            self._write_started = started  # converged_ms counts from when the change was sent
        return SwitchWrite(
            changed=True,
            api_ms=api_ms,
            before=before,
            after=self.detail_of(stored),
            patch=patch,
            resource_version=str(stored["metadata"].get("resourceVersion", "")),
        )

    def verify(self, color: Color, *, timeout: float) -> Verification:
        """Poll until the stored object routes to `color`, its status (if any) agrees at the new
        generation, and the colour's Service lists ready endpoints; or until `timeout`."""
        start = self._write_started or time.monotonic()
        deadline = time.monotonic() + timeout
        while True:
            problem, obj = self._check(color)
            if problem is None or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        elapsed = (time.monotonic() - start) * 1000
        unverified = self.unverified(obj) if obj else ()
        if problem is None:
            return Verification(
                ok=True, converged_ms=elapsed, message=self._verified_text(color), unverified=unverified
            )
        return Verification(
            ok=False, converged_ms=elapsed, message=f"{self.where}: {problem}", unverified=unverified
        )

    def _verified_text(self, color: Color) -> str:
        text = f"{self.where} stored routes all traffic to {color}"
        if self.uses_color_services:
            text += f"; Service {color_service(self.app, color)} lists ready endpoints"
        return text

    def _check(self, color: Color) -> tuple[str | None, dict[str, Any]]:
        try:
            obj = self.get()
        except BlueGreenError as error:
            return str(error), {}
        if self.active_of(obj) != color:
            return f"stored object routes {self.detail_of(obj)}, not all to {color}", obj
        status, _ = self.status_problem(obj, color)
        if status:
            return status, obj
        if self.uses_color_services:
            service = color_service(self.app, color)
            if ready_endpoints(self.kube, self.app.namespace, service) == 0:
                return f"Service {self.app.namespace}/{service} lists no ready endpoints", obj
        return None, obj


def not_adopted(where: str, what: str) -> NotAdoptedError:
    return NotAdoptedError(
        f"{where} {what}", remedy="See docs/routers.md for how to set it up for blue-green."
    )


class SplitRouter(ObjectRouter):
    """An object that routes by weighted splits between colour backends (HTTPRoute, VirtualService):
    live is the colour every split sends all its weight to."""

    def splits(self, obj: Obj) -> list[dict[Color, float]]:
        raise NotImplementedError

    def no_split_detail(self) -> str:
        """The detail shown when no split names a colour."""
        raise NotImplementedError

    def active_of(self, obj: Obj) -> Color | None:
        splits = self.splits(obj)
        return active_of_splits(splits) if splits else None

    def detail_of(self, obj: Obj) -> str:
        splits = self.splits(obj)
        if not splits:
            return self.no_split_detail()
        return "weights " + " | ".join(dict.fromkeys(weights_text(s) for s in splits))
