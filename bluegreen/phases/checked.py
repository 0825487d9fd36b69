"""The gate and watch phases as engine phases: config in, a Result out, rollback through the engine.

phases/gate.py and phases/watch.py sequence the checks and keep time; this module connects them to
the app's router (which colour is live), the Reporter, and the engine's own rollback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from bluegreen import intent, routers
from bluegreen.config import Config
from bluegreen.errors import ConflictError, RefusedError
from bluegreen.kube import call
from bluegreen.model import Color, Result
from bluegreen.phases import rollback
from bluegreen.phases.context import Context
from bluegreen.phases.gate import run_gate
from bluegreen.phases.switch import wait_observed
from bluegreen.phases.watch import run_watch

GATE_RESULTS = {"successful": "passed", "failed": "failed", "inconclusive": "inconclusive", "error": "error"}
WATCH_RESULTS = {
    "healthy": "passed",
    "rolled-back": "rolled-back",
    "budget-spent": "failed",
    "inconclusive": "inconclusive",
    "error": "error",
}


def gate(ctx: Context, config: Config) -> Result:
    """The switching gate on the idle colour, compared with live; every measurement in details."""
    ctx.service()
    live = routers.make(ctx.router, ctx.app, ctx.kube).read().active
    if live is None:
        raise RefusedError("no colour is live", remedy="Run `bluegreen status`.")
    judged = _release(ctx, live.other)
    report = run_gate(config, ctx.app, live=live, kube=ctx.kube, progress=ctx.reporter.progress)
    result = Result(
        phase="gate", result=GATE_RESULTS[str(report.phase)], app=ctx.app.name, namespace=ctx.app.namespace
    )
    result.active_color = str(live)
    result.candidate = judged.hash or None
    result.messages.append(f"gate on {live.other}: {report.phase}: {report.reason}")
    result.details["gate"] = report.to_dict()
    result.mark(f"gate {report.phase}")
    if report.passed and judged.hash:
        stamped = _stamp(ctx, live.other, judged.hash, report.to_dict()["duration_seconds"])
        if stamped:
            result.changes.append(
                f"Deployment {ctx.app.deployment(live.other)}: gate passed for template {judged.hash}"
            )
        else:
            result.result = "inconclusive"
            result.messages.append(
                f"the {live.other} pod template changed while the gate ran (it judged {judged.hash}): "
                "not stamped as gated; run the gate again"
            )
    return result


def _release(ctx: Context, color: Color) -> intent.Release:
    return intent.Release.of(color, ctx.deployment(color), ctx.app.color_label)


def _stamp(ctx: Context, color: Color, judged: str, seconds: float) -> bool:
    """Stamp `color`'s Deployment with the template hash the gate judged, in a write guarded by the
    resourceVersion read; False when the template is no longer the one judged."""
    name = ctx.app.deployment(color)
    for _ in range(3):
        dep = ctx.deployment(color)
        if dep is None or intent.template_hash(dep["spec"]["template"], ctx.app.color_label) != judged:
            return False
        value = {
            "hash": judged,
            "result": "passed",
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": ctx.run.run_id,
            "duration_seconds": seconds,
        }
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": dep["metadata"]["resourceVersion"],
                "annotations": {intent.GATE: intent.encode(value)},
            }
        }
        try:
            call(
                f"stamping Deployment {ctx.app.namespace}/{name} as gated",
                lambda: ctx.kube.patch(
                    Deployment, name, patch, namespace=ctx.app.namespace, patch_type=PatchType.MERGE
                ),
                idempotent=False,
            )
            # The annotation is a new generation of the Deployment: end once its controller saw it.
            wait_observed(lambda: ctx.deployment(color))
            return True
        except ConflictError:
            continue
    return False


def watch(ctx: Context, config: Config) -> Result:
    """Watch the live colour; roll back through the engine when the error budget is spent."""
    ctx.service()
    live = routers.make(ctx.router, ctx.app, ctx.kube).read().active
    if live is None:
        raise RefusedError("no colour is live", remedy="Run `bluegreen status`.")
    rolled: dict[str, Any] = {}

    def roll_back(reason: str) -> object:
        done = rollback.run(ctx, reason=f"watch: {reason}", to=live.other)
        rolled["result"] = done
        return done.to_dict()

    report = run_watch(
        config, ctx.app, live=live, rollback=roll_back, kube=ctx.kube, progress=ctx.reporter.progress
    )
    result: Result = rolled.get("result") or Result(
        phase="watch", result="", app=ctx.app.name, namespace=ctx.app.namespace
    )
    result.phase = "watch"
    result.result = WATCH_RESULTS[str(report.result)]
    result.active_color = str(live.other if report.rolled_back else live)
    result.previous_color = str(live if report.rolled_back else live.other)
    result.messages.append(f"watch on {live}: {report.result}: {report.reason}")
    result.details["watch"] = report.to_dict()
    result.mark(f"watch {report.result}")
    return result
