"""The gate phase: run the checks against the idle colour every interval until the switching gate
decides (bluegreen.gate.decide_gate), and report every measurement.

Flat: build the checks -> measure a round -> judge -> decide -> wait for the next interval. The
checks measure, verdict.judge judges, gate.decide_gate decides; this module only sequences them
and keeps time. It reads the cluster only through the checks it builds and never writes to it
(a `job` check creates its Job, which is what that check is for).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightkube import Client

from bluegreen import telemetry
from bluegreen.checks import Check, Target, build
from bluegreen.config import Config, format_duration
from bluegreen.errors import EXIT_CLUSTER, EXIT_OK, EXIT_REFUSED
from bluegreen.gate import Round, decide_gate
from bluegreen.model import AppSpec, Color
from bluegreen.verdict import Judged, Phase, judge

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class GateReport:
    """What the gate decided, why, and every measurement it took."""

    phase: Phase
    reason: str
    color: Color  # the colour judged (the idle one)
    baseline: Color
    healthy_for: float
    started: float
    finished: float
    rounds: tuple[Round, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return self.phase is Phase.SUCCESSFUL

    @property
    def exit_code(self) -> int:
        """0 passed; 1 refused (FAILED or INCONCLUSIVE); 3 could not measure (ERROR)."""
        if self.phase is Phase.SUCCESSFUL:
            return EXIT_OK
        return EXIT_CLUSTER if self.phase is Phase.ERROR else EXIT_REFUSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": str(self.phase),
            "reason": self.reason,
            "color": str(self.color),
            "baseline": str(self.baseline),
            "healthy_for_seconds": round(self.healthy_for, 3),
            "duration_seconds": round(self.finished - self.started, 3),
            "rounds": [rounds_dict(r) for r in self.rounds],
        }


def judged_dict(judged: Judged) -> dict[str, Any]:
    m = judged.measurement
    return {
        "check": m.check,
        "kind": m.kind,
        "target": m.target,
        "phase": str(judged.phase),
        "reasons": list(judged.reasons),
        "values": dict(m.values),
        "detail": m.detail,
        "at": m.at,
    }


def rounds_dict(round_: Round) -> dict[str, Any]:
    return {"at": round_.at, "healthy": round_.healthy, "checks": [judged_dict(j) for j in round_.judged]}


def describe(judged: Judged) -> str:
    """One line per measurement for progress output: `  ✓ errors (prometheus) error_rate=0 (ok: ...)`."""
    mark = {
        Phase.SUCCESSFUL: "ok",
        Phase.FAILED: "FAILED",
        Phase.INCONCLUSIVE: "INCONCLUSIVE",
        Phase.ERROR: "ERROR",
    }
    return f"  {mark[judged.phase]:<12} {judged.check} ({judged.measurement.kind}): {judged.summary()}"


def measure_round(checks: Sequence[Check], target: Target, *, skip: set[str], at: float) -> Round:
    with telemetry.span("check round", **{"bluegreen.color": str(target.color)}) as current:
        judged = tuple(judge(check.measure(target)) for check in checks if check.name not in skip)
        telemetry.note(current, **{"bluegreen.baseline": str(target.baseline)}, **round_attributes(judged))
    return Round(at=at, judged=judged)


def round_attributes(judged: Sequence[Judged]) -> dict[str, Any]:
    """A round's verdicts and measurements as span attributes: check.<name>.phase, check.<name>.<value>."""
    found: dict[str, Any] = {}
    for j in judged:
        found[f"check.{j.measurement.check}.phase"] = str(j.phase)
        found |= {f"check.{j.measurement.check}.{k}": v for k, v in j.measurement.values.items()}
    return found


def run_gate(
    config: Config,
    app: AppSpec,
    *,
    live: Color,
    kube: Client | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_round: Callable[[Round], None] | None = None,
) -> GateReport:
    """Run the switching gate on the idle colour (`live.other`), compared with `live`."""
    say = progress or (lambda _line: None)
    gate = config.gate
    idle = live.other
    target = Target(
        app=app,
        color=idle,
        baseline=live,
        service=app.preview_service,
        window=gate.window,
        max_error_rate=gate.max_error_rate,
        p95_tolerance=gate.p95_tolerance,
    )
    checks = [build(c, kube=kube) for c in config.gate_checks()]
    say(
        f"gate: {idle} (compared with live {live}): healthy for {format_duration(gate.min_healthy)}, "
        f"checked every {format_duration(gate.interval)}, {len(checks)} checks, "
        f"gives up after {format_duration(gate.deadline)}"
    )
    started = clock()
    rounds: list[Round] = []
    passed_once: set[str] = set()  # one-shot checks (command, job) that already succeeded
    try:
        while True:
            at = clock()
            round_ = measure_round(checks, target, skip=passed_once, at=at)
            rounds.append(round_)
            passed_once.update(
                j.check for j in round_.judged if j.phase is Phase.SUCCESSFUL and _once(checks, j.check)
            )
            for judged in round_.judged:
                say(describe(judged))
            if on_round:
                on_round(round_)
            decision = decide_gate(
                rounds,
                expected=[c.name for c in checks],
                started=started,
                now=clock(),
                min_healthy=gate.min_healthy,
                deadline=gate.deadline,
                limits=gate.limits,
            )
            if decision.done:
                assert decision.phase is not None
                say(f"gate: {decision.phase}: {decision.reason}")
                return GateReport(
                    phase=decision.phase,
                    reason=decision.reason,
                    color=idle,
                    baseline=live,
                    healthy_for=decision.healthy_for,
                    started=started,
                    finished=clock(),
                    rounds=tuple(rounds),
                )
            say(f"gate: healthy for {decision.healthy_for:.0f}s of {gate.min_healthy:.0f}s")
            sleep(max(0.0, gate.interval - (clock() - at)))
    finally:
        for check in checks:
            check.close()


def _once(checks: Sequence[Check], name: str) -> bool:
    return any(c.name == name and c.once for c in checks)
