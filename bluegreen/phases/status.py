"""status: what runs where, read from the cluster alone."""

from __future__ import annotations

from typing import Any

from bluegreen import driftread, gitops, history, intent, patching, routers
from bluegreen.errors import ClusterError
from bluegreen.lock import current_holder
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of, rollout_status


def run(ctx: Context) -> Result:
    live_service = ctx.service()  # a missing namespace or app fails here, with its own message
    state = routers.make(ctx.router_name(live_service), ctx.app, ctx.kube).read()
    annotations = ctx.history_annotations()
    result = Result(phase="status", result="status", app=ctx.app.name, namespace=ctx.app.namespace)
    result.active_color = str(state.active) if state.active else None
    result.previous_color = annotations.get(history.PREVIOUS)
    colors: dict[str, dict[str, Any]] = {}
    stored = {color: ctx.deployment(color) for color in Color}
    for color in Color:
        dep = stored[color]
        if dep is None:
            colors[str(color)] = {"deployment": None}
            continue
        rollout = rollout_status(dep)
        images = images_of(dep["spec"]["template"])
        release = intent.Release.of(color, dep, ctx.app.color_label)
        result.images[str(color)] = images
        colors[str(color)] = {
            "deployment": ctx.app.deployment(color),
            "images": images,
            "replicas": rollout.desired,
            "ready": rollout.ready,
            "rolled_out": rollout.done,
            "release": release.hash,
            "deploy_seq": release.seq,
            "gated": (release.gate or {}).get("hash") == release.hash,
            "rejected": release.is_rejected,
            # when its images were last patched in place (`bluegreen patch`); None: not since deployed
            "last_patched": (patching.last_patched(dep, ctx.app.color_label) or {}).get("time"),
        }
    entries = history.parse(annotations)
    # The router is the truth; the history is what bluegreen recorded, and may lag it.
    lag = history.lags(annotations, result.active_color)
    if lag:
        result.messages.append(f"the history lags the router: {lag}; the next switch or rollback records it")
    if state.active is None:
        result.messages.append(
            f"traffic is split or on no single colour ({state.detail}): `bluegreen switch --to COLOUR` settles it"
        )
    newest = max(colors.items(), key=lambda item: item[1].get("deploy_seq") or 0)
    if newest[1].get("deploy_seq"):
        result.candidate = newest[1]["release"]
    drifted = _drift(ctx, stored, result.messages)
    managed = _gitops(ctx, live_service, stored, result.messages)
    result.details = {
        "drift": drifted,
        "gitops": managed,
        "history_lags": lag,
        "router": state.detail,
        "colors": colors,
        "last_switch": entries[0] if entries else None,
        "history": entries,
        "migrations": history.migrations(annotations),
        "patches": history.patches(annotations),
        "lock_holder": current_holder(ctx.kube, ctx.app),
    }
    return result


def _drift(
    ctx: Context, stored: dict[Color, dict[str, Any] | None], messages: list[str]
) -> list[dict[str, Any]] | None:
    """The differences beyond the release, as `diff` judges them (None: not judged), said in
    `messages` field by field. Status still reports the rest when they cannot be read."""
    if any(dep is None for dep in stored.values()):
        return None  # one colour only: nothing to compare
    try:
        judgement = driftread.judged(ctx.kube, ctx.app, stored)
    except ClusterError as error:
        messages.append(f"drift not judged: {error.message}")
        return None
    drifted = judgement.drifted
    if drifted:
        messages.append(f"drift: {judgement.summary()}")
        messages.extend(f.line() for f in drifted)
    return [f.to_dict() for f in drifted]


def _gitops(
    ctx: Context,
    live_service: dict[str, Any],
    stored: dict[Color, dict[str, Any] | None],
    messages: list[str],
) -> dict[str, dict[str, Any]]:
    """Which objects Argo CD or Flux manage, keyed "service" and by colour, said in `messages`: their
    sync writes the selector back after a switch unless told not to (docs/gitops.md)."""
    found: dict[str, dict[str, Any]] = {}
    objects = {
        "service": (live_service, f"Service {ctx.app.service}"),
        **{str(c): (dep, f"Deployment {ctx.app.deployment(c)}") for c, dep in stored.items()},
    }
    for key, (obj, what) in objects.items():
        managed = gitops.detect(obj)
        if managed is not None:
            found[key] = managed.to_dict()
            messages.append(managed.line(what, service=key == "service"))
    return found
