"""The watch's decision: roll back when the error budget is spent, not on blindness or quiet."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bluegreen.gate import Round, WatchAction, WatchDecision, WatchResult, decide_watch
from bluegreen.history import HISTORY
from bluegreen.model import Color
from bluegreen.phases.checked import baseline_of
from bluegreen.verdict import Judged, Limits, Measurement, Phase

DEFAULT = Limits()
S, F, E, N = Phase.SUCCESSFUL, Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE  # N: no verdict


def rounds(*phases: Phase) -> list[Round]:
    return [
        Round(
            at=i * 10.0,
            judged=(
                Judged(measurement=Measurement(check="errors", kind="t"), phase=p, reasons=(f"errors {p}",)),
                Judged(measurement=Measurement(check="pods", kind="t"), phase=S),
            ),
        )
        for i, p in enumerate(phases)
    ]


def decide(
    rs: list[Round], *, duration: float = 600, failures: int = 2, auto: bool = True, limits: Limits = DEFAULT
) -> WatchDecision:
    return decide_watch(
        rs, started=0, now=rs[-1].at, duration=duration, failures=failures, limits=limits, auto_rollback=auto
    )


def test_keeps_watching_while_healthy() -> None:
    assert decide(rounds(S, S, S)).action is WatchAction.CONTINUE


def test_rolls_back_after_n_consecutive_bad_intervals() -> None:
    assert decide(rounds(S, F)).action is WatchAction.CONTINUE
    decision = decide(rounds(S, F, F))
    assert decision.action is WatchAction.ROLLBACK and decision.result is WatchResult.ROLLED_BACK
    assert (
        decision.reason
        == "error budget spent: checks failed in 2 consecutive intervals (errors: errors failed)"
    )


def test_a_recovered_blip_does_not_spend_the_budget() -> None:
    assert decide(rounds(F, S, F, S, F)).action is WatchAction.CONTINUE


def test_failures_one_rolls_back_on_the_first_bad_interval() -> None:
    assert decide(rounds(S, F), failures=1).action is WatchAction.ROLLBACK


def test_no_auto_rollback_reports_the_spent_budget() -> None:
    decision = decide(rounds(F, F), auto=False)
    assert decision.action is WatchAction.STOP and decision.result is WatchResult.BUDGET_SPENT


def test_healthy_run_ends_healthy_at_the_duration() -> None:
    decision = decide(rounds(S, S, F, S, S, S, S), duration=60)
    assert decision.action is WatchAction.STOP and decision.result is WatchResult.HEALTHY


def test_cannot_measure_stops_without_rollback() -> None:
    decision = decide(rounds(S, E, E, E), limits=Limits(consecutive_error_limit=2))
    assert decision.action is WatchAction.STOP and decision.result is WatchResult.ERROR
    assert decide(rounds(S, E, E), limits=Limits(consecutive_error_limit=2)).action is WatchAction.CONTINUE


def test_quiet_intervals_never_roll_back_but_leave_the_result_inconclusive() -> None:
    assert decide(rounds(N, N, N, N)).action is WatchAction.CONTINUE
    decision = decide(rounds(S, N, N, S, S), duration=40, limits=Limits(inconclusive_limit=1))
    assert decision.result is WatchResult.INCONCLUSIVE
    assert (
        decide(rounds(S, N, S, S, S), duration=40, limits=Limits(inconclusive_limit=1)).result
        is WatchResult.HEALTHY
    )


def test_the_watch_takes_its_baseline_from_the_switch_to_the_live_colour() -> None:
    switched = {"time": "2026-11-22T12:00:00+00:00", "action": "switch", "from": "blue", "to": "green"}
    recorded = {
        **switched,
        "baseline": {"color": "blue", "at": 1795348799.5, "checks": {"lat": {"p95": 0.2}}},
    }
    older = {"time": "2026-11-21T09:00:00+00:00", "action": "switch", "from": "green", "to": "blue"}

    def history(*entries: object) -> dict[str, str]:
        return {HISTORY: json.dumps(list(entries))}

    at, values = baseline_of(history(recorded, older), Color.GREEN)
    assert at == 1795348799.5 and values == {"lat": {"p95": 0.2}}  # measured just before the write
    at, values = baseline_of(history(switched, older), Color.GREEN)  # a switch that measured nothing
    assert at == datetime(2026, 11, 22, 12, tzinfo=UTC).timestamp() and values == {}
    assert baseline_of(history(older), Color.GREEN) == (None, {})  # never switched to green: none
