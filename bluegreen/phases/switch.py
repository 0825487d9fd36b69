"""switch: move all traffic to one colour in one guarded write, verify it took effect, measure it.

Intent, not toggles (bluegreen/intent.py): without --to, switch promotes the candidate deploy
recorded, and when it is already live does nothing, so a re-run never flips traffic back. A release
that was rolled back is refused, and so is a template other than the one its gate judged, unless
--force (which the history records).

Flat, each step returning early: read the router -> take the Lease if it is free (else read it) ->
decide the target -> check the target is fully available -> hold the lock -> read again and decide
again (unless the Lease was taken before the decision's reads, or from the read before them: no other
run held it since, Lock.undisturbed) and write (a 409 is re-read and re-decided, never retried
blindly) -> verify -> record. The preview Service is not written: it follows the candidate
(bluegreen/preview.py), so after a switch it selects the new live colour too, and after a rollback
the rejected release.

The Service router moves traffic and records it in one write (selector, active and previous colour,
the new history entry). Other routers record the intent on the live Service first, then write their
object, then record the switch; `status`, `switch` and `rollback` reconcile a history that lags.

The live colour's Prometheus baseline for the watch is measured before the lock (a slow Prometheus
holds up nobody) and travels in the switch's history entry. Under the lock the target's readiness is
checked again before the first write, and from that write on the switch's writes are shielded: a
signal stops the run before its first write or after its audit trail, never in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bluegreen import cancel, history, intent, routers, telemetry
from bluegreen.errors import (
    BlueGreenError,
    ConfigError,
    ConflictError,
    NotFoundError,
    NotReadyError,
    RefusedError,
)
from bluegreen.kube import call, patch_json
from bluegreen.lock import current_holder
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context, gives_back_claim
from bluegreen.rollout import fully_available, images_of, pod_problems, rollout_status
from bluegreen.routers.base import Router, RouteState, SwitchWrite, Verification
from bluegreen.routers.service import ServiceRouter

# The --probe's data-plane check (traffic_probe.TrafficCheck): (target colour, when the write returned
# as time.time(), timeout) -> (ms from then until requests were answered by the target alone, or
# None; what it saw).
TrafficCheck = Callable[[str, float, float], tuple[float | None, str]]

CUT_SHORT = "verification cut short: the run was cancelled"  # not undone: the signal asked to stop
CONFLICT_RETRIES = 3
OBSERVE_WAIT = 10.0  # seconds a Deployment's controller gets to observe an annotation write
VERIFY_TIMEOUT = 60.0


@telemetry.traced("switch")
@gives_back_claim
def run(
    ctx: Context,
    *,
    to: Color | None = None,
    force: bool = False,
    reason: str = "",
    action: str = "switch",
    verify_timeout: float = VERIFY_TIMEOUT,
    candidate: str = "",
    gate_required: bool = False,
    read: tuple[Router, RouteState] | None = None,
    baseline: Callable[[Color], dict[str, Any]] | None = None,
    allow_no_endpoints: bool = False,
    held: dict[Color, dict[str, Any] | None] | None = None,
    undo: bool = True,
    traffic: TrafficCheck | None = None,
) -> Result:
    """`read`: the router and its state as the caller (rollback) just read them, not read again.
    `held`: the caller holds the Lease already and has just read each colour's Deployment under it
    (rollback): decided on as read, and not read and decided again before the write.
    `undo`: a switch whose verification fails is written back to the colour it left (--no-undo: left
    as it is). `traffic`: the --probe's check that requests through the user's URL moved, which then
    is what "verified" means."""
    router, state = read or read_route(ctx)
    result = Result(
        phase=action, result="noop", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.previous_color = str(state.active) if state.active else None
    result.mark(f"read {router.name}: {state.detail}")
    if isinstance(router, ServiceRouter) and router.managed is not None:
        # Said before the write: its sync may undo it (the verification tells when it does).
        result.details["gitops"] = {"service": router.managed.to_dict()}
        result.messages.append(router.managed.line(f"Service {router.service_name}"))

    seen: dict[Color, intent.Release] = {}
    # Each colour's Deployment as last read: read once before the lock (to decide, check readiness and
    # name the images) and once more under it, each time by decide(), both in one list request
    # (ctx.deployments; issue 14: fewer requests).
    deployments: dict[Color, dict[str, Any] | None] = {}
    given = dict(held or {})  # used by the first decision only: after a 409, everything is read again

    def decide(state: RouteState) -> intent.Decision:
        seen.clear()
        deployments.clear()
        if state.active is None:
            if to is None:
                raise RefusedError(
                    f"traffic is not on one colour ({state.detail}): switch without --to cannot tell which is live",
                    remedy="Settle it: `bluegreen switch --to blue` (or green) moves all traffic to one colour.",
                )
            return intent.Decision(target=to, notes=[f"settling a split route ({state.detail}) on {to}"])
        if all(c in given for c in Color):
            deployments.update({c: given.pop(c) for c in Color})
        else:
            deployments.update(ctx.deployments())
        seen.update(_releases(ctx, deployments))
        return intent.decide(
            state.active,
            seen,
            to=to,
            candidate=candidate,
            force=force,
            gate_required=gate_required,
            rollback=action == "rollback",
        )

    if held is None and not ctx.dry_run:
        # The Lease taken before the Deployments are read, when it is free (one request): what the
        # decision reads is read under it, so not read again (Lock.undisturbed; issue 14). With a
        # Prometheus baseline to measure before the lock, it is read instead, and taken from that read
        # (guarded by its resourceVersion): no other run held it while they were read either. A re-run
        # with nothing to do gives it back (gives_back_claim).
        ctx.peek_lock(take=baseline is None)
    decision = decide(state)
    if decision.target is None:
        return _noop(ctx, router, state, decision, result, deployments)
    target = decision.target

    # A split route settled by --to decided without reading the Deployments: both read here, at once.
    read_now = deployments if all(c in deployments for c in Color) else ctx.deployments()
    forced = _require_available(
        ctx,
        target,
        force=force,
        result=result,
        allow_no_endpoints=allow_no_endpoints,
        read=read_now.get(target),
    )
    if forced:
        reason = f"{reason} [{forced}]" if reason else forced
    images = {str(c): images_of((read_now[c] or {}).get("spec", {}).get("template", {})) for c in Color}
    result.images = images

    if ctx.dry_run:
        _explain(decision, result)
        return _dry_run(ctx, router, target, result)

    # The live colour's numbers for the watch, taken just before its traffic leaves it (not under the
    # lock: a slow Prometheus must not hold up other runs).
    measured = baseline(state.active) if baseline and state.active else None
    # Shielded: a signal stops the run at its next write (cancel.before_write) or cuts the verification
    # short, never between the switch and its record.
    with ctx.lock() as lock, cancel.shield():
        result.mark("lock taken")

        def ready(target: Color) -> None:
            # Again under the lock: while this run waited for it, the target may have changed (a
            # failed deploy's restore still rolling out, another release's deploy). When the
            # decision is not made again (undisturbed), this judges the same read again: no request.
            _require_available(
                ctx,
                target,
                force=force,
                result=None,
                allow_no_endpoints=allow_no_endpoints,
                read=deployments.get(target),  # as decide() read it under the lock, just before
            )
            # The router's own backend (a colour Service with ready endpoints), before its write.
            check = getattr(router, "check_backend", None)
            if check is not None:
                found = check(target, allow_empty=force and allow_no_endpoints)
                if found:
                    result.mark(f"backend: {found}")

        with telemetry.span("switch write", **{"bluegreen.router": router.name}) as span:
            state, decision, write, entry = _write(
                ctx,
                router,
                decide,
                ready,
                action=action,
                reason=reason,
                images=images,
                seen=seen,
                measured=measured,
                state=state,
                # Decided under the Lease already (a caller that held it), or on reads no other run
                # could have changed since (taken from the Lease read before them): not read again.
                decided=decision if held is not None or lock.undisturbed else None,
            )
            telemetry.note(
                span,
                **{
                    "bluegreen.to": str(decision.target) if decision.target else None,
                    "bluegreen.api_ms": write.api_ms,
                    "bluegreen.changed": write.changed,
                },
            )
        _explain(decision, result)
        if decision.target is None or not write.changed:
            return _noop(ctx, router, state, decision, result, deployments)
        target = decision.target
        result.candidate = entry.get("release") or None
        result.mark(f"switched: {write.before} -> {write.after}")
        result.api_ms = write.api_ms
        result.changes.append(f"{router.name}: {write.before} -> {write.after}")
        # From the moment the write was sent, as the router's converged_ms: both planes on one clock.
        sent_at = time.time() - write.api_ms / 1000
        # With --probe, "verified" waits for the probe's requests to reach the target alone, whatever
        # the router: a proxy or mesh in front (ingress, gateway, istio, smi) applies the change after
        # its own delay, and kube-proxy applies the service router's EndpointSlices at most once per its
        # min sync period (1 s), so on a busy node they are verified up to ~1 s before packets move
        # (issue 19). Routers with a data-plane check of their own (dns) report the probe apart.
        through = traffic if getattr(router, "verifies_through_probe", False) else None
        with telemetry.span("switch verify", **{"bluegreen.to": str(target)}) as span:
            if isinstance(router, ServiceRouter):
                router.expect(target, deployments.get(target), deployments.get(target.other))
            verification = _verify(router, target, verify_timeout)
            control_ms = verification.converged_ms
            moved_ms: float | None = None
            if verification.ok and through is not None:
                verification, moved_ms = _verify_traffic(
                    through, verification, target, sent_at, verify_timeout
                )
            # Both, apart: where a proxy or kube-proxy lags the control plane, the gap shows.
            result.details["verification"] = planes(
                control_ms, moved_ms, probe=through is not None, reported_apart=traffic is not None
            )
            telemetry.note(
                span,
                **{
                    "bluegreen.converged_ms": verification.converged_ms,
                    "bluegreen.verified": verification.ok,
                },
            )
        result.converged_ms = verification.converged_ms
        result.mark(
            f"verified: {verification.message}"
            if verification.ok
            else f"not verified: {verification.message}"
        )
        result.messages.append(verification.message)
        result.messages.extend(f"not verified: {item}" for item in verification.unverified)
        if verification.data_plane is not None:  # the dns router's own: the authoritative server asked
            result.details["data_plane"] = verification.data_plane
            if verification.data_plane.get("checked"):
                result.details["verification"]["data_plane"] = "dns"
                result.details["verification"]["data_plane_ms"] = verification.data_plane.get("data_plane_ms")
            else:
                result.details["verification"]["data_plane"] = "not checked (no --dns-server)"
        if (
            not verification.ok
            and undo
            and action == "switch"  # a rollback that fails to verify is not undone onto the rejected colour
            and verification.message != CUT_SHORT
            and not verification.reverted_to  # written back already, by someone else
            and state.active is not None
            # Not the service router: its switch and record are one write, and its EndpointSlices
            # (checked first) list the target's ready pods, which the switch's readiness check has just
            # seen. When only its --probe failed, the cluster routes to the target already; what did
            # not follow is the probe's own path (a load balancer, or a URL not behind this Service),
            # which a write back would not mend either: left in place, reported not verified (exit 1)
            # with the command that moves it back.
            and not isinstance(router, ServiceRouter)
        ):
            undone = _undo(ctx, router, state.active, target, result)
            if undone:
                result.active_color = str(state.active)
                result.previous_color = str(state.active)
                result.result = "failed"
                return result
        _after(ctx, router, state, target, entry, action=action, reason=reason, result=result)
        timings = {"api_ms": write.api_ms, "converged_ms": verification.converged_ms}
        try:
            # From our own write's result, not read again (a 409 if anyone wrote the Service since).
            known = (
                (write.resource_version, router.annotations)
                if isinstance(router, ServiceRouter) and router.records_history and write.resource_version
                else None
            )
            result.details["history"] = history.amend(
                ctx.kube,
                ctx.app,
                entry["id"],
                {"timings_ms": {k: round(v, 1) for k, v in timings.items()}, "verified": verification.ok},
                known=known,
            )
        except (BlueGreenError, history.NotRecorded) as error:
            result.messages.append(f"the switch is recorded, its timings are not: {error}")
            result.details["history"] = history.parse(ctx.history_annotations())
    result.active_color = str(target)
    result.previous_color = str(state.active) if state.active else None
    result.result = ("rolled-back" if action == "rollback" else "switched") if verification.ok else "failed"
    if verification.reverted_to:
        # Traffic is where the writer put it, whatever our record says: the message names who.
        result.active_color = verification.reverted_to if verification.reverted_to in set(Color) else None
        result.details["reverted"] = {"to": verification.reverted_to, "by": verification.reverted_by}
        result.messages.append(
            f"traffic was moved to {target}, then the selector was written back to {verification.reverted_to}: "
            f"configure the GitOps tool to leave the selector alone (docs/gitops.md), then switch again"
        )
    elif not verification.ok:
        result.messages.append(
            f"traffic was moved to {target} but did not converge in {verify_timeout:.0f}s: "
            f"check the {target} pods, or run `bluegreen rollback`"
        )
    return result


def read_route(ctx: Context) -> tuple[Router, RouteState]:
    """The app's router (given, or recorded by `init --router`) and what it reads, a missing app or
    namespace named as such."""
    if ctx.router in ("", "service"):
        # The service router's read is the live Service's: one GET, which also carries the recorded
        # router; its 404 still gets ctx.service()'s message.
        service = ServiceRouter(ctx.app, ctx.kube)
        try:
            state = service.read()
        except NotFoundError:
            ctx.service()  # a missing namespace or app fails here, with its own message
            raise
        recorded = service.annotations.get(routers.RECORDED, "")
        name = ctx.router_name({"metadata": {"annotations": {routers.RECORDED: recorded}}})
        if name == "service":
            return service, state
    else:
        name = ctx.router_name(ctx.service())  # a missing namespace or app fails here
    router = _make(ctx, name)
    return router, router.read()


def _make(ctx: Context, name: str) -> Router:
    """The router `name`, given the router options meant for it (--dns-server: dns only)."""
    if ctx.router_options and name != "dns":
        raise ConfigError(
            f"--dns-server is for the dns router, not {name}",
            remedy="Drop --dns-server, or pass --router dns.",
        )
    return routers.make(name, ctx.app, ctx.kube, **ctx.router_options)


def _releases(
    ctx: Context, deployments: dict[Color, dict[str, Any] | None] | None = None
) -> dict[Color, intent.Release]:
    read = deployments if deployments is not None else ctx.deployments()
    return {c: intent.Release.of(c, read.get(c), ctx.app.color_label) for c in Color}


def _verify(router: Router, target: Color, timeout: float) -> Verification:
    """The router's verification, which a signal may cut short (it only reads); the switch is then
    recorded as not verified."""
    try:
        with cancel.interruptible():
            return router.verify(target, timeout=timeout)
    except cancel.Cancelled:
        return Verification(ok=False, converged_ms=0.0, message=CUT_SHORT)


def _verify_traffic(
    traffic: TrafficCheck, verification: Verification, target: Color, sent_at: float, timeout: float
) -> tuple[Verification, float | None]:
    """The router's control-plane verification, then the data plane's: the probe's requests through
    the user's URL answered by `target` alone. A proxy applies a change after its own delay (Traefik
    re-reads the cluster at most every 2 s), and kube-proxy at its next sync (at most once a second),
    so the control plane is verified before traffic moves. Also returns when traffic moved (ms from
    `sent_at`, None if it did not): converged_ms is then the later of the two planes."""
    try:
        with cancel.interruptible():
            moved_ms, seen = traffic(str(target), sent_at, timeout)
    except cancel.Cancelled:
        return Verification(ok=False, converged_ms=0.0, message=CUT_SHORT), None
    control = f"control plane verified at {verification.converged_ms:.0f} ms ({verification.message})"
    if moved_ms is None:
        return Verification(
            ok=False,
            converged_ms=verification.converged_ms,
            # Up to `timeout`, or less when the probe reached its own bound (--timeout) first.
            message=f"{control}; but the probe's requests did not move to {target} alone in "
            f"{time.time() - sent_at:.1f}s after the write ({seen})",
            unverified=verification.unverified,
        ), None
    return Verification(
        ok=True,
        converged_ms=max(moved_ms, verification.converged_ms),
        message=f"requests through the probe URL answered by {target} alone from {moved_ms:.0f} ms "
        f"after the write ({seen}); {control}",
        # Traffic was seen moving: what the router could not check of its proxy is now checked.
        unverified=(),
    ), moved_ms


def planes(control_ms: float, moved_ms: float | None, *, probe: bool, reported_apart: bool) -> dict[str, Any]:
    """Pure: `details["verification"]`, the control plane's time and the data plane's apart.
    `probe`: the probe was the verification; `reported_apart`: a probe ran beside a router that checks
    its own data plane (dns)."""
    return {
        "control_plane_ms": round(control_ms, 1),
        "data_plane_ms": round(moved_ms, 1) if probe and moved_ms is not None else None,
        "data_plane": "probe"
        if probe
        else "probe reported apart"
        if reported_apart
        else "not checked (no --probe)",
    }


def _undo(ctx: Context, router: Router, back: Color, target: Color, result: Result) -> bool:
    """A failed verification: write the router back to `back`, the colour it left, and record it.
    Said plainly either way; False when the undo itself failed (the switch is then left as it is)."""
    try:
        state = router.read()
        if state.active == target or state.active is None:
            write = router.switch_to(back, state=state)
            result.changes.append(f"{router.name}: {write.before} -> {write.after} (undone)")
    except BlueGreenError as error:
        result.messages.append(
            f"the switch to {target} did not verify and could not be rolled back ({error}); "
            f"run `bluegreen rollback` or `bluegreen switch --to {back}`"
        )
        return False
    result.mark(f"rolled back the switch: {router.name} routes to {back} again")
    entry = history.entry(
        from_color=str(target),
        to_color=str(back),
        images={},
        run=ctx.run,
        reason=f"the switch to {target} did not verify",
        action="undo",
        timings={},
    )
    # The previous colour as it was before this switch (its entry's predecessor says which), so a
    # later `rollback` does not go to the colour that just failed to verify.
    try:
        entries = history.parse(ctx.history_annotations())
    except BlueGreenError:
        entries = []
    before = next((e.get("from") for e in entries[1:2] if e.get("to") == str(back)), None)
    _record(ctx, entry, active=str(back), previous=before)
    result.messages.append(
        f"rolled back the switch: the switch to {target} did not verify, so traffic was moved back to "
        f"{back} (pass --no-undo to leave a failed switch in place)"
    )
    return True


def _explain(decision: intent.Decision, result: Result) -> None:
    result.messages.extend(decision.notes)
    result.messages.extend(f"--force: {item}" for item in decision.forced)
    if decision.forced:
        result.details["forced"] = list(decision.forced)
    if decision.ungated:
        result.details["ungated"] = True


def _noop(
    ctx: Context,
    router: Router,
    state: RouteState,
    decision: intent.Decision,
    result: Result,
    deployments: dict[Color, dict[str, Any] | None] | None = None,
) -> Result:
    """Nothing to move: say why, and bring a history that lags the router up to date.
    `deployments`: each colour's Deployment as decide() just read it (not read again)."""
    result.result = "noop"
    result.active_color = str(state.active) if state.active else None
    known = deployments or {}
    live = (
        intent.Release.of(
            state.active,
            known[state.active] if state.active in known else ctx.deployment(state.active),
            ctx.app.color_label,
        )
        if state.active
        else None
    )
    result.candidate = live.hash if live and live.hash else None
    result.messages.append(
        f"{decision.why or f'traffic already goes to {state.active}'} ({state.detail}): nothing to do"
    )
    if state.active is not None:
        # The Service router's read is the live Service, history included: not read again (issue 14).
        annotations = (
            dict(router.annotations) if isinstance(router, ServiceRouter) and router.records_history else None
        )
        reconcile(
            ctx, state.active, result, deployed_live=bool(live and live.candidate), annotations=annotations
        )
    return result


