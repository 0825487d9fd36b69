"""Pure decisions of the switching gate and of the watch after a switch: rounds of judged checks in,
a decision out. No I/O and no clock: the phases pass `now`, so every rule is unit-tested directly.

Gate (the seed's switching gate): every check SUCCESSFUL in every round, continuously for
`min_healthy`; one check's FAILED, ERROR or INCONCLUSIVE past its limits (Argo's failure-limit,
consecutive-error-limit, inconclusive-limit) ends the gate at once with that phase. A tolerated bad
round still breaks the healthy streak: ERROR and INCONCLUSIVE never count as healthy.

Watch: the error budget is spent when some check FAILED in `failures` consecutive rounds: roll
back. A check that cannot be measured for more than consecutive-error-limit rounds ends the watch
with ERROR and no rollback (we do not move production traffic on blindness; the report says how to
roll back by hand). Rounds with INCONCLUSIVE checks (no traffic) are never held against the release,
but more of them than inconclusive-limit make the result `inconclusive` instead of `healthy`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from bluegreen.verdict import Judged, Limits, Phase, assess, worst


@dataclass(frozen=True, kw_only=True)
class Round:
    """Every check judged once, at wall time `at`."""

    at: float
    judged: tuple[Judged, ...]

    @property
    def healthy(self) -> bool:
        return bool(self.judged) and all(j.phase is Phase.SUCCESSFUL for j in self.judged)

    def bad(self, phase: Phase) -> tuple[Judged, ...]:
        return tuple(j for j in self.judged if j.phase is phase)


def _by_check(rounds: Sequence[Round]) -> dict[str, list[Judged]]:
    found: dict[str, list[Judged]] = {}
    for round_ in rounds:
        for judged in round_.judged:
            found.setdefault(judged.check, []).append(judged)
    return found


def _reason(judged: Judged) -> str:
    return f"{judged.check}: {judged.summary()}"


# ---------------------------------------------------------------------------------------------------
# The switching gate.


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    done: bool
    phase: Phase | None = None  # the gate's outcome once done
    reason: str = ""
    healthy_for: float = 0.0  # seconds of the current healthy streak


def healthy_streak(rounds: Sequence[Round]) -> float:
    """Seconds from the first to the last round of the trailing run of healthy rounds (0: none)."""
    if not rounds or not rounds[-1].healthy:
        return 0.0
    first = rounds[-1]
    for round_ in reversed(rounds):
        if not round_.healthy:
            break
        first = round_
    return rounds[-1].at - first.at


def decide_gate(
    rounds: Sequence[Round],
    *,
    expected: Sequence[str],
    started: float,
    now: float,
    min_healthy: float,
    deadline: float,
    limits: Limits,
) -> GateDecision:
    """Whether the gate is done, and with which phase.

    `expected`: names of every check; one-shot checks appear only in the rounds that ran them, so
    each must have SUCCEEDED at least once, and every check's latest result must be SUCCESSFUL.
    """
    history = _by_check(rounds)
    verdicts = {name: assess([j.phase for j in judged], limits) for name, judged in history.items()}
    for final in (Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE):
        ended = [name for name, phase in verdicts.items() if phase is final]
        if ended:
            reasons = "; ".join(_reason(history[name][-1]) for name in ended)
            return GateDecision(done=True, phase=final, reason=reasons)
    streak = healthy_streak(rounds)
    latest_ok = all(name in history and history[name][-1].phase is Phase.SUCCESSFUL for name in expected)
    if latest_ok and rounds and rounds[-1].healthy and streak >= min_healthy:
        return GateDecision(
            done=True,
            phase=Phase.SUCCESSFUL,
            reason=f"every check healthy for {streak:.0f}s (min-healthy {min_healthy:.0f}s)",
            healthy_for=streak,
        )
    if now - started >= deadline:
        last = rounds[-1].judged if rounds else ()
        phase = worst([j.phase for j in last])
        if phase is Phase.SUCCESSFUL:
            phase = Phase.FAILED
        bad = [j for j in last if j.phase is not Phase.SUCCESSFUL]
        detail = "; ".join(_reason(j) for j in bad) or f"healthy for only {streak:.0f}s"
        return GateDecision(
            done=True,
            phase=phase,
            reason=f"not healthy for {min_healthy:.0f}s within the gate's {deadline:.0f}s: {detail}",
            healthy_for=streak,
        )
    return GateDecision(done=False, healthy_for=streak)


# ---------------------------------------------------------------------------------------------------
# The watch after a switch.


class WatchAction(enum.StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    STOP = "stop"  # done watching, no rollback


class WatchResult(enum.StrEnum):
    HEALTHY = "healthy"
    ROLLED_BACK = "rolled-back"
    BUDGET_SPENT = "budget-spent"  # the budget was spent but auto-rollback is off
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    PREEMPTED = "preempted"  # a rollback took the watch's Lease over: it ends, no rollback of its own
    MOVED = "moved"  # traffic left the watched colour (a GitOps sync, a hand edit): nothing left to judge


@dataclass(frozen=True, kw_only=True)
class WatchDecision:
    action: WatchAction
    result: WatchResult | None = None  # set unless action is CONTINUE
    reason: str = ""
    bad_rounds: int = 0  # trailing consecutive rounds with a FAILED check


def decide_watch(
    rounds: Sequence[Round],
    *,
    started: float,
    now: float,
    duration: float,
    failures: int,
    limits: Limits,
    auto_rollback: bool,
) -> WatchDecision:
    bad = 0
    for round_ in reversed(rounds):
        if not round_.bad(Phase.FAILED):
            break
        bad += 1
    if bad >= failures:
        reasons = "; ".join(_reason(j) for j in rounds[-1].bad(Phase.FAILED))
        why = f"error budget spent: checks failed in {bad} consecutive intervals ({reasons})"
        if auto_rollback:
            return WatchDecision(
                action=WatchAction.ROLLBACK, result=WatchResult.ROLLED_BACK, reason=why, bad_rounds=bad
            )
        return WatchDecision(
            action=WatchAction.STOP, result=WatchResult.BUDGET_SPENT, reason=why, bad_rounds=bad
        )
    for judged in _by_check(rounds).values():
        if (
            assess(
                [j.phase for j in judged],
                Limits(
                    failure_limit=len(judged),  # failures are counted by the consecutive-rounds rule above
                    inconclusive_limit=len(judged),
                    consecutive_error_limit=limits.consecutive_error_limit,
                ),
            )
            is Phase.ERROR
        ):
            return WatchDecision(
                action=WatchAction.STOP,
                result=WatchResult.ERROR,
                reason=f"cannot measure {_reason(judged[-1])} (more than {limits.consecutive_error_limit} intervals in a row)",
                bad_rounds=bad,
            )
    if now - started < duration:
        return WatchDecision(action=WatchAction.CONTINUE, bad_rounds=bad)
    inconclusive = sum(1 for r in rounds if r.bad(Phase.INCONCLUSIVE))
    if inconclusive > limits.inconclusive_limit:
        return WatchDecision(
            action=WatchAction.STOP,
            result=WatchResult.INCONCLUSIVE,
            reason=f"{inconclusive} of {len(rounds)} intervals had nothing to judge (no traffic or no series)",
            bad_rounds=bad,
        )
    return WatchDecision(
        action=WatchAction.STOP,
        result=WatchResult.HEALTHY,
        reason=f"no error budget spent in {len(rounds)} intervals",
        bad_rounds=bad,
    )
