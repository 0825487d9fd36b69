"""status: what runs where, read from the cluster alone."""

from __future__ import annotations

from typing import Any

from bluegreen import history, routers
from bluegreen.lock import current_holder
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of, rollout_status


def run(ctx: Context) -> Result:
    ctx.service()  # a missing namespace or app fails here, with its own message
    state = routers.make(ctx.router, ctx.app, ctx.kube).read()
    annotations = ctx.history_annotations()
    result = Result(phase="status", result="status", app=ctx.app.name, namespace=ctx.app.namespace)
    result.active_color = str(state.active) if state.active else None
    result.previous_color = annotations.get(history.PREVIOUS)
    colors: dict[str, dict[str, Any]] = {}
    for color in Color:
        dep = ctx.deployment(color)
        if dep is None:
            colors[str(color)] = {"deployment": None}
            continue
        rollout = rollout_status(dep)
        images = images_of(dep["spec"]["template"])
        result.images[str(color)] = images
        colors[str(color)] = {
            "deployment": ctx.app.deployment(color),
            "images": images,
            "replicas": rollout.desired,
            "ready": rollout.ready,
            "rolled_out": rollout.done,
        }
    entries = history.parse(annotations)
    result.details = {
        "router": state.detail,
        "colors": colors,
        "last_switch": entries[0] if entries else None,
        "history": entries,
        "lock_holder": current_holder(ctx.kube, ctx.app),
    }
    return result
