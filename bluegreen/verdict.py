"""Judging measurements: pure functions from what checks measured to SUCCESSFUL, FAILED, INCONCLUSIVE, ERROR.

Checks measure; this module judges (as argo-rollouts keeps metric providers apart from evaluate.go).
A measurement that could not be taken is ERROR; one with nothing to judge (no series, no traffic) is
INCONCLUSIVE; neither ever passes. Across intervals, `assess` applies Argo-style limits: how many
FAILED and INCONCLUSIVE measurements, and how many ERRORs in a row, are tolerated before a check's
outcome is final. This module imports nothing of ours so it can be tested and reused anywhere.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Value = float | int | str | bool | None


class Phase(enum.StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


OPERATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """`values[metric] <op> limit`, where limit is a number or string, or `values[relative_to] * factor`.

    A relative threshold is how a baseline is expressed: the idle colour's p95 must stay within
    +20% of the live colour's, measured over the same window (`relative_to="live_p95", factor=1.2`).
    """

    metric: str
    op: str
    limit: Value = None
    relative_to: str = ""
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}: use one of {', '.join(OPERATORS)}")

    def describe(self) -> str:
        if self.relative_to:
            scale = "" if self.factor == 1 else f" * {self.factor:g}"
            return f"{self.metric} {self.op} {self.relative_to}{scale}"
        return f"{self.metric} {self.op} {_show(self.limit)}"


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """What one check saw once. `error`: measuring failed. `inconclusive`: nothing to judge."""

    check: str
    kind: str
    target: str = ""  # what was measured, e.g. "green" or "http://127.0.0.1:8080/health/ready"
    values: Mapping[str, Value] = field(default_factory=dict)
    thresholds: tuple[Threshold, ...] = ()
    error: str = ""
    inconclusive: str = ""
    detail: str = ""  # output or log tail, said plainly when there is none
    at: float = 0.0  # wall-clock seconds (time.time()) when measured


@dataclass(frozen=True, kw_only=True)
class Judged:
    """A measurement with its phase and the reasons for it, one line each."""

    measurement: Measurement
    phase: Phase
    reasons: tuple[str, ...] = ()

    @property
    def check(self) -> str:
        return self.measurement.check

    def summary(self) -> str:
        return "; ".join(self.reasons) if self.reasons else str(self.phase)


def judge(measurement: Measurement) -> Judged:
    """The phase of one measurement: ERROR, then INCONCLUSIVE, then FAILED if any threshold breaks."""
    if measurement.error:
        return Judged(measurement=measurement, phase=Phase.ERROR, reasons=(measurement.error,))
    if measurement.inconclusive:
        return Judged(measurement=measurement, phase=Phase.INCONCLUSIVE, reasons=(measurement.inconclusive,))
    impossible = impossible_values(measurement.values)
    if impossible:
        where = f" from {measurement.target}" if measurement.target else ""
        return Judged(
            measurement=measurement,
            phase=Phase.INCONCLUSIVE,
            reasons=tuple(f"impossible measurement{where}: {why}" for why in impossible),
        )
    failed: list[str] = []
    missing: list[str] = []
    passed: list[str] = []
    for threshold in measurement.thresholds:
        outcome = _holds(threshold, measurement.values)
        if outcome is None:
            missing.append(f"no value for {threshold.describe()}")
        elif outcome:
            passed.append(_explain(threshold, measurement.values, "ok"))
        else:
            failed.append(_explain(threshold, measurement.values, "broken"))
    if not measurement.thresholds:
        return Judged(measurement=measurement, phase=Phase.ERROR, reasons=("no thresholds to judge against",))
    if failed:
        return Judged(measurement=measurement, phase=Phase.FAILED, reasons=tuple(failed + missing))
    if missing:
        return Judged(measurement=measurement, phase=Phase.INCONCLUSIVE, reasons=tuple(missing))
    return Judged(measurement=measurement, phase=Phase.SUCCESSFUL, reasons=tuple(passed))


def impossible_values(values: Mapping[str, Value]) -> list[str]:
    """What no real measurement can be: a NaN or infinite number, a rate outside 0..1, a negative
    latency. Such a value means a broken query or probe, so it is INCONCLUSIVE, never judged (pure)."""
    found: list[str] = []
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        number = float(value)
        if not math.isfinite(number):
            found.append(f"{key}={number} is not a finite number")
        elif key.endswith("error_rate") and not 0 <= number <= 1:
            found.append(f"{key}={number:g} is not a rate (0..1)")
        elif key.endswith("p95") and number < 0:
            found.append(f"{key}={number:g} is a negative latency")
    return found


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _limit(threshold: Threshold, values: Mapping[str, Value]) -> Value:
    if not threshold.relative_to:
        return threshold.limit
    base = _number(values.get(threshold.relative_to))
    if base is None:
        return None
    limit = base * threshold.factor
    return limit if math.isfinite(limit) else None  # a NaN or infinite factor judges nothing


def _holds(threshold: Threshold, values: Mapping[str, Value]) -> bool | None:
    """True or False when the comparison can be made; None when a value is missing or NaN."""
    actual = values.get(threshold.metric)
    limit = _limit(threshold, values)
    if actual is None or limit is None:
        return None
    if isinstance(limit, float) and not math.isfinite(limit):
        return None  # every comparison with NaN is False and any finite value is below inf: no verdict
    if isinstance(actual, float) and math.isnan(actual):
        return None
    if isinstance(limit, (int, float)) and not isinstance(limit, bool):
        number = _number(actual)
        if number is None:
            # A string or bool compared with a number: a type mismatch is a failure, not a pass.
            return threshold.op == "!="
        return OPERATORS[threshold.op](number, float(limit))
    if threshold.op not in ("==", "!="):
        return False
    return OPERATORS[threshold.op](actual, limit)


def _explain(threshold: Threshold, values: Mapping[str, Value], word: str) -> str:
    actual = values.get(threshold.metric)
    rule = threshold.describe()
    if threshold.relative_to:
        rule = f"{rule} = {_show(_limit(threshold, values))}"
    return f"{threshold.metric}={_show(actual)} ({word}: {rule})"


def _show(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How many bad measurements one check may have before its outcome is final (Argo's analysis limits).

    Defaults as Argo's: no FAILED and no INCONCLUSIVE tolerated; up to 4 ERRORs in a row (a blip in
    the metrics backend). A tolerated bad measurement still never counts as a healthy one.
    """

    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4