def reconcile(
    ctx: Context,
    live: Color,
    result: Result,
    *,
    deployed_live: bool = False,
    annotations: dict[str, str] | None = None,
) -> None:
    """When the history disagrees with what the router reads (a switch interrupted between its
    writes), record what the router reads: the router is the truth. `deployed_live`: the live colour
    carries a deployed candidate, so with nothing recorded at all, someone else moved traffic to it.
    `annotations`: the live Service's, as just read (else read here)."""
    if annotations is None:
        annotations = ctx.history_annotations()
    lag = history.lags(annotations, str(live))
    if not lag and deployed_live and not annotations.get(history.ACTIVE):
        lag = f"traffic goes to the deployed {live} with no switch recorded (moved by another writer?)"
    if not lag:
        return
    recorded = annotations.get(history.ACTIVE)
    if recorded == str(live):  # an intent whose write never landed: nothing moved, forget the intent
        try:
            history.clear_intent(ctx.kube, ctx.app)
            result.messages.append(f"cleared an unfinished switch's intent ({lag})")
        except (BlueGreenError, history.NotRecorded) as error:
            result.messages.append(f"the history lags ({lag}) and could not be brought up to date: {error}")
        return
    before = recorded if recorded in ("blue", "green") else str(live.other)
    entry = history.entry(
        from_color=before,
        to_color=str(live),
        images={},
        run=ctx.run,
        reason=lag,
        action="reconcile",
        timings={},
    )
    try:
        history.record(ctx.kube, ctx.app, entry, active=str(live), previous=before)
        result.messages.append(f"the history lagged ({lag}): recorded that {live} is live")
    except (BlueGreenError, history.NotRecorded) as error:
        result.messages.append(f"the history lags ({lag}) and could not be brought up to date: {error}")


