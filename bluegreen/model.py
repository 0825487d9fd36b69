"""Plain data shared by every layer: no I/O, no imports of our own."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol


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


class RunInfo(NamedTuple):
    """Who asked for a change, for the audit trail: a CI run, or a person at a terminal."""

    run_id: str = ""
    run_url: str = ""
    actor: str = ""
    correlation_id: str = ""  # one ID across logs, Events, history and the app's requests (correlation.py)

    @property
    def holder(self) -> str:
        """How the lock names this run to whoever finds it held."""
        parts = [f"run {self.run_id}" if self.run_id else "", f"by {self.actor}" if self.actor else ""]
        return " ".join(p for p in parts if p) or "a local run"


class Reporter(Protocol):
    """Where phases send progress while they wait; the CLI prints it, the Action logs it."""

    def progress(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def stage(self, name: str) -> None:
        """A long phase moves to its next stage (release: deploy, gate, switch, watch)."""
        ...


class NullReporter:
    def progress(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def stage(self, name: str) -> None:
        pass


# What a phase ended in: the Action's `result` output takes exactly these values.
RESULTS = (
    "deployed",
    "passed",
    "failed",
    "inconclusive",
    "switched",
    "noop",
    "rolled-back",
    "refused",
    "retired",
    "adopted",
    "status",
    "drift",  # diff: the colours differ beyond the release (exit 1)
    "clean",  # diff: they differ only by the release
    "planned",
    "preempted",
    "migrated",
    "cancelled",
    "error",
)


@dataclass(kw_only=True)
class Result:
    """What one phase did, for people (text), machines (JSON) and the job summary."""

    phase: str
    result: str
    app: str
    namespace: str
    active_color: str | None = None
    previous_color: str | None = None
    # The release deploy recorded (its pod-template hash): what `switch --candidate` promotes.
    candidate: str | None = None
    images: dict[str, list[str]] = field(default_factory=dict)
    api_ms: float | None = None
    converged_ms: float | None = None
    # --probe: failed requests to the user's URL, and ms from the write until the new colour answered alone
    probe_failed: int | None = None
    probe_cutover_ms: float | None = None
    dry_run: bool = False
    timeline: list[tuple[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # what was (or, with dry_run, would be) written
    details: dict[str, Any] = field(default_factory=dict)

    def mark(self, label: str) -> None:
        self.timeline.append((datetime.now(UTC).isoformat(timespec="milliseconds"), label))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timeline"] = [{"time": t, "event": label} for t, label in self.timeline]
        return data
