"""Plain data shared by every layer: no I/O, no imports of our own."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Color(enum.StrEnum):
    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE

    @classmethod
    def parse(cls, text: str) -> Color:
        """The colour named by `text`; ValueError that lists the valid names otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise ValueError(f"unknown colour {text!r}: use 'blue' or 'green'") from None


@dataclass(frozen=True, kw_only=True)
class AppSpec:
    """Where an app's objects live and what they are called; every name can be overridden."""

    name: str
    namespace: str
    color_label: str = "bluegreen.io/color"
    name_label: str = "app.kubernetes.io/name"
    service: str = ""
    preview_service: str = ""
    deployment_prefix: str = ""

    def __post_init__(self) -> None:
        # Defaults derived from the app name, so callers pass only what they override.
        if not self.service:
            object.__setattr__(self, "service", self.name)
        if not self.preview_service:
            object.__setattr__(self, "preview_service", f"{self.name}-preview")
        if not self.deployment_prefix:
            object.__setattr__(self, "deployment_prefix", self.name)

    def deployment(self, color: Color) -> str:
        return f"{self.deployment_prefix}-{color}"

    def pod_labels(self, color: Color) -> dict[str, str]:
        return {self.name_label: self.name, self.color_label: str(color)}

    @property
    def lease(self) -> str:
        return f"bluegreen-{self.name}"
