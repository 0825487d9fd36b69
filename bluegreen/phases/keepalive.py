"""After a switch, the old colour's keep-alive connections: the app's drain hook, and how much traffic
still reaches the old colour (Prometheus).

A selector switch moves new connections only; HTTP/1.1 keep-alive and gRPC clients stay on the old
colour until they reconnect. With `drain` in bluegreen.yaml, a verified switch (or rollback) calls the
app's drain endpoint on each pod of the colour it left, through the apiserver's pod proxy; the app then
answers `Connection: close`, and its clients reconnect to the new colour. A pod that does not answer
is a warning, never a failed switch: traffic has moved, only some clients are late. The decisions
(which pods, what the outcome says, whether the old traffic lingers) are bluegreen/drain.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2

from bluegreen import cancel, drain
from bluegreen.checks import _apiserver
from bluegreen.checks.prometheus import PrometheusCheck, QueryError
from bluegreen.config import Config, DrainConfig, PrometheusCheckConfig, render
from bluegreen.errors import BlueGreenError
from bluegreen.model import AppSpec, Color, Result
from bluegreen.phases.context import Context

MOVED = ("switched", "rolled-back")
POLL = 5.0  # seconds between reads of the old colour's request rate while it drains


def after_switch(ctx: Context, config: Config, result: Result) -> Result:
    """Call the drain hook on the colour `result` moved traffic away from; recorded in the result."""
    hook = config.drain
    if hook is None or ctx.dry_run or result.result not in MOVED:
        return result
    if not result.previous_color or result.previous_color == result.active_color:
        return result
    old = Color(result.previous_color)
    try:
        outcome = run_hook(ctx, hook, old)
    except BlueGreenError as error:  # the pods could not be listed: say so, the switch stands
        outcome = drain.HookOutcome(str(old), (), (("(pods)", str(error)),))
    result.details["drain_hook"] = outcome.to_dict()
    result.messages.append(outcome.message())
    result.mark(f"drain hook: {len(outcome.drained)} drained, {len(outcome.failed)} failed")
    if not outcome.ok:
        ctx.reporter.warning(outcome.message())
    return result


def run_hook(ctx: Context, hook: DrainConfig, color: Color) -> drain.HookOutcome:
    """One call of the drain endpoint on each running pod of `color`."""
    deployment = ctx.deployment(color) or {}
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    names = drain.drainable(ctx.pods(color, selector)) if selector else []
    drained: list[str] = []
    failed: list[tuple[str, str]] = []
    with _apiserver(ctx.kube) as client:
        for name in names:
            path = drain.hook_path(ctx.app.namespace, name, hook.port, hook.path)
            try:
                response = client.request(hook.method, path, timeout=hook.timeout)
            except httpx2.HTTPError as error:
                failed.append((name, f"{type(error).__name__}: {error}"))
                continue
            if response.is_success:
                drained.append(name)
            else:
                failed.append((name, f"HTTP {response.status_code} {response.text[:120].strip()}"))
    return drain.HookOutcome(str(color), tuple(drained), tuple(failed))


def old_traffic(
    config: Config, app: AppSpec, old: Color, switched_at: float, progress: Callable[[str], None]
) -> drain.OldTraffic | str:
    """Read the old colour's request rate until it is zero or `within` has passed since the switch;
    the last judgement, or why it could not be read."""
    hook = config.drain
    assert hook is not None and hook.old_traffic is not None
    o = hook.old_traffic
    promql = render(o.query, {"color": str(old), "namespace": app.namespace, "app": app.name})
    prometheus = PrometheusCheck(
        PrometheusCheckConfig(name="old-traffic", url=o.url, query=promql, timeout=o.timeout)
    )
    try:
        while True:
            try:
                series = prometheus.series(promql)
            except QueryError as error:
                return f"old traffic: cannot read {old}'s request rate: {error}"
            judged = drain.old_traffic(series, elapsed=time.time() - switched_at, within=o.within)
            if judged.state != "draining":
                return judged
            progress(judged.message(str(old)))
            cancel.sleep(min(POLL, max(0.05, switched_at + o.within - time.time())))
    finally:
        prometheus.close()
