"""migrate: run the app's expand, post-switch or contract hook of bluegreen.yaml, in release order.

- `expand` runs before `deploy`: it only adds (a nullable column, a table, a backfill), so the live
  release and the new one both work against its result. A failed expand fails the step: the workflow
  stops before anything is deployed, and a rollback never needs a down migration.
- `post-switch` runs after a verified switch (a feature flag turned on); its failure triggers the
  configured action: `rollback` or `nothing` (reported).
- `contract` removes what only the old release needed. It is refused while the old release can still
  come back (bluegreen/ordering.py decides); `--force` runs it anyway and is recorded.

Every run (refused contracts too) is recorded on the live Service (history.MIGRATIONS) with the release
it belongs to, its duration and outcome. The hook runs under the app's lock: two runs at once do not
migrate twice at the same moment, and no switch or rollback moves traffic while contract runs.
Hooks must be safe to run again (`ADD COLUMN IF NOT EXISTS`): a re-run of the step runs them again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bluegreen import history, hooks, ordering
from bluegreen.config import Config, HookConfig, format_duration
from bluegreen.errors import RefusedError, UsageError
from bluegreen.model import Color, Result
from bluegreen.phases import switch
from bluegreen.phases.context import Context

HOOK_NAMES = ("expand", "contract", "post-switch")


def hook_for(config: Config, name: str) -> HookConfig:
    """The hook `name` of bluegreen.yaml; UsageError (before the cluster is asked) when it has none."""
    hook = config.migrations.hook(name)
    if hook is None:
        where = str(config.path) if config.path else "bluegreen.yaml (not found)"
        raise UsageError(
            f"{where} has no migrations.{name} hook",
            remedy=f"Add migrations.{name} with a `command` or a `job` (docs/data-safety.md), or pass --config.",
        )
    return hook


def contract_state(ctx: Context, live: Color | None, window: float) -> ordering.ContractState:
    annotations = ctx.history_annotations()
    entries = history.parse(annotations)
    newest = entries[0] if entries else {}
    previous = live.other if live else Color.BLUE
    dep = ctx.deployment(previous) if live else None
    selector = (((dep or {}).get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = ctx.pods(previous, selector) if dep is not None else []
    when = newest.get("time")
    return ordering.ContractState(
        app=ctx.app.name,
        live=str(live) if live else None,
        previous_deployment=ctx.app.deployment(previous),
        previous_replicas=None if dep is None else int((dep.get("spec") or {}).get("replicas", 1)),
        previous_pods=len(pods),
        switching=annotations.get(history.SWITCHING_TO) or None,
        last_action=newest.get("action"),
        last_switch=datetime.fromisoformat(when) if isinstance(when, str) else None,
        window=window,
        now=datetime.now(UTC),
    )


def run(
    ctx: Context, config: Config, *, name: str, release: str = "", force: bool = False, reason: str = ""
) -> Result:
    hook = hook_for(config, name)  # first: a missing hook is refused before the cluster is asked
    _, state = switch.read_route(ctx)
    live = state.active
    result = Result(
        phase=name, result="migrated", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.active_color = str(live) if live else None
    with ctx.lock():
        forced = ""
        if name == "contract":
            live = switch.read_route(ctx)[1].active  # again under the lock: traffic may have moved
            result.active_color = str(live) if live else None
            decision = ordering.contract(contract_state(ctx, live, config.migrations.contract_after))
            if not decision.allowed and not force:
                _record(ctx, hook, release, outcome="refused", seconds=0.0, reason=decision.why)
                raise RefusedError(f"contract refused: {decision.why}", remedy=decision.remedy)
            if not decision.allowed:
                forced = decision.why
                ctx.reporter.warning(f"contract forced although {decision.why}")
        if ctx.dry_run:
            result.result = "planned"
            result.messages.append(f"a real run would run the {name} hook ({_shown(hook)})")
            return result
        # `color`: the colour the release runs on, or will (expand: the idle one deploy fills).
        color = str(live.other if name == "expand" and live else live) if live else ""
        ran = execute(ctx, hook, color=color, release=release, forced=forced, reason=reason)
    return _finish(result, ran, forced)


def execute(
    ctx: Context, hook: HookConfig, *, color: str, release: str, forced: str = "", reason: str = ""
) -> hooks.HookRun:
    """Run `hook`, then record the run in the history and as an Event."""
    ctx.reporter.progress(f"{hook.name}: running {_shown(hook)} (timeout {format_duration(hook.timeout)})")
    ran = hooks.run(hook, app=ctx.app, color=color, release=release, kube=ctx.kube, reporter=ctx.reporter)
    _record(
        ctx,
        hook,
        release,
        outcome=ran.outcome,
        seconds=ran.seconds,
        reason=ran.reason,
        target=ran.target,
        exit_code=ran.exit_code,
        forced=forced,
        why=reason,
    )
    return ran


def _record(
    ctx: Context,
    hook: HookConfig,
    release: str,
    *,
    outcome: str,
    seconds: float,
    reason: str,
    target: str = "",
    exit_code: int | None = None,
    forced: str = "",
    why: str = "",
) -> None:
    if ctx.dry_run:
        return  # a dry run writes nothing, its record neither
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "hook": hook.name,
        "release": release,
        "kind": hook.kind,
        "target": target or _shown(hook),
        "outcome": outcome,
        "seconds": round(seconds, 3),
        "exit_code": exit_code,
        "reason": history.bounded_reason(reason),
        "run_id": ctx.run.run_id,
        "run_url": ctx.run.run_url,
        "actor": ctx.run.actor,
        "correlation_id": ctx.run.correlation_id,
    }
    if forced:
        entry["forced"] = history.bounded_reason(forced)
        entry["why"] = history.bounded_reason(why)
    try:
        history.record_migration(ctx.kube, ctx.app, entry)
    except history.NotRecorded as error:
        ctx.reporter.warning(f"the {hook.name} run was not recorded in the history: {error}")
    note = f"{hook.name} hook {outcome} in {seconds:.1f}s" + (f" for release {release}" if release else "")
    note += f": {reason}" if reason else ""
    note += f" (forced although {forced})" if forced else ""
    try:
        history.event(
            ctx.kube,
            ctx.app,
            reason=f"Migration{outcome.title().replace('-', '')}",
            note=note,
            warning=outcome != "succeeded",
        )
    except Exception as error:  # an Event is a courtesy: the history above is the record
        ctx.reporter.warning(f"no Event for the {hook.name} run: {error}")


def _finish(result: Result, ran: hooks.HookRun, forced: str) -> Result:
    result.mark(f"{ran.hook}: {ran.outcome}")
    result.details["migration"] = {
        "hook": ran.hook,
        "kind": ran.kind,
        "target": ran.target,
        "outcome": ran.outcome,
        "seconds": round(ran.seconds, 3),
        "exit_code": ran.exit_code,
        "reason": ran.reason,
        "forced": forced,
    }
    if ran.ok:
        result.messages.append(f"{ran.hook} hook succeeded in {ran.seconds:.1f}s ({ran.target})")
    else:
        result.result = "error" if ran.outcome == "error" else "failed"
        result.messages.append(f"{ran.hook} hook {ran.outcome} after {ran.seconds:.1f}s: {ran.reason}")
        if ran.hook == "expand":
            result.messages.append("nothing was deployed: fix the migration and run the release again")
    if ran.output:
        result.details["output"] = ran.output
        result.messages.append("output (tail):\n" + ran.output)
    return result


def post_switch(ctx: Context, config: Config, switched: Result, *, rollback_reason: str = "") -> Result:
    """After a verified switch: run the post-switch hook if bluegreen.yaml has one. A failure is
    reported, and rolls back when the hook says `on-failure: rollback`."""
    hook = config.migrations.post_switch
    if hook is None or switched.result != "switched" or switched.dry_run:
        return switched
    release = switched.candidate or ""
    with ctx.lock():
        ran = execute(ctx, hook, color=switched.active_color or "", release=release)
    switched.details["migration"] = {
        "hook": ran.hook,
        "outcome": ran.outcome,
        "seconds": round(ran.seconds, 3),
        "reason": ran.reason,
    }
    switched.mark(f"post-switch: {ran.outcome}")
    if ran.ok:
        switched.messages.append(f"post-switch hook succeeded in {ran.seconds:.1f}s")
        return switched
    problem = f"post-switch hook {ran.outcome}: {ran.reason}"
    ctx.reporter.warning(problem)
    if hook.on_failure != "rollback":
        switched.messages.append(problem + " (on-failure: nothing; the switch stands)")
        return switched
    from bluegreen.phases import rollback

    rolled = rollback.run(ctx, reason=rollback_reason or f"rollback: {problem}")
    rolled.phase = "switch"
    rolled.result = "rolled-back" if rolled.result in ("rolled-back", "switched") else rolled.result
    rolled.messages.insert(0, problem + " (on-failure: rollback)")
    rolled.details["migration"] = switched.details["migration"]
    return rolled


def _shown(hook: HookConfig) -> str:
    if hook.job:
        return "a Job"
    return " ".join(hook.command[:1]) + (" ..." if len(hook.command) > 1 else "")
