"""`gateway`: a Gateway API HTTPRoute whose rules send traffic to `<app>-blue` and `<app>-green`.

One merge patch, guarded by the resourceVersion read, sets the colour backendRefs' weights to
100 and 0 in every rule that has them (a rule naming only one colour gets the other added, weight
0 or 100). Verify checks the route as stored, the colour Service's endpoints, and, where a gateway
controller reports status, that every parent says Accepted (and ResolvedRefs/Programmed if given)
at the new generation. With no controller there is no status: verify says so plainly.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightkube.generic_resource import create_namespaced_resource

from bluegreen.model import Color
from bluegreen.routers._common import (
    Obj,
    SplitRouter,
    color_of_service,
    color_service,
    not_adopted,
)

HTTPRoute = create_namespaced_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
DEFAULT_WEIGHT = 1  # Gateway API's default for a backendRef without a weight
REQUIRED = ("Accepted",)
IF_REPORTED = ("ResolvedRefs", "Programmed")


class GatewayRouter(SplitRouter):
    name: ClassVar[str] = "gateway"
    kind: ClassVar[str] = "HTTPRoute"
    resource = HTTPRoute

    def _color(self, ref: Obj) -> Color | None:
        if ref.get("group", "") not in ("", None) or ref.get("kind", "Service") != "Service":
            return None
        if ref.get("namespace") not in (None, self.app.namespace):
            return None
        return color_of_service(self.app, ref.get("name", ""))

    def splits(self, route: Obj) -> list[dict[Color, float]]:
        """Per rule that names a colour Service: colour -> weight."""
        out: list[dict[Color, float]] = []
        for rule in (route.get("spec") or {}).get("rules") or []:
            split: dict[Color, float] = {}
            for ref in rule.get("backendRefs") or []:
                color = self._color(ref)
                if color is not None:
                    split[color] = split.get(color, 0) + ref.get("weight", DEFAULT_WEIGHT)
            if split:
                out.append(split)
        return out

    def no_split_detail(self) -> str:
        return "no backendRef names a colour Service"

    def patch_for(self, obj: Obj, color: Color) -> dict[str, Any]:
        if not self.splits(obj):
            raise not_adopted(
                self.where,
                f"has no backendRef naming Service {color_service(self.app, Color.BLUE)} or "
                f"{color_service(self.app, Color.GREEN)}",
            )
        rules = []
        for rule in obj["spec"]["rules"]:
            refs = list(rule.get("backendRefs") or [])
            present = {c for r in refs if (c := self._color(r)) is not None}
            if not present:
                rules.append(rule)
                continue
            for missing in set(Color) - present:
                model = next(r for r in refs if self._color(r) is not None)
                refs.append({**model, "name": color_service(self.app, missing)})
            refs = [
                {**r, "weight": 100 if c == color else 0} if (c := self._color(r)) is not None else r
                for r in refs
            ]
            rules.append({**rule, "backendRefs": refs})
        # A merge patch replaces a list whole: the rules go back as read, only the weights changed.
        return {"spec": {"rules": rules}}

    def status_problem(self, obj: Obj, color: Color) -> tuple[str | None, bool]:
        parents = (obj.get("status") or {}).get("parents") or []
        if not parents:
            return None, False
        generation = obj["metadata"].get("generation", 0)
        for parent in parents:
            ref = parent.get("parentRef") or {}
            who = f"parent {ref.get('kind', 'Gateway')} {ref.get('name', '?')} ({parent.get('controllerName', '?')})"
            conditions = {c.get("type"): c for c in parent.get("conditions") or []}
            for kind in (*REQUIRED, *(k for k in IF_REPORTED if k in conditions)):
                condition = conditions.get(kind)
                if condition is None:
                    return f"{who} reports no {kind} condition yet", True
                if condition.get("observedGeneration", 0) < generation:
                    return (
                        f"{who}: {kind} is for generation {condition.get('observedGeneration', 0)}, "
                        f"not yet {generation}",
                        True,
                    )
                if condition.get("status") != "True":
                    return (
                        f"{who}: {kind}={condition.get('status')} ({condition.get('reason', '')}: "
                        f"{condition.get('message', '')})",
                        True,
                    )
        return None, True

    def unverified(self, obj: Obj) -> tuple[str, ...]:
        _, reported = self.status_problem(obj, Color.BLUE)
        if not reported:
            return (
                "no gateway controller reports status for this HTTPRoute (status.parents is empty), so "
                "that a gateway accepted and programmed the new weights is not verified",
            )
        return ("that requests through the gateway reach the new colour (no traffic is sent to check)",)
