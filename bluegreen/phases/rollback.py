"""rollback: traffic back to the previous colour; the colour rolled back from keeps running.

The previous colour comes from the live Service's annotations, so rollback needs only cluster access.
If it was retired (scaled to zero), it is scaled back up and waited for before traffic moves.
Priority: a rollback takes over the Lease of a running watch instead of waiting for it (docs/
rollback-procedure.md); the readiness of the target is checked again under the lock (switch).
"""

from __future__ import annotations

from typing import Any

from bluegreen import history, ordering, telemetry
from bluegreen.errors import NotFoundError, RefusedError
from bluegreen.kube import call, patch_json
from bluegreen.model import Color, Result
from bluegreen.phases import switch
from bluegreen.phases.context import Context, gives_back_claim
from bluegreen.routers.service import ServiceRouter


@telemetry.traced("rollback")
@gives_back_claim
def run(
    ctx: Context,
    *,
    reason: str = "",
    to: Color | None = None,
    force: bool = False,
    traffic: switch.TrafficCheck | None = None,
) -> Result:
    router, state = switch.read_route(ctx)
    # The Service router's read is the live Service, history included: not read a third time.
    annotations = (
        router.annotations
        if isinstance(router, ServiceRouter) and router.records_history
        else ctx.history_annotations()
    )
    newest = next(iter(history.parse(annotations)), {})
    if (
        to is None
        and state.active
        and newest.get("action") == "rollback"
        and newest.get("to") == str(state.active)
    ):
        # A re-run of a rollback that already moved traffic (its answer lost, a later write failed, a
        # double click): "back to the previous colour" now names the release it rolled back from.
        return _already_rolled_back(ctx, state.active, newest)
    recorded = annotations.get(history.PREVIOUS)
    # A recorded previous colour that is live now is a history that lags the router: not a target.
    stale = recorded == (str(state.active) if state.active else None)
    target = to or (Color.parse(recorded) if recorded in ("blue", "green") and not stale else None)
    if target is None:
        target = state.active.other if state.active else None
    if target is None:
        raise RefusedError("no previous colour is recorded", remedy="Name one with --to blue|green.")
    if state.active is target:
        raise RefusedError(
            f"traffic already goes to {target}: there is nothing to roll back to",
            remedy="Run `bluegreen status`; to move traffic, use `bluegreen switch --to COLOUR`.",
        )
    if not ctx.dry_run:
        ctx.peek_lock(take=True)  # before the Deployments are read: see switch.run and Lock.undisturbed
    before = ctx.deployments()  # both colours, in one request
    dep = before[target]
    if dep is None:
        raise NotFoundError(
            f"Deployment {ctx.app.namespace}/{ctx.app.deployment(target)} does not exist: nothing to roll back to"
        )
    contracted = ordering.rollback_after_contract(
        str(target), history.parse(annotations), history.migrations(annotations)
    )
    if contracted and not force:
        raise RefusedError(
            f"rollback to {target} refused: {contracted}",
            remedy="Roll forward: deploy a fix as a new release (docs/data-safety.md). If the release on "
            f"{target} does not use what contract removed, `bluegreen rollback --to {target} --force` (recorded).",
        )
    # A rollback never waits for a release's watch: it takes the watch's Lease over (preempt), and the
    # watch ends `preempted` at its next interval. Deploy, switch and retire are waited for.
    with ctx.lock(preempt=not ctx.dry_run) as lock:
        # Both colours again under the lock (the target may have been retired meanwhile), unless the
        # Lease was taken from the free Lease read before them (no other run held it since): the switch
        # decides on these reads and checks the target's readiness on them, without reading again.
        held: dict[Color, dict[str, Any] | None] | None = before if lock.undisturbed else ctx.deployments()
        dep = (held or {}).get(target) or dep
        if dep["spec"].get("replicas", 1) == 0 and not ctx.dry_run:
            live = (held or {}).get(state.active) if state.active else None
            held = None  # scaled and rolled out below: the switch reads them as they are then
            replicas = (live or {}).get("spec", {}).get("replicas", 1) or 1
            ctx.reporter.progress(f"{target} was retired: scaling it to {replicas} replicas first")
            patch: dict[str, Any] = {"spec": {"replicas": replicas}}
            name, ns = ctx.app.deployment(target), ctx.app.namespace
            call(
                f"scaling Deployment {ns}/{name} to {replicas}",
                lambda: patch_json(ctx.kube, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", patch),
                idempotent=False,
            )
            ctx.wait_rollout(target, timeout=ctx.timeout)
        result = switch.run(
            ctx,
            to=target,
            reason=reason or "rollback",
            action="rollback",
            force=force,
            read=(router, state),
            held=held,
            traffic=traffic,
        )
    if result.result == "rolled-back":
        result.messages.append(
            f"{target.other} keeps running for the post-mortem; `bluegreen retire` scales it down"
        )
    return result


def _already_rolled_back(ctx: Context, live: Color, entry: dict[str, Any]) -> Result:
    result = Result(
        phase="rollback", result="noop", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.active_color, result.previous_color = str(live), str(live.other)
    when = entry.get("time") or "earlier"
    result.messages.append(
        f"traffic was already rolled back to {live} ({when}): nothing to do. Rolling back again would "
        f"return to the release it left; to do that on purpose, `bluegreen switch --to {live.other} --force`"
    )
    return result
