"""Group switch and group rollback: several apps, each with its router, moved as one.

Order: read every member; decide one target colour (bluegreen/group.py); check every member's target
Deployment is available and take every member's lock, all before the first write; then write every
switch concurrently (one thread per member), then verify all concurrently. If any write or any
verification fails, every member is read again (a write that timed out may have landed) and each one
not on its colour of before is switched back the same way; the result names any that could not be.
Locks are released at the end whatever happened.

Members use the same router factory, Lease lock, readiness rule and audit trail as a single-app
switch: each member's history (in the selector's own write for the Service router, after an intent
for the others) and an Event; the same for a move back. A member's preview Service is not written: it
follows the member's candidate (bluegreen/preview.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.events_v1 import Event
from lightkube.resources.networking_v1 import Ingress

from bluegreen import cancel, history
from bluegreen import routers as routers_factory
from bluegreen.errors import BlueGreenError, LockHeldError, NotReadyError, UsageError
from bluegreen.group import (
    Action,
    Group,
    GroupResult,
    Member,
    MemberOutcome,
    decide_intended,
    decide_target,
    skew_ms,
)
from bluegreen.intent import Release
from bluegreen.kube import call, found, prime_decoders, to_dict
from bluegreen.lock import Lock
from bluegreen.model import AppSpec, Color, RunInfo
from bluegreen.phases.switch import wait_observed
from bluegreen.rollout import fully_available, rollout_status
from bluegreen.routers.base import Router, RouteState, SwitchWrite
from bluegreen.routers.service import ServiceRouter

T = TypeVar("T")
R = TypeVar("R")
MAX_THREADS = 64
# The typed kinds members' routers, locks, checks and audit trails decode (generic resources decode
# as plain dicts). The Event too: each member's thread posts one, and four threads decoding a first
# Event in a fresh process crashed one process in three here (exit 139).
TYPED = (Deployment, Service, Pod, EndpointSlice, Lease, Ingress, Event)


# ---------------------------------------------------------------------------------------------------
# The member's router, lock and readiness: the same as a single-app switch uses.


def resolve_router(kube: Client, member: Member) -> Member:
    """The member with its router: the one the group file names, else the one `init --router` recorded
    on the member's Service, else service. A named one that disagrees with the recorded one is refused
    (routers.chosen), as for a single app: the frontend the app was set up with would stay on the old
    colour while another object moved, and the history would say traffic moved."""
    app = AppSpec(name=member.app, namespace=member.namespace)
    service = found(
        f"reading Service {app.namespace}/{app.service}",
        lambda: kube.get(Service, app.service, namespace=app.namespace),
    )
    name = routers_factory.chosen(
        member.router,
        routers_factory.recorded(to_dict(service) if service is not None else None),
        app=app.name,
        namespace=app.namespace,
        service=app.service,
    )
    return replace(member, router=name)


def make_router(member: Member, kube: Client) -> Router:
    """The member's router; unknown names are an error listing the known ones (routers.make)."""
    options = {"object_name": member.object} if member.object else {}
    return routers_factory.make(
        member.router, AppSpec(name=member.app, namespace=member.namespace), kube, **options
    )


def target_ready(kube: Client, app: AppSpec, color: Color) -> str | None:
    """Why `color`'s Deployment cannot take all traffic, or None: the rule `bluegreen switch` applies."""
    name = app.deployment(color)

    def read() -> dict[str, Any]:
        return to_dict(
            call(
                f"reading Deployment {app.namespace}/{name}",
                lambda: kube.get(Deployment, name, namespace=app.namespace),
            )
        )

    try:
        deployment = wait_observed(read)
    except BlueGreenError as error:
        return str(error)
    assert deployment is not None
    if fully_available(deployment):
        return None
    return (
        rollout_status(deployment).message
        if deployment["spec"].get("replicas", 1)
        else f"Deployment {name} is scaled to 0"
    )


def backend_problem(router: Router, color: Color) -> BaseException | None:
    """Why the router's own backend for `color` cannot take traffic (ObjectRouter.check_backend: the
    colour Service lists ready endpoints), or None; routers without such a check have none."""
    check = getattr(router, "check_backend", None)
    if check is None:
        return None
    try:
        check(color)
    except BlueGreenError as error:
        return error
    return None


def _releases(kube: Client, app: AppSpec) -> dict[Color, Release]:
    """What each colour of a member runs and what deploy, the gate and rollbacks recorded on it."""
    out: dict[Color, Release] = {}
    for color in Color:
        name = app.deployment(color)
        dep = found(
            f"reading Deployment {app.namespace}/{name}",
            lambda name=name: kube.get(Deployment, name, namespace=app.namespace),  # type: ignore[misc]
        )
        out[color] = Release.of(color, to_dict(dep) if dep else None, app.color_label)
    return out


