"""The Router protocol: one small interface, one module per way of steering traffic.

A router owns one frontend object (a Service selector, an Ingress backend, an HTTPRoute's weights...).
It reads the active colour from that object, moves it with one write guarded by the resourceVersion it
read, and verifies what it can. Routers measure and report; phases decide.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Protocol

from bluegreen.model import AppSpec, Color


class RouteState(NamedTuple):
    """What a router read from its object: the colour it sends traffic to, and the version read."""

    active: Color | None  # None: the object routes to no single colour (not adopted, or split)
    resource_version: str
    detail: str = ""  # e.g. "selector bluegreen.io/color=blue" or "weights blue=100 green=0"


class SwitchWrite(NamedTuple):
    """The one write a switch made (or would make, with dry_run)."""

    changed: bool  # False: already there, nothing written
    api_ms: float  # duration of the write request; 0 when nothing was written
    before: str  # human-readable state before, e.g. "selector bluegreen.io/color=blue"
    after: str
    patch: dict[str, object] = {}  # noqa: RUF012  # the exact patch body sent; never changed, so {} is shared
    resource_version: str = ""  # as the apiserver stored it


class Verification(NamedTuple):
    """What the router could confirm after a switch, and what it could not."""

    ok: bool
    converged_ms: float  # from the write to verified (or to giving up)
    message: str
    unverified: tuple[str, ...] = ()  # things this router cannot check, said plainly
    # What serves traffic, checked apart from the stored objects (dns: the authoritative answer):
    # {"checked": bool, "control_plane_ms", "data_plane_ms", ...}; None when the router has no such check.
    data_plane: dict[str, object] | None = None
    # Someone wrote the router's object back after the switch (a GitOps controller syncing Git):
    # the colour it selects now ("" when not reverted) and the field manager that wrote it.
    reverted_to: str = ""
    reverted_by: str = ""


class Router(Protocol):
    name: ClassVar[str]
    app: AppSpec

    def read(self) -> RouteState:
        """The colour the frontend object routes to now, with its resourceVersion."""
        ...

    def switch_to(self, color: Color, *, state: RouteState, dry_run: bool = False) -> SwitchWrite:
        """One write moving all traffic to `color`, with `state.resource_version` as precondition.

        A no-op (changed=False) when `state.active` is already `color`. Raises ConflictError on 409:
        the caller re-reads and re-decides; a router never retries a conflicting write blindly.
        """
        ...

    def verify(self, color: Color, *, timeout: float) -> Verification:
        """Wait until the change took effect as far as this router can observe it."""
        ...
