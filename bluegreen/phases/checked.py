"""The gate and watch phases as engine phases: config in, a Result out, rollback through the engine.

phases/gate.py and phases/watch.py sequence the checks and keep time; this module connects them to
the app's router (which colour is live), the Reporter, and the engine's own rollback.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bluegreen import drain, history, intent, preview, routers, telemetry
from bluegreen.config import Config
from bluegreen.errors import BlueGreenError, ConflictError, LockLostError, RefusedError
from bluegreen.gate import WatchResult
from bluegreen.kube import call, patch_json
from bluegreen.lock import Lock
from bluegreen.model import Color, Result
from bluegreen.phases import rollback
from bluegreen.phases.context import Context
from bluegreen.phases.gate import run_gate
from bluegreen.phases.switch import VERIFY_TIMEOUT, wait_observed
from bluegreen.phases.watch import run_watch
from bluegreen.rollout import fully_available
from bluegreen.routers.base import Router
from bluegreen.routers.service import ServiceRouter

GATE_RESULTS = {"successful": "passed", "failed": "failed", "inconclusive": "inconclusive", "error": "error"}
WATCH_RESULTS = {
    "healthy": "passed",
    "rolled-back": "rolled-back",
    "budget-spent": "failed",
    "inconclusive": "inconclusive",
    "error": "error",
    "preempted": "preempted",
    "moved": "failed",
}


@telemetry.traced("gate")
def gate(ctx: Context, config: Config) -> Result:
    """The switching gate on the idle colour, compared with live; every measurement in details."""
    live_service = ctx.service()
    live = routers.make(ctx.router_name(live_service), ctx.app, ctx.kube).read().active
    if live is None:
        raise RefusedError("no colour is live", remedy="Run `bluegreen status`.")
    findings = _drain_findings(ctx, config, live.other)
    if findings and config.gate.drain_check == "refuse":
        raise RefusedError(
            f"{ctx.app.deployment(live.other)} will drop requests as its pods stop: "
            + "; ".join(str(f) for f in findings),
            remedy="Fix the fields named, or set gate.drain-check: warn in bluegreen.yaml.",
        )
    judged = _release(ctx, live.other)
    pointed = _aim_preview(ctx, live)
    report = run_gate(config, ctx.app, live=live, kube=ctx.kube, progress=ctx.reporter.progress)
    result = Result(
        phase="gate", result=GATE_RESULTS[str(report.phase)], app=ctx.app.name, namespace=ctx.app.namespace
    )
    if pointed:
        result.changes.append(pointed)
        result.messages.append(
            f"the preview Service did not select {live.other}: pointed at {live.other} before measuring"
        )
    result.active_color = str(live)
    result.candidate = judged.hash or None
    result.messages.append(f"gate on {live.other}: {report.phase}: {report.reason}")
    result.details["gate"] = report.to_dict()
    result.messages += [f"drain: {f}" for f in findings]
    result.details["drain"] = [str(f) for f in findings]
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


def _aim_preview(ctx: Context, live: Color) -> str:
    """The gate tests the idle colour through the preview Service, which follows the candidate
    (bluegreen/preview.py) and so selects the live colour after a switch with no deploy since: it is
    pointed at the idle colour before any measurement, under the app's Lease for that one write, and
    its EndpointSlices awaited until they list exactly the idle colour's ready pods, so a smoke test
    never reaches the live colour. What changed, or ''."""
    idle = live.other
    if preview.selects(ctx.kube, ctx.app) in (None, str(idle)):
        return ""
    if not fully_available(ctx.deployment(idle)):
        # Said at once: pointed at a colour with nothing ready, the preview's endpoints never converge.
        raise RefusedError(
            f"the gate tests {idle} through the preview Service, which selects {live}; {idle} is not fully "
            "available (retired, or still rolling out), so there is nothing to point it at",
            remedy=f"Deploy the release to test to {idle} (`bluegreen deploy` points the preview at it), "
            "then run the gate.",
        )
    with ctx.lock():
        # Read again under the Lease: a switch since the first read would make `idle` the live colour.
        now = routers.make(ctx.router_name(), ctx.app, ctx.kube).read().active
        if now != live:
            raise RefusedError(
                f"traffic moved from {live} to {now or 'no single colour'} as the gate began",
                remedy="Run the gate again: it tests the colour that is idle then.",
            )
        pointed = preview.follow(ctx.kube, ctx.app, idle)
    if not pointed:
        return ""
    ctx.reporter.progress(f"gate: {pointed} (the colour the gate tests), before measuring")
    through = ServiceRouter(ctx.app, ctx.kube, object_name=ctx.app.preview_service)
    through.read()  # its selector: the pods it lists are judged by it
    verification = through.verify(idle, timeout=VERIFY_TIMEOUT)
    if not verification.ok:
        raise RefusedError(
            f"the preview Service was pointed at {idle}, but {verification.message}: the gate would "
            f"measure pods that are not {idle}'s",
            remedy=f"Check the {idle} pods (`bluegreen status`), then run the gate again.",
        )
    return pointed


def _drain_findings(ctx: Context, config: Config, color: Color) -> list[drain.Finding]:
    """The drain check on the colour about to take traffic (it will be retired one day), warned."""
    if config.gate.drain_check == "off":
        return []
    dep = ctx.deployment(color)
    if dep is None:
        return []
    findings = drain.check(dep, longest_request=config.gate.max_request, updates_serving_pods=False)
    for finding in findings:
        ctx.reporter.warning(f"drain: {finding}")
    return findings


def _release(ctx: Context, color: Color) -> intent.Release:
    return intent.Release.of(color, ctx.deployment(color), ctx.app.color_label)


def _stamp(ctx: Context, color: Color, judged: str, seconds: float) -> bool:
    """Stamp `color`'s Deployment with the template hash the gate judged, in a write guarded by the
    resourceVersion read; False when the template is no longer the one judged."""
    name, ns = ctx.app.deployment(color), ctx.app.namespace
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
                f"stamping Deployment {ns}/{name} as gated",
                lambda: patch_json(ctx.kube, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", patch),
                idempotent=False,
            )
            # The annotation is a new generation of the Deployment: end once its controller saw it.
            wait_observed(lambda: ctx.deployment(color))
            return True
        except ConflictError:
            continue
    return False


@telemetry.traced("watch")
def watch(ctx: Context, config: Config) -> Result:
    """Watch the live colour; roll back through the engine when the error budget is spent.

    The watch holds the app's Lease, preemptible, for its whole duration: no deploy can redeploy its
    rollback target under it, and a manual rollback takes it over and ends it (`preempted`)."""
    live_service = ctx.service()
    router = routers.make(ctx.router_name(live_service), ctx.app, ctx.kube)
    live = router.read().active
    if live is None:
        raise RefusedError("no colour is live", remedy="Run `bluegreen status`.")
    switched_at, recorded = baseline_of(ctx.history_annotations(), live)
    with ctx.lock(preemptible=True) as lock:
        return _watch(ctx, config, live, lock, switched_at, recorded, router)


def baseline_of(annotations: dict[str, str], live: Color) -> tuple[float | None, dict[str, Any]]:
    """When the switch to `live` happened (wall time) and the baseline it recorded, from the history."""
    entry = next((e for e in history.parse(annotations) if e.get("to") == str(live)), None)
    if entry is None:
        return None, {}
    try:
        at = datetime.fromisoformat(str(entry.get("time"))).timestamp()
    except ValueError:
        at = None
    baseline = entry.get("baseline") or {}
    checks = baseline.get("checks") if isinstance(baseline, dict) else None
    if isinstance(baseline, dict) and isinstance(baseline.get("at"), int | float):
        at = float(baseline["at"])
    return at, checks if isinstance(checks, dict) else {}


def _watch(
    ctx: Context,
    config: Config,
    live: Color,
    lock: Lock,
    switched_at: float | None,
    recorded: dict[str, Any],
    router: Router | None = None,
) -> Result:
    rolled: dict[str, Any] = {}
    now_on: dict[str, Color | None] = {}

    def moved() -> str:
        """How traffic left `live` since the watch began ('' while it is there): one read of the
        router's object a round. A GitOps sync writing the selector back is named with its writer."""
        if router is None:
            return ""
        named = getattr(router, "moved_off", None)
        try:
            state = router.read()
            if state.active == live:
                return ""
            told = named(live) if named is not None else None
        except BlueGreenError:  # not known this round (the API lost a moment): asked again next round
            return ""
        if _preempted(lock):  # a rollback took the Lease over and moved traffic: it is `preempted`
            return ""
        now_on["color"] = state.active
        return (
            told
            or f"traffic left {live} during the watch: {router.name} now routes to {state.active or 'no colour'} ({state.detail})"
        )

    def roll_back(reason: str) -> object:
        try:
            done = rollback.run(ctx, reason=f"watch: {reason}", to=live.other)
        except (LockLostError, RefusedError):
            if not (lock.refresh() and lock.preempted_by):
                raise
            return None  # a manual rollback took over first: it does the rolling back
        rolled["result"] = done
        return done.to_dict()

    report = run_watch(
        config,
        ctx.app,
        live=live,
        rollback=roll_back,
        kube=ctx.kube,
        progress=ctx.reporter.progress,
        switched_at=switched_at,
        recorded=recorded,
        preempted=lambda: _preempted(lock),
        moved=moved,
    )
    if report.rolled_back and lock.preempted_by and "result" not in rolled:
        report = replace(
            report,
            result=WatchResult.PREEMPTED,
            rolled_back=False,
            reason=f"a rollback took over ({lock.preempted_by})",
        )
    result: Result = rolled.get("result") or Result(
        phase="watch", result="", app=ctx.app.name, namespace=ctx.app.namespace
    )
    result.phase = "watch"
    result.result = WATCH_RESULTS[str(report.result)]
    result.active_color = str(live.other if report.rolled_back else live)
    result.previous_color = str(live if report.rolled_back else live.other)
    if report.result is WatchResult.PREEMPTED:
        result.active_color, result.previous_color = None, None  # the rollback that took over says where
    if report.result is WatchResult.MOVED:  # where traffic is now, not where the switch put it
        moved_to = now_on.get("color")
        result.active_color, result.previous_color = (str(moved_to) if moved_to else None), str(live)
        ctx.reporter.warning(report.reason)
    result.messages.append(f"watch on {live}: {report.result}: {report.reason}")
    result.details["watch"] = report.to_dict()
    if config.drain and config.drain.old_traffic and switched_at is not None and not report.rolled_back:
        _old_traffic(ctx, config, live.other, switched_at, result)
    result.mark(f"watch {report.result}")
    return result


def _old_traffic(ctx: Context, config: Config, old: Color, switched_at: float, result: Result) -> None:
    """The criterion after the watch: the old colour's request rate fell to zero within its bound.
    Lingering traffic is reported by series (pod) and warned, never rolled back for: moving traffic
    back to the colour that still has clients would not free them."""
    from bluegreen.phases import keepalive

    judged = keepalive.old_traffic(config, ctx.app, old, switched_at, ctx.reporter.progress)
    if isinstance(judged, str):
        result.details["old_traffic"] = {"state": "unknown", "error": judged}
        result.messages.append(judged)
        ctx.reporter.warning(judged)
        return
    result.details["old_traffic"] = judged.to_dict()
    result.messages.append(judged.message(str(old)))
    if judged.state == "lingering":
        ctx.reporter.warning(judged.message(str(old)))


def _preempted(lock: Lock) -> str:
    """Why the watch must end now: a rollback took its Lease over ('' to go on). LockLostError when
    the Lease was lost any other way: this run can no longer roll back safely."""
    why = lock.refresh()
    if not why:
        return ""
    if lock.preempted_by:
        return f"preempted: a rollback took over the lock ({lock.preempted_by})"
    lock.check_held("watching")
    return why
