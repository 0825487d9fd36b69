"""retire: scale the idle colour to zero once the safety window after the last switch has passed,
then wait until its pods are gone (the drain) and say how long that took and whether any was killed."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from bluegreen import history, routers
from bluegreen.errors import NotFoundError, RefusedError
from bluegreen.kube import call, delete_json
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context


def seconds_left(last_switch: str | None, after: float, now: datetime) -> float:
    """How long until the window after the last switch closes (pure); 0 when none is recorded."""
    if not last_switch:
        return 0.0
    switched = datetime.fromisoformat(last_switch)
    return max(0.0, after - (now - switched).total_seconds())


# A pod still there this long after its deletionTimestamp (the grace deadline) was killed, not drained:
# kubelet sends SIGKILL at the deadline, then reports and deletes the pod within a moment.
KILL_SLACK = 1.0


@dataclass
class Drain:
    """How the retired colour's pods went away."""

    pods: int
    seconds: float = 0.0
    killed: list[str] = field(default_factory=list)  # still running at their grace deadline
    left: list[str] = field(default_factory=list)  # still there when the wait ended
    interrupted: str = ""  # why the wait stopped early (the colour was scaled up again)

    def message(self, name: str) -> str:
        if self.interrupted:
            return f"drain of {name} not awaited: {self.interrupted}"
        head = f"drained {name}: {self.pods} pod{'s' if self.pods != 1 else ''} gone in {self.seconds:.1f}s"
        if self.left:
            head = (
                f"{name}: {len(self.left)} of {self.pods} pods still terminating after {self.seconds:.0f}s "
                f"({', '.join(sorted(self.left))})"
            )
        if self.killed:
            head += (
                f"; {len(self.killed)} killed at the grace deadline ({', '.join(sorted(self.killed))}): "
                "requests still in flight were cut. Raise terminationGracePeriodSeconds above the preStop "
                "sleep plus the longest request (docs/real-pods.md)"
            )
        return head

    def to_dict(self) -> dict[str, Any]:
        return {
            "pods": self.pods,
            "seconds": round(self.seconds, 3),
            "killed": sorted(self.killed),
            "left": sorted(self.left),
            "interrupted": self.interrupted,
        }


def killed_at_deadline(pod: dict[str, Any], now: datetime) -> bool:
    """Whether a terminating pod outlived its grace deadline, or a container ended by SIGKILL (pure)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") == 137:
            return True
    deadline = meta.get("deletionTimestamp")
    if not deadline:
        return False
    return now > datetime.fromisoformat(str(deadline).replace("Z", "+00:00")) + timedelta(seconds=KILL_SLACK)


def wait_drained(ctx: Context, color: Color, selector: dict[str, str], *, timeout: float) -> Drain:
    """Wait until the pods `color` had when it was scaled to zero are gone, or `timeout`.

    Stops early when the colour is scaled up again (a rollback meanwhile): its new pods are not a drain."""
    start = time.monotonic()
    waiting = {p["metadata"]["uid"]: p["metadata"]["name"] for p in ctx.pods(color, selector)}
    drain = Drain(pods=len(waiting))
    last_note = 0.0
    while waiting:
        now = datetime.now(UTC)
        present = {p["metadata"]["uid"]: p for p in ctx.pods(color, selector)}
        for uid, name in list(waiting.items()):
            pod = present.get(uid)
            if pod is None:
                del waiting[uid]
            elif killed_at_deadline(pod, now) and name not in drain.killed:
                drain.killed.append(name)
        drain.seconds = time.monotonic() - start
        if not waiting:
            break
        dep = ctx.deployment(color)
        if dep is not None and (dep.get("spec") or {}).get("replicas", 1) > 0:
            drain.interrupted = f"{ctx.app.deployment(color)} was scaled up again meanwhile"
            break
        if drain.seconds >= timeout:
            drain.left = sorted(waiting.values())
            break
        if drain.seconds - last_note >= 3.0:
            ctx.reporter.progress(f"draining {color}: {len(waiting)} of {drain.pods} pods still terminating")
            last_note = drain.seconds
        time.sleep(0.2)
    return drain


def run(ctx: Context, *, after: float = 0.0) -> Result:
    live_service = ctx.service()  # a missing namespace or app fails here, with its own message
    router = routers.make(ctx.router_name(live_service), ctx.app, ctx.kube)
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
        if clean_config(ctx, result):
            result.result = "retired"
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
    if not ctx.dry_run:
        # Outside the lock: a rollback during the drain must stay possible (it ends the wait).
        selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        drain = wait_drained(ctx, idle, selector, timeout=ctx.timeout)
        result.mark(f"drained: {idle}")
        result.details["drain"] = drain.to_dict()
        result.messages.append(drain.message(name))
        if drain.killed or drain.left:
            ctx.reporter.warning(drain.message(name))
    clean_config(ctx, result)
    if ctx.dry_run:
        result.result = "planned"
        if wait:
            result.messages.append(f"a real run would first wait {wait:.0f}s for the safety window")
    return result


def unreferenced(
    copies: dict[tuple[str, str], str], templates: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """The config copies (deploy -f) that no colour's pod template references any more (pure)."""
    from bluegreen import manifests

    used = set().union(*(manifests.references(t) for t in templates)) if templates else set()
    return sorted(key for key in copies if key not in used)


def clean_config(ctx: Context, result: Result) -> int:
    """Delete the config copies neither colour references (a retired colour's template still counts:
    a rollback to it needs them). Decided again under the lock, so a deploy creating copies for its
    new template is never raced. How many were (or, dry run, would be) deleted."""
    if not unreferenced(ctx.config_copies(), _templates(ctx)):
        return 0  # nothing to delete: no lock, no write
    with ctx.lock():
        stale = unreferenced(ctx.config_copies(), _templates(ctx))
        for kind, name in stale:
            plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
            with contextlib.suppress(NotFoundError):  # already gone: what we wanted
                call(
                    f"deleting {kind} {ctx.app.namespace}/{name}",
                    lambda plural=plural, name=name: delete_json(  # type: ignore[misc]
                        ctx.kube,
                        f"/api/v1/namespaces/{ctx.app.namespace}/{plural}/{name}",
                        dry_run=ctx.dry_run,
                    ),
                    idempotent=False,
                )
            result.changes.append(f"delete {kind} {name}: no colour references it")
    if stale:
        result.messages.append(
            f"{'would delete' if ctx.dry_run else 'deleted'} {len(stale)} config "
            f"cop{'ies' if len(stale) != 1 else 'y'} no colour references"
        )
    return len(stale)


def _templates(ctx: Context) -> list[dict[str, Any]]:
    out = []
    for color in Color:
        dep = ctx.deployment(color)
        if dep is not None:
            out.append(dep["spec"]["template"])
    return out
