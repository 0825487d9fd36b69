"""release: the phases in a row, as one command: [expand,] deploy, gate, switch, [post-switch,] watch.

The migration hooks of bluegreen.yaml run where a release of separate steps runs them: expand before
deploy (a failed expand deploys nothing), post-switch after a verified switch. Contract never runs
here: it waits for retire, after the rollback window (`bluegreen migrate contract`).

Each phase returns early: a failed deploy never reaches the gate, a gate that does not pass never
switches (the new colour keeps running for inspection), a watch that spends its budget rolls back.
"""

from __future__ import annotations

from bluegreen.config import Config
from bluegreen.manifests import Manifests
from bluegreen.model import Result
from bluegreen.phases import checked, deploy, keepalive, migrate, switch, watch
from bluegreen.phases.context import Context


def run(
    ctx: Context,
    config: Config,
    *,
    image: str | None = None,
    set_images: dict[str, str] | None = None,
    manifests: Manifests | None = None,
    keep_failed: bool = False,
    copy_cluster_config: bool = False,
) -> Result:
    steps: list[Result] = []
    if config.migrations.expand is not None:
        ctx.reporter.stage("expand")
        release = image or ",".join(f"{c}={i}" for c, i in sorted((set_images or {}).items()))
        expanded = migrate.run(ctx, config, name="expand", release=release)
        steps.append(expanded)
        if expanded.result not in ("migrated", "planned"):
            return _combined(steps)
    ctx.reporter.stage("deploy")
    deployed = deploy.run(
        ctx,
        image=image,
        set_images=set_images,
        keep_failed=keep_failed,
        manifests=manifests,
        copy_cluster_config=copy_cluster_config,
    )
    steps.append(deployed)
    if ctx.dry_run or deployed.result == "noop":  # noop: live already runs this release
        return _combined(steps)
    ctx.reporter.stage("gate")
    gated = checked.gate(ctx, config)
    steps.append(gated)
    if gated.result != "passed":
        return _combined(steps)
    new_images = deployed.images.get(deployed.details.get("idle_color", ""), [])
    ctx.reporter.stage("switch")
    switched = switch.run(
        ctx,
        reason=f"release of {', '.join(new_images)}",
        candidate=deployed.candidate or "",
        baseline=lambda live: watch.measure_baseline(config, ctx.app, live=live, kube=ctx.kube),
    )
    switched = keepalive.after_switch(ctx, config, switched)
    if config.migrations.post_switch is not None:
        ctx.reporter.stage("post-switch")
        switched = migrate.post_switch(ctx, config, switched)
    steps.append(switched)
    if switched.result != "switched":
        return _combined(steps)
    ctx.reporter.stage("watch")
    steps.append(checked.watch(ctx, config))
    return _combined(steps)


def _combined(steps: list[Result]) -> Result:
    """The last phase's outcome, with every phase's timeline, changes, messages and details."""
    last = steps[-1]
    # A release that passed its watch ends where traffic went: switched.
    result = "switched" if last.phase == "watch" and last.result == "passed" else last.result
    out = Result(
        phase="release",
        result=result,
        app=last.app,
        namespace=last.namespace,
        active_color=last.active_color,
        previous_color=last.previous_color,
        dry_run=last.dry_run,
    )
    for step in steps:
        out.images.update(step.images)
        out.timeline += step.timeline
        out.changes += step.changes
        out.messages += step.messages
        out.details.update(step.details)
        out.api_ms = step.api_ms if step.api_ms is not None else out.api_ms
        out.converged_ms = step.converged_ms if step.converged_ms is not None else out.converged_ms
    out.details["phases"] = [{"phase": s.phase, "result": s.result} for s in steps]
    return out