# ---------------------------------------------------------------------------------------------------
# The group run.


def _all(items: Sequence[T], fn: Callable[[T], R]) -> list[R | BaseException]:
    """fn over every item at once (threads); each result or the exception it raised, in order."""

    def guarded(item: T) -> R | BaseException:
        try:
            return fn(item)
        except Exception as error:  # reported per member, never swallowed
            return error

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(len(items), MAX_THREADS)) as pool:
        return list(pool.map(guarded, items))


def _every(group: Group, found: list[R | BaseException]) -> list[R]:
    """What each member gave, or one error naming every member that failed (before any write)."""
    problems = [
        f"{m.key}: {_text(f)}"
        for m, f in zip(group.members, found, strict=True)
        if isinstance(f, BaseException)
    ]
    if problems:
        first = next((f for f in found if isinstance(f, BlueGreenError)), None)
        kind = type(first) if first else UsageError
        raise kind(f"cannot read every member of group {group.name}:\n  " + "\n  ".join(problems))
    return [f for f in found if not isinstance(f, BaseException)]


def _text(error: BaseException) -> str:
    return str(error) if isinstance(error, BlueGreenError) else f"{type(error).__name__}: {error}"


def run(
    kube: Client,
    group: Group,
    *,
    action: Action = "switch",
    to: Color | None = None,
    timeout: float = 60.0,
    dry_run: bool = False,
    make: Callable[[Member, Client], Router] = make_router,
    run_info: RunInfo | None = None,
    wait: float = 0.0,
) -> GroupResult:
    """Switch (or roll back) every member of `group` to one colour, all or none.

    Raises before any write when the group cannot move (members on different colours without `to`,
    a target not ready, a lock held, a router that cannot read its object). After the first write it
    never raises for a member's failure: the result lists what failed and what was moved back.
    `wait`: seconds to wait for the members' locks held by other runs (--wait-for-lock).
    """
    prime_decoders(*TYPED)
    members = _every(group, _all(group.members, lambda m: resolve_router(kube, m)))
    group = replace(group, members=tuple(members))
    result = GroupResult(group=group.name, action=action, dry_run=dry_run)
    routers = [make(m, kube) for m in group.members]
    outcomes = [MemberOutcome(member=m) for m in group.members]
    result.members = outcomes

    read = _every(group, _all(routers, lambda r: r.read()))
    apps = [AppSpec(name=m.app, namespace=m.namespace) for m in group.members]
    if action == "switch" and to is None:
        recorded = _all(apps, lambda app: _releases(kube, app))
        failed = next((r for r in recorded if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        target = decide_intended(
            {
                o.member.key: (s.active, r)
                for o, s, r in zip(outcomes, read, recorded, strict=True)
                if not isinstance(r, BaseException)
            }
        )
    else:
        target = decide_target(
            action, {o.member.key: s.active for o, s in zip(outcomes, read, strict=True)}, to
        )
    result.target = target
    for outcome, state in zip(outcomes, read, strict=True):
        outcome.before, outcome.target = state.active, target

    moving = [i for i, s in enumerate(read) if s.active != target]
    not_ready = _all(moving, lambda i: target_ready(kube, apps[i], target))
    unready = [f"{outcomes[i].member.key}: {why}" for i, why in zip(moving, not_ready, strict=True) if why]
    if unready:
        raise NotReadyError(
            f"group {group.name} cannot move to {target}: not every member is ready\n  "
            + "\n  ".join(unready),
            remedy="Deploy the target colour of those members and wait for their rollout first.",
        )
    if dry_run:
        writes = _all(moving, lambda i: routers[i].switch_to(target, state=read[i], dry_run=True))
        for i, w in zip(moving, writes, strict=True):
            outcomes[i].changed = not isinstance(w, BaseException) and w.changed
            outcomes[i].error = _text(w) if isinstance(w, BaseException) else ""
        result.failed = [
            outcomes[i].member.key
            for i, w in zip(moving, writes, strict=True)
            if isinstance(w, BaseException)
        ]
        result.ok = not result.failed
        return result

    who = run_info or RunInfo()
    holder = RunInfo(run_id=who.run_id or f"group {group.name}", run_url=who.run_url, actor=who.actor)
    leases = [Lock(kube, apps[i], holder) for i in range(len(apps))]
    audit = _Audit(kube=kube, apps=apps, run=who, action=f"group {action}", reason=f"group {group.name}")
    try:
        # A group rollback, like a single one, takes over the Lease of a member's running watch.
        taken = _take(leases, wait=wait, preempt=action == "rollback")
        refused = [(lease, t) for lease, t in zip(leases, taken, strict=True) if isinstance(t, BaseException)]
        if refused:
            first_error = refused[0][1]
            kind = type(first_error) if isinstance(first_error, BlueGreenError) else LockHeldError
            raise kind(
                f"group {group.name}: could not take every lock, nothing was written\n  "
                + "\n  ".join(f"{lease.app.namespace}/{lease.app.name}: {_text(e)}" for lease, e in refused),
                remedy="Wait for the other runs to finish, then run again (--wait-for-lock DURATION waits "
                "for them).",
            )
        # Again under the locks: a member's target may have changed while they were being taken.
        again = _all(moving, lambda i: target_ready(kube, apps[i], target))
        unready = [f"{outcomes[i].member.key}: {why}" for i, why in zip(moving, again, strict=True) if why]
        if unready:
            raise NotReadyError(
                f"group {group.name} cannot move to {target}: a member stopped being ready, nothing was "
                "written\n  " + "\n  ".join(unready),
                remedy="Wait for those members' rollouts, then run again.",
            )
        # Each member's own backend, as a single switch checks it: a frontend pointed at a colour
        # Service with no ready endpoints answers 404/503 for every request. Any refusal: no write.
        empty = _all(moving, lambda i: backend_problem(routers[i], target))
        refusals = [
            f"{outcomes[i].member.key}: {_text(why)}" for i, why in zip(moving, empty, strict=True) if why
        ]
        if refusals:
            raise NotReadyError(
                f"group {group.name} cannot move to {target}: a member's backend is not there, nothing "
                "was written\n  " + "\n  ".join(refusals),
                remedy="Check those members' target colour Services select ready pods, then run again.",
            )
        cancel.check()  # the last moment to stop with nothing written
        with cancel.deferred():  # every member moves, or every member moves back: a signal waits
            _move(result, routers, read, moving, target, timeout, audit)
            if not result.ok:
                _move_back(result, routers, moving, timeout, audit)
    finally:
        # Every member's Lease, not only those known taken: a take whose answer was lost (a reset, no
        # answer) may have landed, and a signal may have cut the taking short. Release reads whose
        # each one is and leaves another run's alone, so a re-run is never refused by this run.
        _all(leases, lambda lease: lease.release())
    return result


def _take(leases: list[Lock], *, wait: float, preempt: bool) -> list[BaseException | None]:
    """Take every member's Lease; each one's outcome (None: taken), in order.

    Without a wait, all at once. With one, one by one in a single order (namespace/app) within one
    shared deadline, so that two group runs sharing members cannot each hold a Lease the other waits
    for until both give up. The first refusal ends the taking."""
    if not wait:
        return _all(leases, lambda lease: lease.acquire(preempt=preempt))
    taken: list[BaseException | None] = [None] * len(leases)
    deadline = time.monotonic() + wait
    for i in sorted(range(len(leases)), key=lambda i: (leases[i].app.namespace, leases[i].app.name)):
        leases[i].wait = max(0.0, deadline - time.monotonic())
        try:
            leases[i].acquire(preempt=preempt)
        except Exception as error:  # reported with the member's name; a signal goes on up
            taken[i] = error
            break
    return taken


class _Audit:
    """Each member's audit trail, as a single-app switch leaves it."""

    def __init__(self, *, kube: Client, apps: list[AppSpec], run: RunInfo, action: str, reason: str) -> None:
        self.kube, self.apps, self.run, self.action, self.reason = kube, apps, run, action, reason

    def write(
        self, i: int, router: Router, state: RouteState, target: Color, *, action: str = ""
    ) -> SwitchWrite:
        """The member's switch with its history: in the same write for a Service router on the live
        Service; otherwise the intent first and the record after."""
        app = self.apps[i]
        entry = history.entry(
            from_color=str(state.active) if state.active else None,
            to_color=str(target),
            images={},
            run=self.run,
            reason=self.reason,
            action=action or self.action,
            timings={},
        )
        previous = str(state.active) if state.active else None
        if isinstance(router, ServiceRouter) and router.records_history:
            annotations = history.switched_annotations(
                router.annotations, entry, active=str(target), previous=previous
            )
            return router.switch_to(target, state=state, annotations=annotations)
        history.record_intent(self.kube, app, str(target))
        written = router.switch_to(target, state=state)
        history.record(self.kube, app, entry, active=str(target), previous=previous)
        return written

    def after(self, i: int, before: Color | None, target: Color, *, action: str = "") -> str:
        """The Event after a member moved; '' or what could not be done."""
        try:
            history.switch_event(
                self.kube,
                self.apps[i],
                self.run,
                action=action or self.action,
                from_color=str(before) if before else None,
                to_color=str(target),
                reason=self.reason,
            )
        except BlueGreenError as error:
            return f"Event: {error}"
        return ""


def _move(
    result: GroupResult,
    routers: list[Router],
    read: list[RouteState],
    moving: list[int],
    target: Color,
    timeout: float,
    audit: _Audit,
) -> None:
    outcomes = result.members
    done: dict[int, float] = {}

    def write(i: int) -> None:
        written = audit.write(i, routers[i], read[i], target)
        done[i] = time.monotonic()
        outcomes[i].changed, outcomes[i].write_ms = written.changed, written.api_ms

    first = time.monotonic()
    for i, error in zip(moving, _all(moving, write), strict=True):
        if isinstance(error, BaseException):
            outcomes[i].error = _text(error)
    result.skew_ms = skew_ms(list(done.values()))
    if any(outcomes[i].error for i in moving):
        result.failed = [outcomes[i].member.key for i in moving if outcomes[i].error]
        return

    with cancel.interruptible():  # every member moved: a signal may cut the verification short
        verified = _all(moving, lambda i: routers[i].verify(target, timeout=timeout))
    for i, v in zip(moving, verified, strict=True):
        if isinstance(v, BaseException):
            outcomes[i].verified, outcomes[i].error = False, _text(v)
        else:
            outcomes[i].verified, outcomes[i].message, outcomes[i].unverified = v.ok, v.message, v.unverified
    result.total_ms = (time.monotonic() - first) * 1000
    result.failed = [outcomes[i].member.key for i in moving if not outcomes[i].verified]
    result.ok = not result.failed
    if result.ok:
        for i, problem in zip(
            moving, _all(moving, lambda i: audit.after(i, outcomes[i].before, target)), strict=True
        ):
            if problem:
                outcomes[
                    i
                ].message = f"{outcomes[i].message}; not recorded: {_text(problem) if isinstance(problem, BaseException) else problem}"


def _move_back(
    result: GroupResult, routers: list[Router], moving: list[int], timeout: float, audit: _Audit
) -> None:
    """Read every member this run tried to move again, and switch each one that is not on its colour
    of before back to it (a write that timed out may have landed: its outcome is not trusted),
    concurrently, and verify; each is recorded like any switch."""
    outcomes = result.members
    now = _all(moving, lambda i: routers[i].read())
    moved: list[int] = []
    states: dict[int, RouteState] = {}
    for i, state in zip(moving, now, strict=True):
        if isinstance(state, BaseException):
            moved.append(i)  # unknown: try, and report it by name if it cannot be done
            continue
        states[i] = state
        if state.active != outcomes[i].before:
            moved.append(i)
            outcomes[i].changed = True

    def back(i: int) -> str:
        """'' when moved back and verified; else what is not verified (the write back was made)."""
        before = outcomes[i].before
        if before is None:
            raise UsageError("it routed to no single colour before: nothing safe to go back to")
        state = states.get(i) or routers[i].read()
        audit.write(i, routers[i], state, before, action="group move back")
        checked = routers[i].verify(before, timeout=timeout)
        problem = audit.after(i, state.active, before, action="group move back")
        return "; ".join(p for p in ("" if checked.ok else checked.message, problem) if p)

    for i, outcome in zip(moved, _all(moved, back), strict=True):
        key = outcomes[i].member.key
        if isinstance(outcome, BaseException):
            outcomes[i].moved_back = False
            note = f"moving back: {_text(outcome)}"
            outcomes[i].error = f"{outcomes[i].error}; {note}" if outcomes[i].error else note
            result.not_moved_back.append(key)
            continue
        outcomes[i].moved_back = True
        result.moved_back.append(key)
        if outcome:
            outcomes[i].message = f"{outcomes[i].message}; moved back but not verified: {outcome}".lstrip(
                "; "
            )


def status(
    kube: Client, group: Group, *, make: Callable[[Member, Client], Router] = make_router
) -> list[tuple[Member, RouteState | str]]:
    """Each member's current route as its router reads it (or why it could not be read)."""
    prime_decoders(*TYPED)
    resolved = _all(group.members, lambda m: resolve_router(kube, m))
    members = [m for m in resolved if isinstance(m, Member)]
    states = dict(zip((m.key for m in members), _all(members, lambda m: make(m, kube).read()), strict=True))
    out: list[tuple[Member, RouteState | str]] = []
    for given, member in zip(group.members, resolved, strict=True):
        state = member if isinstance(member, BaseException) else states[member.key]
        out.append(
            (
                given if isinstance(member, BaseException) else member,
                _text(state) if isinstance(state, BaseException) else state,
            )
        )
    return out
