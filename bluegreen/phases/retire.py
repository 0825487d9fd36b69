"""retire: scale the idle colour to zero once the safety window after the last switch has passed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from bluegreen import history, routers
from bluegreen.errors import RefusedError
from bluegreen.kube import call
from bluegreen.model import Result
from bluegreen.phases.context import Context


def seconds_left(last_switch: str | None, after: float, now: datetime) -> float:
    """How long until the window after the last switch closes (pure); 0 when none is recorded."""
    if not last_switch:
        return 0.0
    switched = datetime.fromisoformat(last_switch)
    return max(0.0, after - (now - switched).total_seconds())


def run(ctx: Context, *, after: float = 0.0) -> Result:
    ctx.service()  # a missing namespace or app fails here, with its own message
    router = routers.make(ctx.router, ctx.app, ctx.kube)
    state = router.read()
    if state.active is None:
        raise RefusedError("no colour is active", remedy="Run `bluegreen status`.")
    idle = state.active.other
    entries = history.parse(ctx.history_annotations())
    wait = seconds_left(entries[0]["time"] if entries else None, after, datetime.now(UTC))
    result = Result(
        phase="retire", result="retired", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.active_color = str(state.active)
    # The lock is not held while waiting: a rollback in the window must stay possible.
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0 and not ctx.dry_run:
        ctx.reporter.progress(
            f"retiring {idle} in {left:.0f}s (safety window {after:.0f}s after the last switch)"
        )
        time.sleep(min(left, 10.0))
    name = ctx.app.deployment(idle)
    dep = ctx.deployment(idle)
    if dep is None or dep["spec"].get("replicas", 1) == 0:
        result.result = "noop"
        result.messages.append(f"{name} is already scaled to zero (or absent)")
        return result
    with ctx.lock():
        if router.read().active is not state.active:
            raise RefusedError(
                f"traffic moved while waiting: {idle} is live now",
                remedy="Run `bluegreen status` and decide again.",
            )
        patch: dict[str, Any] = {"spec": {"replicas": 0}}
        call(
            f"scaling Deployment {ctx.app.namespace}/{name} to 0",
            lambda: ctx.kube.patch(
                Deployment,
                name,
                patch,
                namespace=ctx.app.namespace,
                patch_type=PatchType.MERGE,
                dry_run=ctx.dry_run,
            ),
            idempotent=False,
        )
    result.changes.append(f"Deployment {name}: replicas {dep['spec'].get('replicas', 1)} -> 0")
    if ctx.dry_run:
        result.result = "planned"
        if wait:
            result.messages.append(f"a real run would first wait {wait:.0f}s for the safety window")
    return result
