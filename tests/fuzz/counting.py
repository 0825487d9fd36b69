"""How many generated inputs the fuzz suite tried, by target: printed at the end of the run."""

from __future__ import annotations

from collections import Counter

TRIED: Counter[str] = Counter()
# Largest figures seen: slowest refusal (s), peak memory (MiB); printed beside the counts.
PEAKS: dict[str, float] = {}


def peak(name: str, value: float) -> None:
    PEAKS[name] = max(PEAKS.get(name, value), value)
