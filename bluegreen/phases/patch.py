"""patch: the idle colour (the rollback target) re-deployed with patched images; traffic not moved.

A security fix must reach both colours. The live one gets it by the next release; without this phase
the idle one would keep the unpatched images until it is overwritten, and a rollback would bring
them back. `patch` changes only the images of the idle colour's pod template (same release: each
image keeps its repository), in one write guarded by the resourceVersion read, waits for the
rollout, and records the patch: a stamp on the Deployment in that same write (bluegreen/
patching.py), an entry with action "patch" in the patch history on the live Service, and an Event.
It never writes the router's object, so traffic stays where it is; a later `rollback` goes to the
patched pods.

Refused (exit 1, nothing written) when the idle colour is no rollback target: a candidate never
promoted (deploy it again with the patched images instead) or a release rolled back from. The same
images again is a no-op; a re-run after a patch whose history entry was lost (SIGTERM) records it.
"""

from __future__ import annotations

import copy
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from bluegreen import history, intent, patching, routers, telemetry
from bluegreen.errors import RolloutError
from bluegreen.kube import call
from bluegreen.model import Color, Result
from bluegreen.phases import deploy
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of, rollout_status


@telemetry.traced("patch")
def run(
    ctx: Context,
    *,
    image: str | None = None,
    set_images: dict[str, str] | None = None,
    reason: str = "",
    timeout: float | None = None,
    keep_failed: bool = False,
) -> Result:
    set_images = set_images or {}
    deploy.check_images(image, set_images)  # usage errors before anything touches the cluster
    live, found, deployments = _plan(ctx, image, set_images)
    result = Result(
        phase="patch", result="patched", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    if not found.changed:
        return _unchanged(ctx, result, live, found, deployments, timeout)
    if ctx.dry_run:
        _describe(ctx, result, live, found, deployments)
        idle = deployments[found.color] or {}
        _write(
            ctx,
            _desired(ctx, deployments, found, _entry(ctx, live, found, reason, deployments[found.color])),
            idle,
            found.color,
            dry_run=True,
        )
        result.result = "planned"
        result.messages.append(
            "dry run: the apiserver validated the change (dryRun=All); nothing was changed"
        )
        return result
    with ctx.lock():
        result.mark("lock taken")
        # Read again under the lock: a switch, deploy or patch that ran meanwhile changes the answer.
        live, found, deployments = _plan(ctx, image, set_images)
        if not found.changed:
            return _unchanged(ctx, result, live, found, deployments, timeout)
        _describe(ctx, result, live, found, deployments)
        entry = _entry(ctx, live, found, reason, deployments[found.color])
        before = deployments[found.color]
        assert before is not None  # patching.plan refuses a missing idle colour
        stored = _write(ctx, _desired(ctx, deployments, found, entry), before, found.color, dry_run=False)
        entry = _fix_stamp(ctx, stored, entry)
        result.mark(f"patched {ctx.app.deployment(found.color)}")
        try:
            ctx.wait_rollout(found.color, timeout=timeout or ctx.timeout)
        except RolloutError as failed:
            if not keep_failed:
                deploy._restore(ctx, found.color, before, failed)
            raise
        result.mark(f"{found.color} rolled out")
        _record(ctx, result, entry, live)
    replicas = (before.get("spec") or {}).get("replicas", 1)
    retired = (
        " (retired, 0 replicas: a rollback scales it up with the patched images)" if replicas == 0 else ""
    )
    result.messages.append(
        f"{found.color} (the rollback target) runs {', '.join(images_of(found.template))}{retired}; "
        f"traffic still on {live}"
    )
    return result


def _plan(
    ctx: Context, image: str | None, set_images: dict[str, str]
) -> tuple[Color, patching.Plan, dict[Color, dict[str, Any] | None]]:
    """Where traffic is, and the patch of the other colour (patching.plan refuses what it must)."""
    live_service = ctx.service()  # a missing namespace or app fails here, with its own message
    state = routers.make(ctx.router_name(live_service), ctx.app, ctx.kube).read()
    if state.active is None:
        raise deploy.split_route(state.detail, "patch would not know which colour is the rollback target")
    deployments = {c: ctx.deployment(c) for c in Color}
    found = patching.plan(
        state.active, deployments, image=image, set_images=set_images, color_label=ctx.app.color_label
    )
    return state.active, found, deployments


def _describe(
    ctx: Context,
    result: Result,
    live: Color,
    found: patching.Plan,
    deployments: dict[Color, dict[str, Any] | None],
) -> None:
    result.active_color = str(live)
    result.previous_color = ctx.history_annotations().get(history.PREVIOUS)
    live_dep = deployments[live] or {}
    result.images = {
        str(live): images_of((live_dep.get("spec") or {}).get("template") or {}),
        str(found.color): images_of(found.template),
    }
    result.details["patch"] = {
        "color": str(found.color),
        "changed": {name: {"from": a, "to": b} for name, (a, b) in found.changed.items()},
        "release": found.release.hash,
        "deploy_seq": found.release.seq,
    }
    shown = ", ".join(f"{name} {a} -> {b}" for name, (a, b) in sorted(found.changed.items()))
    result.changes.append(f"update Deployment {ctx.app.deployment(found.color)}: {shown}")


def _entry(
    ctx: Context, live: Color, found: patching.Plan, reason: str, idle: dict[str, Any] | None
) -> dict[str, Any]:
    """The history entry of this patch; also stamped on the Deployment, with the template's hash."""
    new = history.entry(
        from_color=str(found.color),
        to_color=str(found.color),
        images={str(found.color): images_of(found.template)},
        run=ctx.run,
        reason=reason or "patch of the rollback target",
        action="patch",
        timings={},
        extra={
            "live": str(live),
            "changed": {name: [a, b] for name, (a, b) in found.changed.items()},
            "deploy_seq": found.release.seq,
        },
    )
    new["hash"] = intent.template_hash(found.template, ctx.app.color_label)
    # The release as deployed (and as earlier patches left it): a re-run of its deploy is this patch.
    before = patching.released_as(idle, ctx.app.color_label)
    new["released_as"] = list(dict.fromkeys([*before, found.release.hash]))
    return new


def _desired(
    ctx: Context,
    deployments: dict[Color, dict[str, Any] | None],
    found: patching.Plan,
    entry: dict[str, Any],
) -> dict[str, Any]:
    """The idle Deployment as read, with the patched template, its candidate record describing it
    (the same release) and the patch stamp; its resourceVersion guards the write."""
    desired = copy.deepcopy(deployments[found.color] or {})
    desired.pop("status", None)
    desired["spec"]["template"] = found.template
    annotations = desired["metadata"].setdefault("annotations", {}) or {}
    if found.release.candidate is not None:
        annotations[intent.CANDIDATE] = intent.encode(
            patching.patched_candidate(found.release.candidate, entry["hash"], images_of(found.template))
        )
    annotations[patching.PATCHED] = patching.encode(entry)
    desired["metadata"]["annotations"] = annotations
    return desired


def _write(
    ctx: Context, desired: dict[str, Any], before: dict[str, Any], color: Color, *, dry_run: bool
) -> dict[str, Any]:
    """deploy's write: a whole replace guarded by the resourceVersion read (retried only when the
    Deployment's status alone moved on), so a concurrent edit is a conflict, never a lost update."""
    if dry_run:
        return deploy._write(ctx, desired, create=False, dry_run=True)
    return deploy._write_settled(ctx, desired, before, color)


def _fix_stamp(ctx: Context, stored: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The stamp and candidate describe the template as stored: if the apiserver's defaulting changed
    what was sent, correct them (guarded: a later write wins)."""
    stored_hash = intent.template_hash(stored["spec"]["template"], ctx.app.color_label)
    if stored_hash == entry["hash"]:
        return entry
    entry = {**entry, "hash": stored_hash}
    annotations = (stored.get("metadata") or {}).get("annotations") or {}
    fixed = {patching.PATCHED: patching.encode(entry)}
    candidate = intent.stamp(annotations, intent.CANDIDATE)
    if candidate is not None:
        fixed[intent.CANDIDATE] = intent.encode({**candidate, "hash": stored_hash, "sent": stored_hash})
    name = stored["metadata"]["name"]
    patch = {"metadata": {"resourceVersion": stored["metadata"]["resourceVersion"], "annotations": fixed}}
    call(
        f"recording the patch on Deployment {ctx.app.namespace}/{name}",
        lambda: ctx.kube.patch(
            Deployment, name, patch, namespace=ctx.app.namespace, patch_type=PatchType.MERGE
        ),
        idempotent=False,
    )
    return entry


def _record(ctx: Context, result: Result, entry: dict[str, Any], live: Color) -> None:
    """The patch in the patch history and an Event on the live Service; a history that could not be
    written is a warning (the patch itself stands, and a re-run records it)."""
    try:
        history.record_patch(ctx.kube, ctx.app, entry)
    except history.NotRecorded as error:
        ctx.reporter.warning(str(error))
        result.messages.append(f"warning: {error}; running `bluegreen patch` again records it")
    else:
        result.changes.append(f"recorded the patch of {entry['to']} in the history")
    changed = ", ".join(f"{name} {a} -> {b}" for name, (a, b) in sorted(entry["changed"].items()))
    by = f" ({ctx.run.holder})" if ctx.run.run_id or ctx.run.actor else ""
    why = f": {entry['reason']}" if entry.get("reason") else ""
    why += f" [correlation {ctx.run.correlation_id}]" if ctx.run.correlation_id else ""
    history.event(
        ctx.kube,
        ctx.app,
        reason="Patched",
        note=f"Patched {ctx.app.deployment(Color.parse(entry['to']))}, the rollback target, with {changed}; "
        f"traffic stays on {live}{by}{why}",
    )
    result.details["history"] = history.patches(ctx.history_annotations())


def _unchanged(
    ctx: Context,
    result: Result,
    live: Color,
    found: patching.Plan,
    deployments: dict[Color, dict[str, Any] | None],
    timeout: float | None,
) -> Result:
    """The idle colour already runs these images: nothing to write. A patch of it whose record was
    lost (cancelled between the write and the history) is recorded, and its rollout waited for."""
    _describe(ctx, result, live, found, deployments)
    result.changes.clear()
    result.result = "noop"
    dep = deployments[found.color] or {}
    result.messages.append(
        f"{found.color} already runs {', '.join(images_of(found.template))}: nothing to patch; traffic on {live}"
    )
    stamp = patching.last_patched(dep, ctx.app.color_label)
    recorded = {e.get("id") for e in history.patches(ctx.history_annotations())}
    missing = stamp is not None and stamp.get("id") not in recorded
    if ctx.dry_run:
        if missing:
            result.changes.append(f"record the patch of {found.color} made at {stamp and stamp.get('time')}")
        return result
    if not rollout_status(dep).done:
        ctx.wait_rollout(found.color, timeout=timeout or ctx.timeout)
        result.mark(f"{found.color} rolled out")
    if missing and stamp is not None:
        with ctx.lock():
            _record(ctx, result, stamp, live)
        result.messages.append(
            f"recorded the patch made at {stamp.get('time')}, whose history entry was missing"
        )
    else:
        result.details["history"] = history.patches(ctx.history_annotations())
    return result
