"""diff: the two colours side by side; drift (what differs beyond the declared release) is exit 1.

Reads only. The judging is bluegreen/drift.py, the reads bluegreen/driftread.py (the gate's `drift`
check and `status` judge the same way).
"""

from __future__ import annotations

from typing import Any

from bluegreen import driftread
from bluegreen.errors import NotFoundError
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context


def run(ctx: Context) -> Result:
    ctx.service()  # a missing namespace or app fails here, with its own message
    deployments: dict[Color, dict[str, Any] | None] = {c: ctx.deployment(c) for c in Color}
    judgement = driftread.judged(ctx.kube, ctx.app, deployments)

    result = Result(phase="diff", result="clean", app=ctx.app.name, namespace=ctx.app.namespace)
    state_active = None
    try:
        from bluegreen import routers

        state_active = routers.make(ctx.router_name(), ctx.app, ctx.kube).read().active
    except NotFoundError:
        pass
    result.active_color = str(state_active) if state_active else None
    for color, dep in deployments.items():
        template = (dep or {}).get("spec", {}).get("template") or {}
        result.images[str(color)] = [
            c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []
        ]
    drifted = judgement.drifted
    result.result = "drift" if drifted else "clean"
    result.messages.extend(f.line() for f in judgement.findings)
    result.messages.append(judgement.summary())
    result.details = {
        "drift": [f.to_dict() for f in drifted],
        "release": [f.to_dict() for f in judgement.findings if not f.drift],
        "newest": str(judgement.newest) if judgement.newest else None,
    }
    return result
