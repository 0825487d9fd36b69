"""switch: move all traffic to one colour in one guarded write, verify it took effect, measure it.

Flat, each step returning early: read the router -> decide the target -> check the target is fully
available -> take the lock -> read again and write (a 409 is re-read and re-decided, never retried
blindly) -> verify -> point the preview Service at the other colour -> record the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import cancel, routers
from bluegreen.errors import ConflictError, NotFoundError, NotReadyError
from bluegreen.kube import call, found
from bluegreen.lock import current_holder
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context, record_switch
from bluegreen.rollout import fully_available, images_of, pod_problems, rollout_status
from bluegreen.routers.base import Router, RouteState, SwitchWrite, Verification

CONFLICT_RETRIES = 3
VERIFY_TIMEOUT = 60.0


def run(
    ctx: Context,
    *,
    to: Color | None = None,
    force: bool = False,
    reason: str = "",
    action: str = "switch",
    verify_timeout: float = VERIFY_TIMEOUT,
    baseline: Callable[[Color], dict[str, Any]] | None = None,
) -> Result:
    ctx.service()  # a missing namespace or app fails here, with its own message
    router = routers.make(ctx.router, ctx.app, ctx.kube)
    state = router.read()
    target = to or (state.active.other if state.active else Color.BLUE)
    result = Result(
        phase=action, result="noop", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.previous_color = str(state.active) if state.active else None
    result.mark(f"read {router.name}: {state.detail}")
    if state.active is target:
        result.active_color = str(target)
        result.messages.append(f"traffic already goes to {target} ({state.detail}): nothing to do")
        return result

    _require_available(ctx, target, force=force, result=result)
    images = {str(c): images_of((ctx.deployment(c) or {}).get("spec", {}).get("template", {})) for c in Color}
    result.images = images

    if ctx.dry_run:
        return _dry_run(ctx, router, target, result)

    # The live colour's numbers for the watch, taken just before its traffic leaves it (not under the
    # lock: a slow Prometheus must not hold up other runs).
    measured = baseline(state.active) if baseline and state.active else None
    # Shielded: a signal stops the run at its next write (cancel.before_write) or cuts the verification
    # short, never between the switch and its record.
    with ctx.lock(), cancel.shield():
        result.mark("lock taken")
        # Again under the lock: while this run waited for it, the target may have changed (a failed
        # deploy's restore still rolling out, another release's deploy).
        _require_available(ctx, target, force=force, result=None)
        state, write = _write(router, target)
        if not write.changed:
            result.active_color = str(target)
            result.messages.append(f"another run already moved traffic to {target}: nothing to do")
            return result
        result.mark(f"switched: {write.before} -> {write.after}")
        result.api_ms = write.api_ms
        result.changes.append(f"{router.name}: {write.before} -> {write.after}")
        verification = _verify(router, target, verify_timeout)
        result.converged_ms = verification.converged_ms
        result.mark(
            f"verified: {verification.message}"
            if verification.ok
            else f"not verified: {verification.message}"
        )
        result.messages.append(verification.message)
        result.messages.extend(f"not verified: {item}" for item in verification.unverified)
        _point_preview(ctx, state.active or target.other, result)
        result.details["history"] = record_switch(
            ctx,
            action=action,
            from_color=state.active,
            to_color=target,
            images=images,
            reason=reason,
            timings={"api_ms": write.api_ms, "converged_ms": verification.converged_ms},
            baseline=measured if measured and measured.get("color") == str(state.active) else None,
        )
    result.active_color = str(target)
    result.previous_color = str(state.active) if state.active else None
    result.result = ("rolled-back" if action == "rollback" else "switched") if verification.ok else "failed"
    if not verification.ok:
        result.messages.append(
            f"traffic was moved to {target} but did not converge in {verify_timeout:.0f}s: "
            f"check the {target} pods, or run `bluegreen rollback`"
        )
    return result


def _verify(router: Router, target: Color, timeout: float) -> Verification:
    """The router's verification, which a signal may cut short (it only reads); the switch is then
    recorded as not verified."""
    try:
        with cancel.interruptible():
            return router.verify(target, timeout=timeout)
    except cancel.Cancelled:
        return Verification(
            ok=False, converged_ms=0.0, message="verification cut short: the run was cancelled"
        )


def _require_available(ctx: Context, target: Color, *, force: bool, result: Result | None) -> None:
    name = ctx.app.deployment(target)
    dep = ctx.deployment(target)
    if dep is None:
        raise NotFoundError(
            f"Deployment {ctx.app.namespace}/{name} does not exist: only one colour is present",
            remedy=f"Run `bluegreen deploy --image IMAGE` to create {target} first.",
        )
    if fully_available(dep):
        return
    selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    why = "; ".join(pod_problems(ctx.pods(target, selector))) or rollout_status(dep).message
    if not force:
        raise NotReadyError(
            f"{target} is not ready to take all traffic: {why}",
            remedy="Wait for its rollout (`bluegreen deploy` waits for it), fix the pods, or pass --force.",
        )
    if result is not None:
        result.messages.append(f"--force: switching to {target} although it is not ready ({why})")


def _write(router: Router, target: Color) -> tuple[RouteState, SwitchWrite]:
    """Read and write under the lock; a conflict means someone changed the object: decide again."""
    for _ in range(CONFLICT_RETRIES):
        state = router.read()
        try:
            return state, router.switch_to(target, state=state)
        except ConflictError:
            continue
    raise ConflictError(
        f"the {router.name} router's object kept changing during {CONFLICT_RETRIES} attempts to switch",
        remedy="Find what else writes it (a GitOps controller reverting the selector?) and run again.",
    )


def _dry_run(ctx: Context, router: Router, target: Color, result: Result) -> Result:
    holder = current_holder(ctx.kube, ctx.app)
    if holder:
        result.messages.append(f"the lock is held by {holder}: a real run would wait or fail")
    state = router.read()
    write = router.switch_to(target, state=state, dry_run=True)
    result.result = "planned"
    result.active_color = str(state.active) if state.active else None
    result.changes.append(f"{router.name}: {write.before} -> {write.after} (patch {write.patch})")
    result.changes.append(f"Service {ctx.app.preview_service}: selector -> {state.active or target.other}")
    result.messages.append("dry run: the apiserver validated the change (dryRun=All); nothing was changed")
    return result


def _point_preview(ctx: Context, idle: Color, result: Result) -> None:
    """The preview Service follows the idle colour, so the next candidate is tested where it runs."""
    app = ctx.app
    what = f"Service {app.namespace}/{app.preview_service}"
    if (
        found(f"reading {what}", lambda: ctx.kube.get(Service, app.preview_service, namespace=app.namespace))
        is None
    ):
        return
    patch: dict[str, Any] = {"spec": {"selector": {app.color_label: str(idle)}}}
    call(
        f"pointing {what} at {idle}",
        lambda: ctx.kube.patch(
            Service, app.preview_service, patch, namespace=app.namespace, patch_type=PatchType.MERGE
        ),
        idempotent=False,
    )
    result.changes.append(f"{what}: selector {app.color_label}={idle}")
