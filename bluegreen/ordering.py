"""When a `contract` migration may run (pure: no I/O, unit-tested without a cluster).

A contract step removes what only the old release needed (a column, a table). It is safe only once
nothing can run the old release again without a new deploy: the previous colour scaled to zero, its
pods gone, traffic not on a release that a rollback brought back, and the rollback window after the
last switch (`migrations.contract-after`) passed. Run earlier, a rollback would put the old release
on a schema that no longer has what it reads, which is how blue-green releases lose data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple


class ContractState(NamedTuple):
    """What the cluster says, read by the migrate phase."""

    app: str
    live: str | None  # the colour the router sends traffic to; None: no single colour
    previous_deployment: str  # the other colour's Deployment, by name
    previous_replicas: int | None  # its spec.replicas; None: it does not exist
    previous_pods: int  # its pods still there (running or terminating)
    switching: str | None  # an unfinished switch's intent
    last_action: str | None  # the newest switch-history entry's action (switch, rollback, ...)
    last_switch: datetime | None  # when that entry was written
    window: float  # seconds after the last switch in which a rollback is still expected
    now: datetime


class Decision(NamedTuple):
    allowed: bool
    why: str = ""  # what blocks it
    remedy: str = ""  # what to do, and when it becomes allowed
    not_before: datetime | None = None  # only the window is left: allowed from then on


def contract(state: ContractState) -> Decision:
    """Whether `contract` may run now; when not, why and what to do."""
    s = state
    if s.switching:
        return Decision(
            False,
            f"a switch to {s.switching} was started and not recorded: traffic may still move",
            "Run `bluegreen status`, finish or repeat the switch, then contract.",
        )
    if s.live is None:
        return Decision(
            False,
            "traffic is not on one colour",
            "Settle it with `bluegreen switch --to blue|green`, retire the other colour, then contract.",
        )
    if s.previous_replicas:
        return Decision(
            False,
            f"the other colour still runs: {s.previous_deployment} has {s.previous_replicas} "
            f"replica{'s' if s.previous_replicas != 1 else ''}, so a rollback (or a switch) can send "
            "traffic to it at once, and the release it runs may still need what contract removes",
            f"Switch to the release that no longer needs it, then retire the other colour "
            f"(`bluegreen retire --app {s.app}`) once no rollback is wanted; then contract.",
        )
    if s.previous_pods:
        return Decision(
            False,
            f"the previous colour is still draining: {s.previous_pods} pod"
            f"{'s' if s.previous_pods != 1 else ''} of {s.previous_deployment} still there",
            "Wait for `bluegreen retire` to finish draining (or run it again), then contract.",
        )
    if s.last_action == "rollback":
        return Decision(
            False,
            f"traffic on {s.live} was put back by a rollback: the live release is the older one, and it "
            "needs what contract would remove",
            "Contract only after a release that no longer needs it is switched to and the old colour retired.",
        )
    if s.last_switch is not None and s.window > 0:
        allowed_at = s.last_switch + timedelta(seconds=s.window)
        if s.now < allowed_at:
            left = (allowed_at - s.now).total_seconds()
            return Decision(
                False,
                f"inside the rollback window: the last switch was at {s.last_switch.isoformat(timespec='seconds')} "
                f"and migrations.contract-after is {_seconds(s.window)}",
                f"Run contract again from {allowed_at.isoformat(timespec='seconds')} (in {_seconds(left)}).",
                allowed_at,
            )
    return Decision(True)


def _seconds(value: float) -> str:
    whole = round(value)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"


def rollback_after_contract(
    target: str, switches: list[dict[str, Any]], migrations: list[dict[str, Any]]
) -> str:
    """Why a rollback to `target` would run a release on a schema already contracted; '' when not.

    `switches` and `migrations` are the recorded histories, newest first. The release on `target` is
    the one traffic last left it for; a contract that succeeded after that moment removed what the
    next release no longer needed, which that older release may still need."""
    left = next((e for e in switches if e.get("from") == target), None)
    if left is None or not isinstance(left.get("time"), str):
        return ""
    contracted = next(
        (
            m
            for m in migrations
            if m.get("hook") == "contract"
            and m.get("outcome") == "succeeded"
            and isinstance(m.get("time"), str)
            and m["time"] >= left["time"]
        ),
        None,
    )
    if contracted is None:
        return ""
    release = f" for release {contracted['release']}" if contracted.get("release") else ""
    return (
        f"contract ran{release} at {contracted['time']}, after traffic left {target} at {left['time']}: "
        f"the release on {target} may need what it removed"
    )
