"""Plain data shared by every layer: no I/O, no imports of our own."""

from __future__ import annotations

import enum
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


class AppSpec:
    """Where an app's objects live and what they are called; every name can be overridden.
    Immutable and compared by value. (A plain class, not a dataclass: a switch's start-up imports no
    dataclasses, issue 14.)"""

    __slots__ = (
        "color_label",
        "deployment_prefix",
        "name",
        "name_label",
        "namespace",
        "preview_service",
        "service",
    )
    name: str
    namespace: str
    color_label: str
    name_label: str
    service: str
    preview_service: str
    deployment_prefix: str

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        color_label: str = "bluegreen.io/color",
        name_label: str = "app.kubernetes.io/name",
        service: str = "",
        preview_service: str = "",
        deployment_prefix: str = "",
    ) -> None:
        # Defaults derived from the app name, so callers pass only what they override.
        for key, value in (
            ("name", name),
            ("namespace", namespace),
            ("color_label", color_label),
            ("name_label", name_label),
            ("service", service or name),
            ("preview_service", preview_service or f"{name}-preview"),
            ("deployment_prefix", deployment_prefix or name),
        ):
            object.__setattr__(self, key, value)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"AppSpec is immutable: cannot set {key}")

    def _fields(self) -> tuple[str, ...]:
        return tuple(getattr(self, key) for key in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AppSpec) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "AppSpec(" + ", ".join(f"{key}={getattr(self, key)!r}" for key in self.__slots__) + ")"

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


class Result:
    """What one phase did, for people (text), machines (JSON) and the job summary. (A plain class, not
    a dataclass: a switch's start-up imports no dataclasses, issue 14.)"""

    FIELDS = (
        "phase",
        "result",
        "app",
        "namespace",
        "active_color",
        "previous_color",
        "candidate",
        "images",
        "api_ms",
        "converged_ms",
        "probe_failed",
        "probe_cutover_ms",
        "dry_run",
        "timeline",
        "messages",
        "changes",
        "details",
    )

    def __init__(
        self,
        *,
        phase: str,
        result: str,
        app: str,
        namespace: str,
        active_color: str | None = None,
        previous_color: str | None = None,
        # The release deploy recorded (its pod-template hash): what `switch --candidate` promotes.
        candidate: str | None = None,
        images: dict[str, list[str]] | None = None,
        api_ms: float | None = None,
        converged_ms: float | None = None,
        # --probe: failed requests to the user's URL, and ms from the write until the new colour
        # answered alone
        probe_failed: int | None = None,
        probe_cutover_ms: float | None = None,
        dry_run: bool = False,
        timeline: list[tuple[str, str]] | None = None,
        messages: list[str] | None = None,
        changes: list[str] | None = None,  # what was (or, with dry_run, would be) written
        details: dict[str, Any] | None = None,
    ) -> None:
        self.phase, self.result, self.app, self.namespace = phase, result, app, namespace
        self.active_color, self.previous_color, self.candidate = active_color, previous_color, candidate
        self.images: dict[str, list[str]] = images if images is not None else {}
        self.api_ms, self.converged_ms = api_ms, converged_ms
        self.probe_failed, self.probe_cutover_ms = probe_failed, probe_cutover_ms
        self.dry_run = dry_run
        self.timeline: list[tuple[str, str]] = timeline if timeline is not None else []
        self.messages: list[str] = messages if messages is not None else []
        self.changes: list[str] = changes if changes is not None else []
        self.details: dict[str, Any] = details if details is not None else {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Result) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return "Result(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS) + ")"

    def mark(self, label: str) -> None:
        self.timeline.append((datetime.now(UTC).isoformat(timespec="milliseconds"), label))

    def to_dict(self) -> dict[str, Any]:
        """Every field, its containers copied (as dataclasses.asdict did): the caller may change them."""
        import copy

        data = {f: copy.deepcopy(getattr(self, f)) for f in self.FIELDS}
        data["timeline"] = [{"time": t, "event": label} for t, label in self.timeline]
        return data
