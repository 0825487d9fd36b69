"""`ingress`: a networking.k8s.io/v1 Ingress whose backends name `<app>-blue` or `<app>-green`.

The colour Services select only their colour's pods (created, selector pinned, if missing). One
merge patch, guarded by the resourceVersion read, renames every colour backend (default backend and
every path) to the target colour; backends naming other Services are left as they are.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightkube.resources.networking_v1 import Ingress

from bluegreen.model import Color
from bluegreen.routers._common import Obj, ObjectRouter, color_of_service, color_service, not_adopted


def _backends(ingress: Obj) -> list[Obj]:
    """Every backend service reference in the Ingress, default backend first."""
    spec = ingress.get("spec") or {}
    found: list[Obj] = []
    default = (spec.get("defaultBackend") or {}).get("service")
    if default:
        found.append(default)
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            service = (path.get("backend") or {}).get("service")
            if service:
                found.append(service)
    return found


class IngressRouter(ObjectRouter):
    name: ClassVar[str] = "ingress"
    kind: ClassVar[str] = "Ingress"
    resource = Ingress

    def colors(self, ingress: Obj) -> list[Color]:
        return [
            c for b in _backends(ingress) if (c := color_of_service(self.app, b.get("name", ""))) is not None
        ]

    def active_of(self, obj: Obj) -> Color | None:
        colors = set(self.colors(obj))
        return colors.pop() if len(colors) == 1 else None

    def detail_of(self, obj: Obj) -> str:
        names = [b.get("name", "") for b in _backends(obj)]
        return "backends " + (", ".join(dict.fromkeys(names)) or "(none)")

    def patch_for(self, obj: Obj, color: Color) -> dict[str, Any]:
        if not self.colors(obj):
            raise not_adopted(
                self.where,
                f"has no backend naming {color_service(self.app, Color.BLUE)} or "
                f"{color_service(self.app, Color.GREEN)}",
            )
        target = color_service(self.app, color)
        spec = obj.get("spec") or {}
        body: dict[str, Any] = {}

        def moved(service: Obj) -> dict[str, Any]:
            if color_of_service(self.app, service.get("name", "")) is None:
                return dict(service)
            return {**service, "name": target}

        default = spec.get("defaultBackend")
        if default and default.get("service"):
            body["defaultBackend"] = {**default, "service": moved(default["service"])}
        if spec.get("rules"):
            rules = []
            for rule in spec["rules"]:
                http = rule.get("http")
                if not http:
                    rules.append(rule)
                    continue
                paths = [
                    {**p, "backend": {**p["backend"], "service": moved(p["backend"]["service"])}}
                    if (p.get("backend") or {}).get("service")
                    else p
                    for p in http.get("paths") or []
                ]
                rules.append({**rule, "http": {**http, "paths": paths}})
            # A merge patch replaces a list whole: the rules go back as read, only backends renamed.
            body["rules"] = rules
        return {"spec": body}

    def unverified(self, obj: Obj) -> tuple[str, ...]:
        return (
            "that an ingress controller has loaded the new backend: an Ingress reports no per-change "
            "status (status.loadBalancer only lists addresses)",
        )
