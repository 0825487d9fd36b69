"""The judge: measurements and thresholds in, one phase out; a failed measurement never passes."""

from __future__ import annotations

import math

import pytest

from bluegreen.verdict import (
    Limits,
    Measurement,
    Phase,
    Threshold,
    assess,
    judge,
    lookup,
    parse_condition,
    worst,
)


def m(values: dict[str, object], *thresholds: Threshold, **kw: str) -> Measurement:
    return Measurement(check="c", kind="test", values=values, thresholds=thresholds, **kw)  # type: ignore[arg-type]


ERR = Threshold(metric="error_rate", op="<", limit=0.005)
P95 = Threshold(metric="p95", op="<=", relative_to="baseline_p95", factor=1.2)


@pytest.mark.parametrize(
    ("values", "thresholds", "phase"),
    [
        ({"error_rate": 0.0}, (ERR,), Phase.SUCCESSFUL),
        ({"error_rate": 0.005}, (ERR,), Phase.FAILED),  # the limit itself is over: "< 0.5%"
        ({"error_rate": 0.05}, (ERR,), Phase.FAILED),
        ({"error_rate": math.nan}, (ERR,), Phase.INCONCLUSIVE),
        ({}, (ERR,), Phase.INCONCLUSIVE),
        ({"p95": 0.1, "baseline_p95": 0.1}, (P95,), Phase.SUCCESSFUL),
        ({"p95": 0.12, "baseline_p95": 0.1}, (P95,), Phase.SUCCESSFUL),
        ({"p95": 0.3, "baseline_p95": 0.1}, (P95,), Phase.FAILED),
        ({"p95": 0.3, "baseline_p95": None}, (P95,), Phase.INCONCLUSIVE),
        # One broken threshold fails the measurement even when another has no value.
        ({"error_rate": 0.5, "baseline_p95": None, "p95": 0.1}, (ERR, P95), Phase.FAILED),
        ({"status": "ok"}, (Threshold(metric="status", op="==", limit="ok"),), Phase.SUCCESSFUL),
        ({"status": "down"}, (Threshold(metric="status", op="==", limit="ok"),), Phase.FAILED),
        # A string where a number is expected is a failure, never a pass.
        ({"running": "many"}, (Threshold(metric="running", op=">=", limit=1),), Phase.FAILED),
        ({"x": 1}, (), Phase.ERROR),  # nothing to judge against is a bug in the check, not a pass
    ],
)
def test_judge_thresholds(values: dict[str, object], thresholds: tuple[Threshold, ...], phase: Phase) -> None:
    assert judge(m(values, *thresholds)).phase is phase


def test_error_and_inconclusive_win_over_values() -> None:
    assert judge(m({"error_rate": 0.0}, ERR, error="connection refused")).phase is Phase.ERROR
    judged = judge(m({"error_rate": 0.0}, ERR, inconclusive="no series"))
    assert judged.phase is Phase.INCONCLUSIVE
    assert judged.reasons == ("no series",)


def test_reasons_show_value_and_rule() -> None:
    judged = judge(m({"p95": 0.3, "baseline_p95": 0.1}, P95))
    assert judged.reasons == ("p95=0.3 (broken: p95 <= baseline_p95 * 1.2 = 0.12)",)


@pytest.mark.parametrize(
    ("phases", "limits", "outcome"),
    [
        ([Phase.SUCCESSFUL] * 3, Limits(), None),
        ([Phase.SUCCESSFUL, Phase.FAILED], Limits(), Phase.FAILED),
        ([Phase.FAILED, Phase.SUCCESSFUL], Limits(failure_limit=1), None),
        ([Phase.FAILED, Phase.FAILED], Limits(failure_limit=1), Phase.FAILED),
        ([Phase.ERROR] * 4, Limits(consecutive_error_limit=4), None),
        ([Phase.ERROR] * 5, Limits(consecutive_error_limit=4), Phase.ERROR),
        ([Phase.ERROR, Phase.ERROR, Phase.SUCCESSFUL, Phase.ERROR], Limits(consecutive_error_limit=2), None),
        ([Phase.ERROR], Limits(consecutive_error_limit=0), Phase.ERROR),
        ([Phase.INCONCLUSIVE], Limits(), Phase.INCONCLUSIVE),
        ([Phase.INCONCLUSIVE, Phase.SUCCESSFUL], Limits(inconclusive_limit=1), None),
    ],
)
def test_assess_limits_like_argo(phases: list[Phase], limits: Limits, outcome: Phase | None) -> None:
    assert assess(phases, limits) is outcome


def test_worst_prefers_a_definite_failure() -> None:
    assert worst([Phase.ERROR, Phase.FAILED, Phase.INCONCLUSIVE]) is Phase.FAILED
    assert worst([Phase.SUCCESSFUL, Phase.INCONCLUSIVE]) is Phase.INCONCLUSIVE
    assert worst([]) is Phase.SUCCESSFUL


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ('checks.db == "ok"', "checks.db", "==", "ok"),
        ("checks.redis=='ok'", "checks.redis", "==", "ok"),
        ("workers.running >= 1", "workers.running", ">=", 1),
        ("latency_ms < 2.5", "latency_ms", "<", 2.5),
        ("items[0].ready != false", "items[0].ready", "!=", False),
        ('msg == "a <= b"', "msg", "==", "a <= b"),
    ],
)
def test_conditions_parse(text: str, metric: str, op: str, limit: object) -> None:
    assert parse_condition(text) == Threshold(metric=metric, op=op, limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "checks.db",
        "checks.db = 'ok'",
        "== 1",
        "a > 'x'",
        "a == ok",
        "__import__('os').system('x') == 1",
        "a[b] == 1",
    ],
)
def test_conditions_reject_what_is_not_a_comparison(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # the messages are asserted in test_config
        parse_condition(text)


def test_lookup_walks_json() -> None:
    doc = {"checks": {"db": "ok"}, "workers": {"running": 2}, "items": [{"ready": True}]}
    assert lookup(doc, "checks.db") == "ok"
    assert lookup(doc, "workers.running") == 2
    assert lookup(doc, "items[0].ready") is True
    assert lookup(doc, "items[3].ready") is None
    assert lookup(doc, "checks") is None  # not a scalar: nothing to compare
    assert lookup(doc, "checks.redis") is None
