"""The watch phase: after a switch, check the live colour every interval for `duration`; when the
error budget is spent (bluegreen.gate.decide_watch), roll back through the engine's rollback phase
(passed in as `rollback`, never re-implemented here) unless auto-rollback is off.

Each interval costs the same fixed set of requests (one query per metric, one LIST of pods, a fixed
number of probe requests), so the load on the cluster and on Prometheus does not grow with the
duration. Metrics compare the new live colour with the previous one. For Prometheus the previous
colour's numbers are those the switch recorded in the history (measure_baseline), or else read as they
were at the moment of the switch, its last real traffic: a watch that starts long after the switch (a
separate job after an approval) still has a baseline, where the previous colour's window is empty now.

A rollback takes the watch's Lease over (it is held preemptible): `preempted`, checked before every
round, ends the watch with result `preempted` and no rollback of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lightkube import Client

from bluegreen import cancel
from bluegreen.checks import Target, build
from bluegreen.checks.prometheus import PrometheusCheck
from bluegreen.config import Config, PrometheusCheckConfig, format_duration
from bluegreen.errors import EXIT_CLUSTER, EXIT_OK, EXIT_REFUSED
from bluegreen.gate import Round, WatchAction, WatchResult, decide_watch
from bluegreen.model import AppSpec, Color
from bluegreen.phases.gate import Progress, describe, measure_round, rounds_dict


@dataclass(frozen=True, kw_only=True)
class WatchReport:
    result: WatchResult
    reason: str
    color: Color  # the live colour watched
    previous: Color
    rolled_back: bool
    started: float
    finished: float
    rounds: tuple[Round, ...] = field(default_factory=tuple)
    rollback_detail: object = None  # what the engine's rollback returned

    @property
    def exit_code(self) -> int:
        """0 healthy or preempted by a rollback; 1 rolled back, budget spent or inconclusive; 3 could
        not measure."""
        if self.result in (WatchResult.HEALTHY, WatchResult.PREEMPTED):
            return EXIT_OK
        return EXIT_CLUSTER if self.result is WatchResult.ERROR else EXIT_REFUSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": str(self.result),
            "reason": self.reason,
            "color": str(self.color),
            "previous": str(self.previous),
            "rolled_back": self.rolled_back,
            "duration_seconds": round(self.finished - self.started, 3),
            "rounds": [rounds_dict(r) for r in self.rounds],
        }


def run_watch(
    config: Config,
    app: AppSpec,
    *,
    live: Color,
    rollback: Callable[[str], object],
    kube: Client | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = cancel.sleep,
    on_round: Callable[[Round], None] | None = None,
    switched_at: float | None = None,
    recorded: Mapping[str, Mapping[str, float]] | None = None,
    preempted: Callable[[], str] | None = None,
    moved: Callable[[], str] | None = None,
) -> WatchReport:
    """Watch `live` (just switched to) against the previous colour; `rollback(reason)` on a spent budget.

    `switched_at` (wall time) and `recorded` (values by check) are the baseline the switch left in the
    history; `preempted()` says why to stop ('' to go on): a rollback that took the Lease over.
    `moved()` says how traffic left `live` ('' while it is there): the watch then ends `moved`, without
    a rollback (traffic is not on the colour it would roll back from)."""
    say = progress or (lambda _line: None)
    watch = config.watch
    started = clock()
    target = Target(
        app=app,
        color=live,
        baseline=live.other,
        service=app.service,
        window=watch.window,
        max_error_rate=watch.max_error_rate,
        p95_tolerance=watch.p95_tolerance,
        max_p95=watch.max_p95,
        baseline_at=switched_at if switched_at is not None else started,
        recorded=recorded or {},
    )
    checks = [build(c, kube=kube) for c in config.watch_checks()]
    say(
        f"watch: live {live} for {format_duration(watch.duration)}, every {format_duration(watch.interval)}; "
        f"budget spent after {watch.failures} bad intervals in a row; "
        f"auto-rollback {'on' if watch.auto_rollback else 'off'}"
    )
    rounds: list[Round] = []
    try:
        while True:
            # Ended before this round by another hand: a rollback that took the Lease over, or traffic
            # moved off `live`. Either way, no rollback of its own.
            for result, ask in ((WatchResult.PREEMPTED, preempted), (WatchResult.MOVED, moved)):
                why = ask() if ask else ""
                if why:
                    say(f"watch: {why}: ending without a rollback of its own")
                    return WatchReport(
                        result=result,
                        reason=why,
                        color=live,
                        previous=live.other,
                        rolled_back=False,
                        started=started,
                        finished=clock(),
                        rounds=tuple(rounds),
                    )
            at = clock()
            round_ = measure_round(checks, target, skip=set(), at=at)
            rounds.append(round_)
            for judged in round_.judged:
                say(describe(judged))
            if on_round:
                on_round(round_)
            decision = decide_watch(
                rounds,
                started=started,
                now=clock(),
                duration=watch.duration,
                failures=watch.failures,
                limits=watch.limits,
                auto_rollback=watch.auto_rollback,
            )
            if decision.action is WatchAction.CONTINUE:
                sleep(max(0.0, min(watch.interval - (clock() - at), started + watch.duration - clock())))
                continue
            assert decision.result is not None
            detail: object = None
            if decision.action is WatchAction.ROLLBACK:
                say(f"watch: {decision.reason}: rolling back to {live.other}")
                detail = rollback(decision.reason)
            elif decision.result is WatchResult.BUDGET_SPENT:
                say(
                    f"watch: {decision.reason}; auto-rollback is off: run `bluegreen rollback` to go back to {live.other}"
                )
            elif decision.result is WatchResult.ERROR:
                say(
                    f"watch: {decision.reason}; traffic stays on {live}: run `bluegreen rollback` if in doubt"
                )
            else:
                say(f"watch: {decision.result}: {decision.reason}")
            return WatchReport(
                result=decision.result,
                reason=decision.reason,
                color=live,
                previous=live.other,
                rolled_back=decision.action is WatchAction.ROLLBACK,
                started=started,
                finished=clock(),
                rounds=tuple(rounds),
                rollback_detail=detail,
            )
    finally:
        for check in checks:
            check.close()


def measure_baseline(
    config: Config, app: AppSpec, *, live: Color, kube: Client | None = None
) -> dict[str, Any]:
    """The live colour's numbers just before a switch, by check, for the history entry the switch
    writes: the watch's Prometheus checks (p95, error rate). {} when there are none or none answered.

    After the switch the colour that was live gets no traffic, so this is the last moment its numbers
    mean anything (probe checks measure both colours each round and need no record)."""
    watch = config.watch
    target = Target(
        app=app,
        color=live,
        baseline=live.other,
        service=app.service,
        window=watch.window,
        max_error_rate=watch.max_error_rate,
        p95_tolerance=watch.p95_tolerance,
    )
    values: dict[str, dict[str, float]] = {}
    for check_config in config.watch_checks():
        if not isinstance(check_config, PrometheusCheckConfig):
            continue
        check = PrometheusCheck(check_config)
        try:
            measured = check.baseline(target)
            if measured:
                values[check.name] = measured
        finally:
            check.close()
    if not values:
        return {}
    return {"color": str(live), "at": round(time.time(), 3), "checks": values}
