"""Group switch and group rollback: several apps, each with its router, moved as one.

Order: read every member; decide one target colour (bluegreen/group.py); check every member's target
Deployment is available and take every member's lock, all before the first write; then write every
switch concurrently (one thread per member), then verify all concurrently. If any write or any
verification fails, the members already moved are switched back the same way, and the result says
which moved back and which could not. Locks are released at the end whatever happened.

Members use the same router factory, Lease lock and readiness rule as a single-app switch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.resources.networking_v1 import Ingress

from bluegreen import cancel
from bluegreen import routers as routers_factory
from bluegreen.errors import BlueGreenError, LockHeldError, NotReadyError, UsageError
from bluegreen.group import Action, Group, GroupResult, Member, MemberOutcome, decide_target, skew_ms
from bluegreen.kube import call, prime_decoders, to_dict
from bluegreen.lock import Lock
from bluegreen.model import AppSpec, Color, RunInfo
from bluegreen.rollout import fully_available, rollout_status
from bluegreen.routers.base import Router, RouteState

T = TypeVar("T")
R = TypeVar("R")
MAX_THREADS = 64
# The typed kinds members' routers, locks and checks decode (generic resources decode as plain dicts).
TYPED = (Deployment, Service, Pod, EndpointSlice, Lease, Ingress)


# ---------------------------------------------------------------------------------------------------
# The member's router, lock and readiness: the same as a single-app switch uses.


def make_router(member: Member, kube: Client) -> Router:
    """The member's router; unknown names are an error listing the known ones (routers.make)."""
    options = {"object_name": member.object} if member.object else {}
    return routers_factory.make(
        member.router, AppSpec(name=member.app, namespace=member.namespace), kube, **options
    )


def target_ready(kube: Client, app: AppSpec, color: Color) -> str | None:
    """Why `color`'s Deployment cannot take all traffic, or None: the rule `bluegreen switch` applies."""
    name = app.deployment(color)
    try:
        found = call(
            f"reading Deployment {app.namespace}/{name}",
            lambda: kube.get(Deployment, name, namespace=app.namespace),
        )
    except BlueGreenError as error:
        return str(error)
    deployment = to_dict(found)
    if fully_available(deployment):
        return None
    return (
        rollout_status(deployment).message
        if deployment["spec"].get("replicas", 1)
        else f"Deployment {name} is scaled to 0"
    )


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
) -> GroupResult:
    """Switch (or roll back) every member of `group` to one colour, all or none.

    Raises before any write when the group cannot move (members on different colours without `to`,
    a target not ready, a lock held, a router that cannot read its object). After the first write it
    never raises for a member's failure: the result lists what failed and what was moved back.
    """
    result = GroupResult(group=group.name, action=action, dry_run=dry_run)
    prime_decoders(*TYPED)
    routers = [make(m, kube) for m in group.members]
    outcomes = [MemberOutcome(member=m) for m in group.members]
    result.members = outcomes

    states = _all(routers, lambda r: r.read())
    problems = [
        f"{o.member.key}: {_text(s)}"
        for o, s in zip(outcomes, states, strict=True)
        if isinstance(s, BaseException)
    ]
    if problems:
        first = next((s for s in states if isinstance(s, BlueGreenError)), None)
        kind = type(first) if first else UsageError
        raise kind(f"cannot read every member of group {group.name}:\n  " + "\n  ".join(problems))
    read: list[RouteState] = [s for s in states if isinstance(s, RouteState)]
    target = decide_target(action, {o.member.key: s.active for o, s in zip(outcomes, read, strict=True)}, to)
    result.target = target
    for outcome, state in zip(outcomes, read, strict=True):
        outcome.before, outcome.target = state.active, target

    moving = [i for i, s in enumerate(read) if s.active != target]
    apps = [AppSpec(name=m.app, namespace=m.namespace) for m in group.members]
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

    run_info = RunInfo(run_id=f"group {group.name}")
    leases = [Lock(kube, apps[i], run_info) for i in range(len(apps))]
    # A group rollback, like a single one, takes over the Lease of a member's running watch.
    taken = _all(leases, lambda lease: lease.acquire(preempt=action == "rollback"))
    held = [lease for lease, t in zip(leases, taken, strict=True) if not isinstance(t, BaseException)]
    try:
        refused = [(lease, t) for lease, t in zip(leases, taken, strict=True) if isinstance(t, BaseException)]
        if refused:
            first_error = refused[0][1]
            kind = type(first_error) if isinstance(first_error, BlueGreenError) else LockHeldError
            raise kind(
                f"group {group.name}: could not take every lock, nothing was written\n  "
                + "\n  ".join(f"{lease.app.namespace}/{lease.app.name}: {_text(e)}" for lease, e in refused),
                remedy="Wait for the other runs to finish, then run again.",
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
        cancel.check()  # the last moment to stop with nothing written
        with cancel.deferred():  # every member moves, or every member moves back: a signal waits
            _move(result, routers, read, moving, target, timeout)
            if not result.ok:
                _move_back(result, routers, moving, timeout)
    finally:
        _all(held, lambda lease: lease.release())
    return result


def _move(
    result: GroupResult,
    routers: list[Router],
    read: list[RouteState],
    moving: list[int],
    target: Color,
    timeout: float,
) -> None:
    outcomes = result.members
    done: dict[int, float] = {}

    def write(i: int) -> None:
        written = routers[i].switch_to(target, state=read[i])
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


def _move_back(result: GroupResult, routers: list[Router], moving: list[int], timeout: float) -> None:
    """Switch every member this run moved back to the colour it was on, concurrently, and verify."""
    outcomes = result.members
    moved = [i for i in moving if outcomes[i].changed]

    def back(i: int) -> str:
        """'' when moved back and verified; else what is not verified (the write back was made)."""
        before = outcomes[i].before
        if before is None:
            raise UsageError("it routed to no single colour before: nothing safe to go back to")
        routers[i].switch_to(before, state=routers[i].read())
        checked = routers[i].verify(before, timeout=timeout)
        return "" if checked.ok else checked.message

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
    routers = [make(m, kube) for m in group.members]
    states = _all(routers, lambda r: r.read())
    return [
        (m, _text(s) if isinstance(s, BaseException) else s)
        for m, s in zip(group.members, states, strict=True)
    ]