def _entry(
    ctx: Context,
    state: RouteState,
    decision: intent.Decision,
    *,
    action: str,
    reason: str,
    images: dict[str, list[str]],
    releases: dict[Color, intent.Release],
    measured: dict[str, Any] | None = None,
) -> dict[str, Any]:
    assert decision.target is not None
    releases = releases or _releases(ctx)  # a split route settled by --to read none
    extra: dict[str, Any] = {"release": releases[decision.target].hash}
    if state.active is not None:
        extra["from_release"] = releases[state.active].hash
    if decision.forced:
        extra["forced"] = list(decision.forced)
    if decision.ungated:
        extra["ungated"] = True
    # The baseline the watch judges against: only for the colour this switch moves traffic from.
    if measured and state.active is not None and measured.get("color") == str(state.active):
        extra["baseline"] = measured
    if action == "rollback" and state.active is not None:
        extra["rejected"] = {"color": str(state.active), "hash": releases[state.active].hash}
    return history.entry(
        from_color=str(state.active) if state.active else None,
        to_color=str(decision.target),
        images=images,
        run=ctx.run,
        reason=reason,
        action=action,
        timings={},
        extra=extra,
    )


def _write(
    ctx: Context,
    router: Router,
    decide: Callable[[RouteState], intent.Decision],
    ready: Callable[[Color], None],
    *,
    action: str,
    reason: str,
    images: dict[str, list[str]],
    seen: dict[Color, intent.Release],
    measured: dict[str, Any] | None,
    state: RouteState | None = None,
    decided: intent.Decision | None = None,
) -> tuple[RouteState, intent.Decision, SwitchWrite, dict[str, Any]]:
    """Read, decide, check the target is ready and write under the lock; a conflict means someone
    changed the object: decide again.

    The Service router writes the history (with the watch's baseline) in the same patch as the
    selector; the others record the intent first. `state`: the Service as read before the lock. Its
    first write is guarded by that resourceVersion, so any change since is a 409 and read again:
    reading it again first would only cost a request. The Deployments are read again under the lock
    (decide), and the target's readiness judged on that read (ready). `decided`: the decision on
    `state` already made under the lock (a caller that held it), not made again on a second read."""
    atomic = isinstance(router, ServiceRouter) and router.records_history
    known = state if atomic else None
    for _ in range(CONFLICT_RETRIES):
        if known is not None and decided is not None:
            state, decision = known, decided
        else:
            state = known or router.read()
            decision = decide(state)
        known = decided = None
        if decision.target is None:
            return state, decision, SwitchWrite(changed=False, api_ms=0.0, before="", after=""), {}
        ready(decision.target)  # before the first write: nothing written when it refuses
        entry = _entry(
            ctx,
            state,
            decision,
            action=action,
            reason=reason,
            images=images,
            releases=seen,
            measured=measured,
        )
        previous = str(state.active) if state.active else None
        try:
            if isinstance(router, ServiceRouter) and atomic:
                annotations = history.switched_annotations(
                    router.annotations, entry, active=str(decision.target), previous=previous
                )
                write = router.switch_to(decision.target, state=state, annotations=annotations)
            else:
                history.record_intent(ctx.kube, ctx.app, str(decision.target))
                write = router.switch_to(decision.target, state=state)
        except ConflictError:
            continue
        except history.NotRecorded as error:
            raise ConflictError(
                str(error), remedy="Find what else writes the live Service and run again."
            ) from None
        if write.changed and not atomic:
            _record(ctx, entry, active=str(decision.target), previous=previous)
        return state, decision, write, entry
    raise ConflictError(
        f"the {router.name} router's object kept changing during {CONFLICT_RETRIES} attempts to switch",
        remedy="Find what else writes it (a GitOps controller reverting the selector?) and run again.",
    )


