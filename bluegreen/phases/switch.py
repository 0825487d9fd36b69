"""switch: move all traffic to one colour in one guarded write, verify it took effect, measure it.

Flat, each step returning early: read the router -> decide the target -> check the target is fully
available -> take the lock -> read again and write (a 409 is re-read and re-decided, never retried
blindly) -> verify -> point the preview Service at the other colour -> record the audit trail.
"""

from __future__ import annotations

from typing import Any

from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import routers
from bluegreen.errors import ConflictError, NotFoundError, NotReadyError
from bluegreen.kube import call, found
from bluegreen.lock import current_holder
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context, record_switch
from bluegreen.rollout import fully_available, images_of, pod_problems, rollout_status
from bluegreen.routers.base import Router, RouteState, SwitchWrite

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
    allow_no_endpoints: bool = False,
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

    forced = _require_available(
        ctx, target, force=force, result=result, allow_no_endpoints=allow_no_endpoints
    )
    if forced:
        reason = f"{reason} [{forced}]" if reason else forced
    images = {str(c): images_of((ctx.deployment(c) or {}).get("spec", {}).get("template", {})) for c in Color}
    result.images = images

    if ctx.dry_run:
        return _dry_run(ctx, router, target, result)

    with ctx.lock():
        result.mark("lock taken")
        state, write = _write(router, target)
        if not write.changed:
            result.active_color = str(target)
            result.messages.append(f"another run already moved traffic to {target}: nothing to do")
            return result
        result.mark(f"switched: {write.before} -> {write.after}")
        result.api_ms = write.api_ms
        result.changes.append(f"{router.name}: {write.before} -> {write.after}")
        verification = router.verify(target, timeout=verify_timeout)
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


def ready_pods(pods: list[dict[str, Any]]) -> int:
    """Pods that are Ready and not terminating: what the Service's endpoints will hold (pure)."""
    return sum(
        1
        for pod in pods
        if not (pod.get("metadata") or {}).get("deletionTimestamp")
        and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
    )


def _require_available(
    ctx: Context, target: Color, *, force: bool, result: Result, allow_no_endpoints: bool = False
) -> str:
    """Refuse a target that is not fully available, unless forced; returns what a forced switch
    overrode, for the history ("" when nothing was). Force never picks zero ready pods by accident:
    that also needs `allow_no_endpoints`."""
    name = ctx.app.deployment(target)
    dep = ctx.deployment(target)
    if dep is None:
        raise NotFoundError(
            f"Deployment {ctx.app.namespace}/{name} does not exist: only one colour is present",
            remedy=f"Run `bluegreen deploy --image IMAGE` to create {target} first.",
        )
    if fully_available(dep):
        return ""
    selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = ctx.pods(target, selector)
    why = "; ".join(pod_problems(pods)) or rollout_status(dep).message
    if not force:
        raise NotReadyError(
            f"{target} is not ready to take all traffic: {why}",
            remedy="Wait for its rollout (`bluegreen deploy` waits for it), fix the pods, or pass --force.",
        )
    ready = ready_pods(pods)
    if ready == 0 and not allow_no_endpoints:
        raise NotReadyError(
            f"--force would move all traffic to {target}, which has no ready pod ({why}): an outage",
            remedy=f"Scale or fix {name} first; to switch onto no endpoints anyway, add --allow-no-endpoints.",
        )
    result.messages.append(f"--force: switching to {target} although it is not ready ({why})")
    if ready == 0:
        result.messages.append(f"--allow-no-endpoints: {target} has no ready pod; traffic will fail")
        return f"forced onto {target} with no ready pod (--allow-no-endpoints)"
    return f"forced onto {target} with {ready} ready pod(s), not fully available"


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
