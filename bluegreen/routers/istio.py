"""`istio`: a VirtualService whose HTTP routes send the app's host to the subsets `blue` and `green`.

One merge patch, guarded by the resourceVersion read, sets the colour routes' weights to 100 and 0
in every HTTP route that has them (a route naming one subset gets the other added). Before it, the
DestinationRule's `blue` and `green` subsets (selecting the colour label) are created if missing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightkube import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from bluegreen.model import AppSpec, Color
from bluegreen.routers._common import (
    Obj,
    SplitRouter,
    as_dict,
    call,
    mapped,
    not_adopted,
    read,
)

VirtualService = create_namespaced_resource("networking.istio.io", "v1", "VirtualService", "virtualservices")
DestinationRule = create_namespaced_resource(
    "networking.istio.io", "v1", "DestinationRule", "destinationrules"
)


def host_matches(host: str, app: AppSpec) -> bool:
    """`shop`, `shop.ns`, `shop.ns.svc` and `shop.ns.svc.cluster.local` all name Service shop in ns."""
    short = app.service
    return host == short or host.startswith(f"{short}.{app.namespace}")


def wanted_subsets(app: AppSpec) -> list[dict[str, Any]]:
    return [{"name": str(c), "labels": {app.color_label: str(c)}} for c in Color]


class IstioRouter(SplitRouter):
    name: ClassVar[str] = "istio"
    kind: ClassVar[str] = "VirtualService"
    resource = VirtualService
    uses_color_services: ClassVar[bool] = False

    def __init__(self, app: AppSpec, kube: Any, *, object_name: str = "", destination_rule: str = "") -> None:
        super().__init__(app, kube, object_name=object_name)
        self.destination_rule = destination_rule or app.name

    def _color(self, route: Obj) -> Color | None:
        destination = route.get("destination") or {}
        if not host_matches(destination.get("host", ""), self.app):
            return None
        try:
            return Color(destination.get("subset", ""))
        except ValueError:
            return None

    def splits(self, vs: Obj) -> list[dict[Color, float]]:
        out: list[dict[Color, float]] = []
        for http in (vs.get("spec") or {}).get("http") or []:
            routes = http.get("route") or []
            split: dict[Color, float] = {}
            for route in routes:
                color = self._color(route)
                if color is not None:
                    # Istio: a lone destination gets everything; otherwise an omitted weight is 0.
                    weight = route.get("weight", 100 if len(routes) == 1 else 0)
                    split[color] = split.get(color, 0) + weight
            if split:
                out.append(split)
        return out

    def no_split_detail(self) -> str:
        return f"no route to host {self.app.service} with subset blue or green"

    def patch_for(self, obj: Obj, color: Color) -> dict[str, Any]:
        if not self.splits(obj):
            raise not_adopted(
                self.where, f"has no HTTP route to host {self.app.service} with subset blue or green"
            )
        https = []
        for http in obj["spec"]["http"]:
            routes = list(http.get("route") or [])
            present = {c for r in routes if (c := self._color(r)) is not None}
            if not present:
                https.append(http)
                continue
            for missing in set(Color) - present:
                model = next(r for r in routes if self._color(r) is not None)
                routes.append({**model, "destination": {**model["destination"], "subset": str(missing)}})
            routes = [
                {**r, "weight": 100 if c == color else 0} if (c := self._color(r)) is not None else r
                for r in routes
            ]
            https.append({**http, "route": routes})
        # A merge patch replaces a list whole: the routes go back as read, only the weights changed.
        return {"spec": {"http": https}}

    def prepare(self, color: Color, *, dry_run: bool) -> None:
        """The DestinationRule with subsets `blue` and `green`: created, or its missing subsets added."""
        ns, name = self.app.namespace, self.destination_rule
        where = f"DestinationRule {ns}/{name}"
        try:
            found = as_dict(self.kube.get(DestinationRule, name, namespace=ns))
        except ApiError as error:
            if error.status.code != 404:
                raise mapped(f"reading {where}", error) from None
            body = {
                "apiVersion": "networking.istio.io/v1",
                "kind": "DestinationRule",
                "metadata": {"name": name, "namespace": ns, "labels": {"bluegreen.io/managed": "true"}},
                "spec": {"host": self.app.service, "subsets": wanted_subsets(self.app)},
            }
            call(
                f"creating {where}",
                lambda: self.kube.create(DestinationRule.from_dict(body), namespace=ns, dry_run=dry_run),
            )
            return
        subsets = list((found.get("spec") or {}).get("subsets") or [])
        have = {s.get("name") for s in subsets}
        missing = [s for s in wanted_subsets(self.app) if s["name"] not in have]
        if missing:
            patch = {
                "metadata": {"resourceVersion": found["metadata"]["resourceVersion"]},
                "spec": {"subsets": subsets + missing},
            }
            call(
                f"adding subsets to {where}",
                lambda: self.kube.patch(
                    DestinationRule, name, patch, namespace=ns, patch_type=PatchType.MERGE, dry_run=dry_run
                ),
            )

    def _check(self, color: Color) -> tuple[str | None, dict[str, Any]]:
        problem, obj = super()._check(color)
        if problem is None:
            rule = as_dict(
                read(
                    f"reading DestinationRule {self.app.namespace}/{self.destination_rule}",
                    lambda: self.kube.get(
                        DestinationRule, self.destination_rule, namespace=self.app.namespace
                    ),
                )
            )
            names = {s.get("name") for s in (rule.get("spec") or {}).get("subsets") or []}
            if str(color) not in names:
                return f"DestinationRule {self.destination_rule} has no subset {color}", obj
        return problem, obj

    def _verified_text(self, color: Color) -> str:
        return f"{self.where} stored routes all traffic to subset {color}; DestinationRule {self.destination_rule} defines it"

    def unverified(self, obj: Obj) -> tuple[str, ...]:
        return (
            "that istiod pushed the new weights to the proxies: a VirtualService reports no per-change "
            "status unless Istio's config distribution tracking is on",
        )
