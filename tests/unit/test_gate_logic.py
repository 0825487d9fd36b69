"""The switching gate's decision: healthy continuously for min-healthy, and Argo-style limits."""

from __future__ import annotations

from bluegreen.gate import GateDecision, Round, decide_gate, healthy_streak
from bluegreen.verdict import Judged, Limits, Measurement, Phase

DEFAULT = Limits()
S, F, E, N = Phase.SUCCESSFUL, Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE  # N: no verdict


def judged(check: str, phase: Phase, reason: str = "") -> Judged:
    return Judged(
        measurement=Measurement(check=check, kind="test"), phase=phase, reasons=(reason,) if reason else ()
    )


def rounds(*phases: dict[str, Phase], every: float = 10) -> list[Round]:
    return [
        Round(
            at=i * every,
            judged=tuple(judged(name, phase, f"{name} was {phase}") for name, phase in p.items()),
        )
        for i, p in enumerate(phases)
    ]


def decide(
    rs: list[Round],
    *,
    limits: Limits = DEFAULT,
    min_healthy: float = 30,
    deadline: float = 600,
    expected: tuple[str, ...] = ("a", "b"),
) -> GateDecision:
    return decide_gate(
        rs,
        expected=expected,
        started=0,
        now=rs[-1].at if rs else 0,
        min_healthy=min_healthy,
        deadline=deadline,
        limits=limits,
    )


def test_passes_once_healthy_for_min_healthy() -> None:
    ok = {"a": S, "b": S}
    assert decide(rounds(ok, ok, ok)).done is False  # 20 s of 30
    passed = decide(rounds(ok, ok, ok, ok))
    assert passed.done and passed.phase is S and passed.healthy_for == 30


def test_min_healthy_zero_passes_on_the_first_healthy_round() -> None:
    assert decide(rounds({"a": S, "b": S}), min_healthy=0).phase is S


def test_one_failure_fails_at_once_by_default() -> None:
    decision = decide(rounds({"a": S, "b": S}, {"a": S, "b": F}))
    assert decision.done and decision.phase is F
    assert decision.reason == "b: b was failed"


def test_a_tolerated_failure_still_restarts_the_streak() -> None:
    ok, blip = {"a": S, "b": S}, {"a": F, "b": S}
    limits = Limits(failure_limit=1)
    assert decide(rounds(ok, ok, ok, blip, ok, ok), limits=limits).done is False
    assert healthy_streak(rounds(ok, ok, ok, blip, ok, ok)) == 10
    assert decide(rounds(ok, ok, ok, blip, ok, ok, ok, ok), limits=limits).phase is S
    assert decide(rounds(ok, blip, ok, blip), limits=limits).phase is F


def test_errors_are_tolerated_only_up_to_the_consecutive_limit_and_never_count_as_healthy() -> None:
    ok, err = {"a": S, "b": S}, {"a": S, "b": E}
    limits = Limits(consecutive_error_limit=2)
    assert decide(rounds(ok, err, err, ok, err), limits=limits).done is False
    assert decide(rounds(ok, ok, ok, err, err), limits=limits, min_healthy=10).done is False
    ended = decide(rounds(ok, err, err, err), limits=limits)
    assert ended.phase is E and "b was error" in ended.reason


def test_inconclusive_never_passes() -> None:
    assert decide(rounds({"a": S, "b": N})).phase is N
    lenient = Limits(inconclusive_limit=10)
    assert decide(rounds(*[{"a": S, "b": N}] * 5), limits=lenient).done is False


def test_failed_outranks_error_and_inconclusive() -> None:
    assert decide(rounds({"a": E, "b": F}), limits=Limits(consecutive_error_limit=0)).phase is F


def test_deadline_without_a_long_enough_streak() -> None:
    ok, err = {"a": S, "b": S}, {"a": S, "b": E}
    limits = Limits(consecutive_error_limit=100)
    late = decide(rounds(ok, err, ok, err, ok), limits=limits, deadline=40)
    assert late.phase is F and "not healthy for 30s within the gate's 40s" in late.reason
    still_erring = decide(rounds(ok, ok, err, ok, err), limits=limits, deadline=40)
    assert still_erring.phase is E  # the last round could not be measured: say so, not FAILED


def test_one_shot_checks_must_have_succeeded() -> None:
    smoke_then_metrics = [
        Round(at=0, judged=(judged("a", S), judged("smoke", S))),
        Round(at=10, judged=(judged("a", S),)),
    ]
    assert decide(smoke_then_metrics, min_healthy=10, expected=("a", "smoke")).phase is S
    never_ran = [Round(at=0, judged=(judged("a", S),)), Round(at=10, judged=(judged("a", S),))]
    assert decide(never_ran, min_healthy=10, expected=("a", "smoke")).done is False
