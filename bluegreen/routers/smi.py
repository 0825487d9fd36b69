"""`smi`: an SMI TrafficSplit (legacy: for Linkerd users; SMI is being retired by Linkerd and Flagger).

The split's backends are the colour Services `<app>-blue` and `<app>-green` (created, selector pinned,
if missing). One merge patch, guarded by the resourceVersion read, sets their weights to 100 and 0.
The API version defaults to split.smi-spec.io/v1alpha2, the one Linkerd's SMI extension serves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lightkube.generic_resource import create_namespaced_resource

from bluegreen.model import AppSpec, Color
from bluegreen.routers._common import (
    Obj,
    ObjectRouter,
    active_of_splits,
    color_of_service,
    color_service,
    not_adopted,
    weights_text,
)

DEFAULT_VERSION = "v1alpha2"


def traffic_split(version: str = DEFAULT_VERSION) -> Any:
    return create_namespaced_resource("split.smi-spec.io", version, "TrafficSplit", "trafficsplits")


class SmiRouter(ObjectRouter):
    name: ClassVar[str] = "smi"
    kind: ClassVar[str] = "TrafficSplit"

    def __init__(
        self, app: AppSpec, kube: Any, *, object_name: str = "", api_version: str = DEFAULT_VERSION
    ) -> None:
        super().__init__(app, kube, object_name=object_name)
        self.resource = traffic_split(api_version)

    def split(self, obj: Obj) -> dict[Color, float]:
        split: dict[Color, float] = {}
        for backend in (obj.get("spec") or {}).get("backends") or []:
            color = color_of_service(self.app, backend.get("service", ""))
            if color is not None:
                split[color] = split.get(color, 0) + _weight(backend.get("weight", 0))
        return split

    def active_of(self, obj: Obj) -> Color | None:
        split = self.split(obj)
        return active_of_splits([split]) if split else None

    def detail_of(self, obj: Obj) -> str:
        split = self.split(obj)
        return f"weights {weights_text(split)}" if split else "no backend names a colour Service"

    def patch_for(self, obj: Obj, color: Color) -> dict[str, Any]:
        backends = list((obj.get("spec") or {}).get("backends") or [])
        present = {c for b in backends if (c := color_of_service(self.app, b.get("service", ""))) is not None}
        if not present:
            raise not_adopted(
                self.where,
                f"has no backend naming {color_service(self.app, Color.BLUE)} or {color_service(self.app, Color.GREEN)}",
            )
        for missing in set(Color) - present:
            backends.append({"service": color_service(self.app, missing), "weight": 0})
        backends = [
            {**b, "weight": 100 if c == color else 0}
            if (c := color_of_service(self.app, b.get("service", ""))) is not None
            else b
            for b in backends
        ]
        # A merge patch replaces a list whole: the backends go back as read, only the weights changed.
        return {"spec": {"backends": backends}}

    def unverified(self, obj: Obj) -> tuple[str, ...]:
        return ("that the mesh applied the split: a TrafficSplit has no status",)


def _weight(value: Any) -> float:
    """v1alpha2+ weights are numbers; v1alpha1's were quantities such as "500m"."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text or 0)
