"""How many generated inputs the fuzz suite tried, by target: printed at the end of the run."""

from __future__ import annotations

from collections import Counter

TRIED: Counter[str] = Counter()
