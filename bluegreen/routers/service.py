"""`service`: the live Service's selector names the colour; one merge patch moves it.

When the Service it writes is the app's live Service (where the history lives), the switch's audit
annotations (active and previous colour, the history with the new entry) go in the same patch as the
selector, guarded by the same resourceVersion: no reader ever sees traffic and record disagree.

Verification watches the Service's EndpointSlices until their ready addresses are exactly the target
colour's ready pods: the control plane has decided, and kube-proxy and every load balancer built on
EndpointSlices send new connections only to the new colour once they apply it (kube-proxy: at its next
sync, at most once per its 1 s min sync period). With --probe the switch then waits for the probe's
requests too (phases/switch.py): the data plane, reported apart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from bluegreen import gitops
from bluegreen.errors import NotAdoptedError, UsageError
from bluegreen.kube import call, get_json, initial_events_end, label_selector, patch_json, watch_until
from bluegreen.model import AppSpec, Color
from bluegreen.routers.base import RouteState, SwitchWrite, Verification

if TYPE_CHECKING:
    from lightkube import Client

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REFRESH = 1.0  # seconds between re-reads of the target pods while verifying
# Seconds a verified switch keeps watching a Service that Argo CD or Flux manage, for their sync to
# write the selector back (Argo CD's self-heal follows a change within seconds). Only then.
GITOPS_SETTLE = 10.0


def ready_addresses(slices: list[dict[str, Any]]) -> set[str]:
    """Addresses the EndpointSlices offer for traffic: ready, or ready unknown (pure)."""
    return {
        address
        for piece in slices
        for endpoint in piece.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready") is not False
        for address in endpoint.get("addresses") or []
    }


def ready_pod_ips(pods: list[dict[str, Any]]) -> set[str]:
    """IPs of the pods that are Ready and not being deleted (pure)."""
    return {
        ip
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        for ip in [(pod.get("status") or {}).get("podIP")]
        if ip
    }


# The longest Deployment name whose pods' names surely start with it: a pod is named
# <deployment>-<pod-template-hash, up to 10>-<5 random>, its generated part cut to 58 characters.
MAX_NAME_FOR_PREFIX = 58 - len("-0123456789-")


def expected_pods(target: dict[str, Any] | None, other: dict[str, Any] | None) -> tuple[str, int] | None:
    """How the target Deployment's ready pods are known in the EndpointSlices without listing them:
    (the prefix of their names, how many), or None when they cannot be (pure).

    Only for a Deployment whose rollout is complete as read (every replica of its newest template,
    Ready and available, the spec observed), whose name its pods' names surely start with, and whose
    name-prefix cannot also be the other colour's (`shop` and `shop-canary`)."""
    if not target:
        return None
    meta, spec, status = target.get("metadata") or {}, target.get("spec") or {}, target.get("status") or {}
    name, replicas = str(meta.get("name") or ""), spec.get("replicas", 1)
    counts = {status.get(k) for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
    complete = meta.get("generation") == status.get("observedGeneration") and counts == {replicas}
    if (
        not name
        or not complete
        or not isinstance(replicas, int)
        or replicas < 1
        or len(name) > MAX_NAME_FOR_PREFIX
    ):
        return None
    prefix = f"{name}-"
    other_name = str(((other or {}).get("metadata") or {}).get("name") or "")
    if other_name and (prefix.startswith(f"{other_name}-") or f"{other_name}-".startswith(prefix)):
        return None
    return prefix, replicas


def lists_exactly(slices: list[dict[str, Any]], prefix: str, count: int) -> bool:
    """The slices offer traffic to exactly `count` pods, each named with `prefix` (pure). Pods are
    counted by name, so a dual-stack Service's two slices (IPv4, IPv6) count each pod once."""
    names: set[str] = set()
    for piece in slices:
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            ref = endpoint.get("targetRef") or {}
            name = str(ref.get("name") or "")
            if ref.get("kind") != "Pod" or not name.startswith(prefix):
                return False  # anything else offered traffic: not converged
            names.add(name)
    return len(names) == count


def selector_of(service: dict[str, Any]) -> dict[str, str]:
    return dict((service.get("spec") or {}).get("selector") or {})


class ServiceRouter:
    name: ClassVar[str] = "service"
    # Its EndpointSlices are what kube-proxy programs, at most once per its min sync period (1 s): on
    # a busy node packets move up to ~1 s after they are verified. With --probe, verify through traffic.
    verifies_through_probe: ClassVar[bool] = True

    def __init__(self, app: AppSpec, kube: Client, *, object_name: str = "") -> None:
        self.app, self.kube = app, kube
        self.service_name = object_name or app.service
        self._selector: dict[str, str] = {}
        self._annotations: dict[str, str] = {}
        self._write_started: float | None = None
        self._expected: tuple[Color, str, int] | None = None  # expect(): the target's pods, unlisted
        self.managed: gitops.Managed | None = None  # Argo CD or Flux, as of the last read
        self._read_version = ""  # the Service's resourceVersion as _reverted last read it

    @property
    def records_history(self) -> bool:
        """Whether its object is the live Service, so a switch can record itself in the same write."""
        return self.service_name == self.app.service

    @property
    def annotations(self) -> dict[str, str]:
        """The Service's annotations as of the last read (the history a switch appends to)."""
        return dict(self._annotations)

    def _where(self) -> str:
        return f"Service {self.app.namespace}/{self.service_name}"

    def _path(self) -> str:
        return f"/api/v1/namespaces/{self.app.namespace}/services/{self.service_name}"

    def read(self) -> RouteState:
        service = call(f"reading {self._where()}", lambda: get_json(self.kube, self._path()))
        selector = selector_of(service)
        value = selector.get(self.app.color_label)
        if value is None or value not in {c.value for c in Color}:
            raise NotAdoptedError(
                f"{self._where()} selects {selector or 'nothing'}, without {self.app.color_label}=blue|green",
                remedy=f"Run `bluegreen init --app {self.app.name} -n {self.app.namespace}` to adopt it: "
                "it creates the blue colour and points the Service at it with no gap in endpoints.",
            )
        self._selector = selector
        self._annotations = dict((service.get("metadata") or {}).get("annotations") or {})
        self.managed = gitops.detect(service)
        return RouteState(
            active=Color(value),
            resource_version=service["metadata"]["resourceVersion"],
            detail=f"selector {self.app.color_label}={value}",
        )

    def switch_to(
        self,
        color: Color,
        *,
        state: RouteState,
        dry_run: bool = False,
        annotations: Mapping[str, str | None] | None = None,
    ) -> SwitchWrite:
        """The selector write; with `annotations` (computed from the annotations this state was read
        with), those too, in the same patch under the same resourceVersion."""
        before = state.detail
        after = f"selector {self.app.color_label}={color}"
        if state.active is color:
            return SwitchWrite(changed=False, api_ms=0.0, before=before, after=after)
        metadata: dict[str, object] = {"resourceVersion": state.resource_version}
        if annotations:
            metadata["annotations"] = dict(annotations)
        patch: dict[str, object] = {
            "metadata": metadata,
            "spec": {"selector": {self.app.color_label: str(color)}},
        }
        started = time.perf_counter()
        # converged_ms counts from here, the moment the change was sent: what a user waits for.
        self._write_started = started
        stored = call(
            f"patching {self._where()}",
            lambda: patch_json(self.kube, self._path(), patch, dry_run=dry_run),
            idempotent=False,
        )
        written_at = time.perf_counter()
        meta = stored.get("metadata") or {}
        if not dry_run:  # what the Service holds now: a later guarded write of ours starts from it
            self._annotations = dict(meta.get("annotations") or {})
        return SwitchWrite(
            changed=True,
            api_ms=(written_at - started) * 1000,
            before=before,
            after=after,
            patch=patch,
            resource_version=str(meta.get("resourceVersion") or ""),
        )

    def expect(self, color: Color, target: dict[str, Any] | None, other: dict[str, Any] | None) -> None:
        """The Deployments the switch just read (`color`'s and the other's): the next verify() of
        `color` knows its ready pods from them when it can (expected_pods), instead of listing them."""
        found = expected_pods(target, other)
        self._expected = (color, *found) if found else None

    def verify(self, color: Color, *, timeout: float) -> Verification:
        started = self._write_started or time.perf_counter()
        deadline = time.monotonic() + timeout
        labels: dict[str, Any] = {
            **(self._selector or {self.app.name_label: self.app.name}),
            self.app.color_label: str(color),
        }
        ns = self.app.namespace

        def ready_target_pods() -> set[str]:
            path, query = f"/api/v1/namespaces/{ns}/pods", {"labelSelector": label_selector(labels)}
            return ready_pod_ips(
                call(f"listing the {color} pods", lambda: get_json(self.kube, path, params=query)["items"])
            )

        # The target's ready pods: known from its Deployment as the switch read it (no request: the
        # slices must list exactly that many pods named after it, issue 14), else listed. If the first
        # watch window does not see that, they are listed after all, and judged by their IPs.
        expected = self._expected[1:] if self._expected and self._expected[0] == color else None
        self._expected = None  # for this verification only: an undo's verifies the other colour
        want: set[str] = set() if expected else ready_target_pods()
        by_slice: dict[str, dict[str, Any]] = {}
        seen_all = False  # every current slice arrived (a list, or a watch's initial events)

        def done() -> bool:
            slices = list(by_slice.values())
            if expected is not None and not want:
                return lists_exactly(slices, *expected)
            return bool(want) and ready_addresses(slices) == want

        def converged(kind: str, piece: dict[str, Any]) -> bool:
            nonlocal seen_all
            if kind == "BOOKMARK":
                seen_all = seen_all or initial_events_end(kind, piece)
            elif kind == "DELETED":
                by_slice.pop(piece["metadata"]["name"], None)
            else:
                by_slice[piece["metadata"]["name"]] = piece
            return seen_all and done()

        # One request to begin: a watch that starts with every current slice (WatchList), so no list
        # first. Judged only once all have arrived: a first slice alone may list exactly the new pods
        # while a second still lists old ones. Each later change arrives as it happens, without polling;
        # the watch is cut every REFRESH seconds to re-read the target's ready pods, which may change too.
        path = f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
        params = {"labelSelector": f"{SERVICE_NAME_LABEL}={self.service_name}"}
        version = ""
        with contextlib.suppress(UsageError):  # 422: an apiserver without WatchList refuses it
            version = watch_until(
                self.kube,
                path,
                params=params,
                resource_version="",
                deadline=min(deadline, time.monotonic() + REFRESH),
                on_event=converged,
                initial_events=True,
            )
        if not seen_all:  # refused, or ignored without the mark: list, as before WatchList
            by_slice, version = self._slices()
            seen_all = True
        while not done() and time.monotonic() < deadline:
            # Not there yet: the selector may have been written back (Argo CD or Flux syncing a Service
            # whose colour is in Git). Then the slices never converge, and waiting out the timeout
            # would only report "did not converge": said at once, with who wrote it.
            reverted = self._reverted(color, started)
            if reverted is not None:
                return reverted
            if not done():
                want = ready_target_pods()
            before = version
            version = watch_until(
                self.kube,
                path,
                params=params,
                resource_version=version,
                deadline=min(deadline, time.monotonic() + REFRESH),
                on_event=converged,
            )
            if version == before and time.monotonic() < deadline:
                by_slice, version = self._slices()  # no news (or 410 Gone): list again
        elapsed = (time.perf_counter() - started) * 1000
        settled = done()
        count = expected[1] if settled and expected is not None and not want else len(want)
        if not settled and not want:
            want = ready_target_pods()  # for the message: which pods were missing
        have = ready_addresses(list(by_slice.values()))
        written_back: Verification | None = None
        if not settled:  # written back in the last moment before the deadline?
            written_back = self._reverted(color, started)
        elif self.managed is not None and not self.managed.protected:
            # A GitOps tool's sync may write the selector back faster than the EndpointSlice controller
            # follows (the slices listed the new colour for a moment) or seconds later (Argo CD's
            # self-heal): read it again and watch it a while, after the convergence was timed. Only
            # for such a Service: a switch of any other sends no request more (issue 14).
            written_back = self._reverted(color, started) or self._settle(
                color, started, min(deadline, time.monotonic() + GITOPS_SETTLE)
            )
        if written_back is not None:
            return written_back
        if settled:
            return Verification(
                ok=True,
                converged_ms=elapsed,
                message=f"EndpointSlices of {self._where()} list exactly the {count} ready {color} pods",
            )
        extra, missing = sorted(have - want), sorted(want - have)
        return Verification(
            ok=False,
            converged_ms=elapsed,
            message=f"after {timeout:.0f}s the EndpointSlices of {self._where()} list {len(extra)} address(es) "
            f"not of a ready {color} pod {extra[:5]} and miss {len(missing)} {missing[:5]}"
            if want
            else f"no {color} pod is Ready, so {self._where()} has no endpoints to converge on",
        )

    def moved_off(self, color: Color) -> str | None:
        """Why the Service no longer selects `color`, naming who wrote it (the watch asks each round);
        None while it does."""
        reverted = self._reverted(color, time.perf_counter())
        return reverted.message if reverted is not None else None

    def _reverted(self, color: Color, started: float) -> Verification | None:
        """A Verification naming the revert when the Service no longer selects `color`; None while it
        does. Remembers the resourceVersion read, for _settle to watch from."""
        service = call(f"reading {self._where()}", lambda: get_json(self.kube, self._path()))
        self._read_version = str(service["metadata"].get("resourceVersion") or "")
        return self._revert_in(service, color, started)

    def _revert_in(self, service: dict[str, Any], color: Color, started: float) -> Verification | None:
        now = selector_of(service).get(self.app.color_label, "")
        if now == str(color):
            return None
        manager = gitops.selector_writer(service, self.app.color_label)
        return Verification(
            ok=False,
            converged_ms=(time.perf_counter() - started) * 1000,
            message=f"the selector of {self._where()} was changed back to {self.app.color_label}={now or '(none)'} "
            f"by {gitops.describe_writer(manager, service)} after the switch to {color}: a GitOps controller "
            f"syncing the Service from Git? Make it leave the selector alone, see {gitops.DOC}",
            reverted_to=now or "(none)",
            reverted_by=manager,
        )

    def _settle(self, color: Color, started: float, deadline: float) -> Verification | None:
        """Watch the Service until `deadline` for a write that takes the selector off `color`.

        Only for a Service that Argo CD or Flux manage with nothing seen that keeps them off it: their
        sync follows a change within seconds (Argo CD's self-heal), after the EndpointSlices converged."""
        found: list[Verification] = []

        def changed(kind: str, service: dict[str, Any]) -> bool:
            if kind in ("ADDED", "MODIFIED"):
                reverted = self._revert_in(service, color, started)
                if reverted is not None:
                    found.append(reverted)
                    return True
            return False

        version = self._read_version
        while not found and time.monotonic() < deadline:
            before = version
            version = watch_until(
                self.kube,
                f"/api/v1/namespaces/{self.app.namespace}/services",
                params={"fieldSelector": f"metadata.name={self.service_name}"},
                resource_version=version,
                deadline=deadline,
                on_event=changed,
            )
            if version == before and not found and time.monotonic() < deadline:
                reverted = self._reverted(color, started)  # no news (or 410 Gone): read it again
                if reverted is not None:
                    return reverted
                version = self._read_version
        return found[0] if found else None

    def _slices(self) -> tuple[dict[str, dict[str, Any]], str]:
        def listed() -> tuple[dict[str, dict[str, Any]], str]:
            found = get_json(
                self.kube,
                f"/apis/discovery.k8s.io/v1/namespaces/{self.app.namespace}/endpointslices",
                params={"labelSelector": f"{SERVICE_NAME_LABEL}={self.service_name}"},
            )
            items = {p["metadata"]["name"]: p for p in found.get("items") or []}
            return items, str((found.get("metadata") or {}).get("resourceVersion") or "")

        return call(f"listing EndpointSlices of {self._where()}", listed)