def assess(phases: Sequence[Phase], limits: Limits) -> Phase | None:
    """The final phase of one check from its phases so far, or None while within limits."""
    if sum(1 for p in phases if p is Phase.FAILED) > limits.failure_limit:
        return Phase.FAILED
    trailing_errors = 0
    for phase in reversed(phases):
        if phase is not Phase.ERROR:
            break
        trailing_errors += 1
    if trailing_errors > limits.consecutive_error_limit:
        return Phase.ERROR
    if sum(1 for p in phases if p is Phase.INCONCLUSIVE) > limits.inconclusive_limit:
        return Phase.INCONCLUSIVE
    return None


# A FAILED check is a definite "no"; an ERROR only says we could not tell.
SEVERITY = (Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE, Phase.SUCCESSFUL)


def worst(phases: Sequence[Phase]) -> Phase:
    """The most severe phase in `phases` (SUCCESSFUL for none): FAILED > ERROR > INCONCLUSIVE."""
    for phase in SEVERITY:
        if phase in phases:
            return phase
    return Phase.SUCCESSFUL


_CONDITION_OPS = ("<=", ">=", "==", "!=", "<", ">")


def parse_condition(text: str) -> Threshold:
    """`checks.db == "ok"` or `workers.running >= 1` as a Threshold: a tiny parser, never eval.

    Left: a dotted path into a JSON document (`a.b`, `items[0].state`). Operator: one of
    == != < <= > >=. Right: a number, a quoted string, true or false. ValueError otherwise.
    """
    stripped = text.strip()
    # The left side is a path, so the first operator character ends it.
    start = next((i for i, c in enumerate(stripped) if c in "<>=!"), -1)
    op = stripped[start : start + 2] if start >= 0 else ""
    if op not in _CONDITION_OPS:
        op = op[:1]
    if op not in _CONDITION_OPS:
        raise ValueError(
            f"no operator in {text!r}: write `path OP value` with OP one of {' '.join(_CONDITION_OPS)}"
        )
    path, literal = stripped[:start].strip(), stripped[start + len(op) :].strip()
    parse_path(path)
    value = _literal(literal)
    if op not in ("==", "!=") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"{op} needs a number on its right in {text!r}")
    return Threshold(metric=path, op=op, limit=value)


def parse_path(path: str) -> tuple[str | int, ...]:
    """`a.b[0].c` -> ("a", "b", 0, "c"); ValueError for anything else."""
    if not path:
        raise ValueError("empty path on the left of the condition")
    steps: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if not name or not all(c.isalnum() or c in "_-" for c in name):
            raise ValueError(f"bad path {path!r}: use names joined by dots, e.g. checks.db or items[0].state")
        steps.append(name)
        while rest:
            index, closing, rest = rest.partition("]")
            if not closing or not index.isdigit() or (rest and not rest.startswith("[")):
                raise ValueError(f"bad index in path {path!r}: use [N] with N a whole number")
            steps.append(int(index))
            rest = rest[1:] if rest else ""
    return tuple(steps)


def lookup(document: object, path: str) -> Value:
    """The scalar at `path` in a parsed JSON document; None when absent or not a scalar."""
    here: object = document
    for step in parse_path(path):
        if isinstance(step, int):
            if not isinstance(here, list) or step >= len(here):
                return None
            here = here[step]
        else:
            if not isinstance(here, dict) or step not in here:
                return None
            here = here[step]
    if here is None or isinstance(here, (bool, int, float, str)):
        return here
    return None


def _literal(text: str) -> Value:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"bad value {text!r}: use a number, a quoted string, true or false") from None