def _record(ctx: Context, entry: dict[str, Any], *, active: str, previous: str | None) -> None:
    """The history of a router that could not write it with the switch; reported when it fails."""
    try:
        history.record(ctx.kube, ctx.app, entry, active=active, previous=previous)
    except (BlueGreenError, history.NotRecorded) as error:
        message = (
            f"traffic moved to {active} but the history could not be recorded ({error}); "
            "`bluegreen status` reads the router and says the history lags"
        )
        ctx.reporter.warning(message)
        entry["not_recorded"] = message


def _after(
    ctx: Context,
    router: Router,
    state: RouteState,
    target: Color,
    entry: dict[str, Any],
    *,
    action: str,
    reason: str,
    result: Result,
) -> None:
    """What follows a switch: the Event, a rejected mark on the release a rollback left, and no
    rejected mark on a release forced back in. Failures are reported, never raised: traffic moved."""
    if entry.get("not_recorded"):
        result.messages.append(str(entry["not_recorded"]))
    else:
        result.changes.append(f"Service {ctx.app.service}: history, active {target}")
    try:
        history.switch_event(
            ctx.kube,
            ctx.app,
            ctx.run,
            action=action,
            from_color=str(state.active) if state.active else None,
            to_color=str(target),
            reason=reason,
        )
    except BlueGreenError as error:
        result.messages.append(f"the Event could not be posted: {error}")
    mark: tuple[Color, str | None] | None = None
    if action == "rollback" and state.active is not None:
        rejected = entry.get("rejected") or {}
        value = {
            "hash": rejected.get("hash", ""),
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "reason": history.bounded_reason(reason),
            "run_id": ctx.run.run_id,
        }
        mark = (state.active, intent.encode(value))
    elif entry.get("forced"):
        mark = (target, None)
    if mark is None:
        return
    color, value_text = mark
    name, ns = ctx.app.deployment(color), ctx.app.namespace
    patch: dict[str, Any] = {"metadata": {"annotations": {intent.REJECTED: value_text}}}
    try:
        call(
            f"marking Deployment {ns}/{name}",
            lambda: patch_json(ctx.kube, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", patch),
            idempotent=False,
        )
        what = "rejected" if value_text else "no longer rejected"
        result.changes.append(f"Deployment {name}: release {what}")
    except BlueGreenError as error:
        result.messages.append(f"could not mark {name} (the history records it): {error}")
        ctx.reporter.warning(f"could not mark {name}: {error}")


def wait_observed(
    read: Callable[[], dict[str, Any] | None], *, timeout: float = OBSERVE_WAIT
) -> dict[str, Any] | None:
    """The Deployment once its controller has observed its newest generation, or as last read.

    A Deployment's generation grows with its annotations too, so our own stamps (candidate, gate,
    rejected) make it "not observed" for a moment: a readiness check right after must not mistake
    that for a rollout in progress."""
    deadline = time.monotonic() + timeout
    while True:
        dep = read()
        if dep is None:
            return None
        generation = (dep.get("metadata") or {}).get("generation", 0)
        observed = (dep.get("status") or {}).get("observedGeneration", 0)
        if observed >= generation or time.monotonic() >= deadline:
            return dep
        cancel.sleep(0.1)


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
    ctx: Context,
    target: Color,
    *,
    force: bool,
    result: Result | None,
    allow_no_endpoints: bool = False,
    read: dict[str, Any] | None = None,
) -> str:
    """Refuse a target that is not fully available, unless forced; returns what a forced switch
    overrode, for the history ("" when nothing was). Force never picks zero ready pods by accident:
    that also needs `allow_no_endpoints`. `read`: the target's Deployment as just read, judged before
    reading it again (only while its controller has not yet observed its newest generation)."""
    name = ctx.app.deployment(target)
    first = [read] if read is not None else []
    dep = wait_observed(lambda: first.pop() if first else ctx.deployment(target))
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
    if result is not None:
        result.messages.append(f"--force: switching to {target} although it is not ready ({why})")
    if ready == 0:
        if result is not None:
            result.messages.append(f"--allow-no-endpoints: {target} has no ready pod; traffic will fail")
        return f"forced onto {target} with no ready pod (--allow-no-endpoints)"
    return f"forced onto {target} with {ready} ready pod(s), not fully available"


def _dry_run(ctx: Context, router: Router, target: Color, result: Result) -> Result:
    holder = current_holder(ctx.kube, ctx.app)
    if holder:
        result.messages.append(f"the lock is held by {holder}: a real run would wait or fail")
    state = router.read()
    write = router.switch_to(target, state=state, dry_run=True)
    result.result = "planned"
    result.active_color = str(state.active) if state.active else None
    result.changes.append(f"{router.name}: {write.before} -> {write.after} (patch {write.patch})")
    result.messages.append("dry run: the apiserver validated the change (dryRun=All); nothing was changed")
    return result
