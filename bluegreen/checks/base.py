"""The Check protocol: one small interface, one module per kind, one factory (checks/__init__.py).

A check measures one thing about one colour and returns a Measurement: values, the thresholds they
must meet, or why it could not measure (`error`) or had nothing to judge (`inconclusive`). It never
decides; verdict.judge does. A check never raises for a failure of what it measures: a refused
connection, a failed query or a missing pod becomes a Measurement, so the gate can report it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from bluegreen.config import format_duration
from bluegreen.model import AppSpec, Color
from bluegreen.verdict import Judged, Measurement, Phase, Threshold, Value, judge

__all__ = ["Check", "Judged", "Measurement", "Phase", "Target", "Threshold", "Value", "judge", "tail"]


@dataclass(frozen=True, kw_only=True)
class Target:
    """What a round of checks looks at: the colour under test and the one it is compared with.

    In the gate, `color` is the idle colour (reached through the preview Service) and `baseline` the
    live one; in watch, `color` is the new live colour and `baseline` the previous one.
    """

    app: AppSpec
    color: Color
    baseline: Color
    service: str  # the Service whose traffic goes to `color`
    window: float  # seconds of traffic each metric looks back over
    max_error_rate: float
    p95_tolerance: float
    max_p95: float | None = None  # seconds; an absolute p95 limit besides the baseline
    baseline_at: float | None = None  # wall time to read the baseline's metrics at (watch: the switch)
    # Baseline values measured at the switch, by check name ({"latency": {"p95": 0.12}}): the watch
    # judges against these rather than the previous colour's window, empty once traffic left it.
    recorded: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def variables(self, color: Color | None = None) -> dict[str, str]:
        return {
            "color": str(color or self.color),
            "window": format_duration(self.window),
            "namespace": self.app.namespace,
            "app": self.app.name,
        }


class Check(Protocol):
    kind: ClassVar[str]
    # True for one-shot checks (smoke commands, Jobs): measured once per gate, not every interval.
    once: ClassVar[bool]
    name: str

    def measure(self, target: Target) -> Measurement:
        """Measure `target` once; never raises for what it measures (see the module doc)."""
        ...

    def close(self) -> None:
        """Release connections; the check is not used afterwards."""
        ...


def tail(text: str, lines: int) -> str:
    """The last `lines` lines of `text`, with a note of how many were cut."""
    kept = text.rstrip("\n").splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return f"[... {len(kept) - lines} earlier lines cut]\n" + "\n".join(kept[-lines:])
