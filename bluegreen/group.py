"""Groups: several apps, each with its own router, that must move together (pure logic, no I/O).

A `groups` list in bluegreen.yaml names them:

    groups:
      - name: storefront
        namespace: shop            # default for members; else the file's top-level namespace
        members:
          - app: cart              # router: the one `init --router` recorded, else service
          - app: web
            router: gateway
            object: web-route      # the router's object; default: the app's name
            namespace: edge

A group switch reads every member, decides one target colour for all (without --to: the colour
every member's newest recorded candidate runs on, as for one app), checks every member ready and
takes every lock before the first write, writes all switches concurrently, verifies all, and moves
back the ones already moved if any write or verification fails. This module holds the decisions and
the report; phases/group.py does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bluegreen import validate
from bluegreen.errors import ConfigError, RefusedError
from bluegreen.intent import Release, decide
from bluegreen.model import Color

ROUTERS = validate.ROUTERS
Action = Literal["switch", "rollback"]


@dataclass(frozen=True, kw_only=True)
class Member:
    app: str
    namespace: str
    # Empty: not named in the group file, so the one `init --router` recorded on the member's Service,
    # else service (phases.group.resolve_routers fills it in before anything is read or written).
    router: str = ""
    object: str = ""  # the router's object name; empty: the app's name

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.app}"


@dataclass(frozen=True, kw_only=True)
class Group:
    name: str
    members: tuple[Member, ...]


# ---------------------------------------------------------------------------------------------------
# Parsing the `groups` section (plain data in; problems out as (line, where, what)).

Problem = tuple[int, str, str]
_GROUP_KEYS = ("name", "namespace", "members")
_MEMBER_KEYS = ("app", "namespace", "router", "object")


def _line(data: object, key: object) -> int:
    lines = getattr(data, "lines", None)
    if isinstance(lines, dict):
        return int(lines.get(key, getattr(data, "line", 0)))
    return int(getattr(data, "line", 0))


def parse_groups(raw: Any, *, default_namespace: str = "") -> tuple[tuple[Group, ...], list[Problem]]:
    """Groups from the `groups` value of bluegreen.yaml, and every problem found, with its line."""
    problems: list[Problem] = []
    if raw is None:
        return (), problems
    if not isinstance(raw, list):
        return (), [(_line(raw, None), "groups", "expected a list of groups")]
    groups: list[Group] = []
    names: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"groups[{i}]"
        if not isinstance(item, dict):
            problems.append((_line(raw, i), where, "expected a mapping with name and members"))
            continue
        for key in item:
            if key not in _GROUP_KEYS:
                problems.append(
                    (
                        _line(item, key),
                        f"{where}.{key}",
                        f"unknown key; known keys here: {', '.join(_GROUP_KEYS)}",
                    )
                )
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append((_line(item, "name"), f"{where}.name", "required: a non-empty group name"))
            name = ""
        elif len(name) > 253 or any(ord(c) < 32 for c in name):
            problems.append(
                (
                    _line(item, "name"),
                    f"{where}.name",
                    f"{validate._shown(name)}: at most 253 printable characters",
                )
            )
            name = ""
        elif name in names:
            problems.append(
                (
                    _line(item, "name"),
                    f"{where}.name",
                    f"duplicate group {name!r} (first on line {names[name]})",
                )
            )
        names.setdefault(name, _line(item, "name"))
        namespace = item.get("namespace", default_namespace)
        if namespace != default_namespace or "namespace" in item:
            try:
                validate.namespace(namespace)
            except ValueError as error:
                problems.append((_line(item, "namespace"), f"{where}.namespace", str(error)))
                namespace = default_namespace
        members = _members(
            item.get("members"), f"{where}.members", _line(item, "members"), namespace, problems
        )
        groups.append(Group(name=name, members=members))
    return tuple(groups), problems


def _members(raw: Any, where: str, line: int, namespace: str, problems: list[Problem]) -> tuple[Member, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append((line, where, "required: a list of members, each with an app"))
        return ()
    members: list[Member] = []
    seen: dict[str, int] = {}
    for j, item in enumerate(raw):
        here = f"{where}[{j}]"
        if isinstance(item, str):  # `- cart` is short for `- app: cart`
            item = {"app": item}
        if not isinstance(item, dict):
            problems.append((_line(raw, j), here, "expected an app name or a mapping with app"))
            continue
        for key in item:
            if key not in _MEMBER_KEYS:
                problems.append(
                    (
                        _line(item, key),
                        f"{here}.{key}",
                        f"unknown key; known keys here: {', '.join(_MEMBER_KEYS)}",
                    )
                )
        values = {k: item.get(k) for k in _MEMBER_KEYS}
        bad = [k for k, v in values.items() if v is not None and (not isinstance(v, str) or not v.strip())]
        for key in bad:
            problems.append(
                (_line(item, key), f"{here}.{key}", f"expected a non-empty string, got {values[key]!r}")
            )
        app = values["app"] if isinstance(values["app"], str) else ""
        if not app:
            problems.append((_line(item, "app") or _line(raw, j), f"{here}.app", "required: the app's name"))
            continue
        named = [
            ("app", validate.app_name),
            ("namespace", validate.namespace),
            (
                "object",
                validate.service_name if values["router"] in (None, "service") else validate.dns_subdomain,
            ),
        ]
        for key, check in named:
            if key in bad or values[key] is None:
                continue
            try:
                check(values[key])
            except ValueError as error:
                problems.append((_line(item, key), f"{here}.{key}", str(error)))
                bad.append(key)
        if "app" in bad:
            continue
        router = values["router"] if "router" not in bad and values["router"] else ""
        if router and router not in ROUTERS:
            problems.append(
                (
                    _line(item, "router"),
                    f"{here}.router",
                    f"unknown router {router!r}; known: {', '.join(ROUTERS)}",
                )
            )
        ns = values["namespace"] if "namespace" not in bad and values["namespace"] else namespace
        if not ns:
            problems.append(
                (
                    _line(raw, j),
                    f"{here}.namespace",
                    "no namespace: give one here, on the group, or at the top",
                )
            )
        member = Member(app=app, namespace=ns or "", router=str(router), object=str(values["object"] or ""))
        if member.key in seen:
            problems.append(
                (_line(raw, j), here, f"{member.key} is already a member (line {seen[member.key]})")
            )
        seen.setdefault(member.key, _line(raw, j))
        members.append(member)
    return tuple(members)


def find(groups: Sequence[Group], name: str) -> Group:
    for group in groups:
        if group.name == name:
            return group
    known = ", ".join(g.name for g in groups) or "none defined"
    raise ConfigError(
        f"no group named {name!r} (groups: {known})", remedy="Add it under `groups:` in bluegreen.yaml."
    )


# ---------------------------------------------------------------------------------------------------
# Decisions.


def decide_target(
    action: Action, active: Mapping[str, Color | None], requested: Color | None = None
) -> Color:
    """The one colour every member moves to.

    With `requested`, that colour. Otherwise every member must be on the same colour now: a rollback
    moves them all to the other one (a switch without --to uses decide_intended instead). Members split across colours (or routing to no
    single colour) are refused, naming each, because guessing would move some the wrong way.
    """
    if requested is not None:
        return requested
    colors = set(active.values())
    if len(colors) == 1 and None not in colors:
        (current,) = colors
        assert current is not None
        return current.other
    listing = ", ".join(f"{key} on {color or 'no single colour'}" for key, color in sorted(active.items()))
    raise RefusedError(
        f"cannot {action} the group: its members are not all on one colour ({listing})",
        remedy="Name the colour they should all move to with --to blue or --to green.",
    )


def decide_intended(members: Mapping[str, tuple[Color | None, Mapping[Color, Release]]]) -> Color:
    """A group switch without --to: the colour every member's newest candidate runs on (intent, not
    toggles, as for one app: a re-run after the switch finds them all there and moves nothing).

    `members` maps each member to (the colour it routes to, what each colour runs). A member with no
    candidate, a rejected or ungated one, or candidates on different colours are refused, by name.
    """
    wanted: dict[str, Color] = {}
    problems: list[str] = []
    for key, (live, releases) in sorted(members.items()):
        if live is None:
            problems.append(f"{key}: traffic is not on one colour")
            continue
        try:
            decision = decide(live, releases)
        except RefusedError as error:
            problems.append(f"{key}: {error.message}")
            continue
        wanted[key] = decision.target or live
    if problems:
        raise RefusedError(
            "cannot tell which release every member should run:\n  " + "\n  ".join(problems),
            remedy="Deploy each member with `bluegreen deploy`, or name the colour with --to blue|green.",
        )
    colors = set(wanted.values())
    if len(colors) == 1:
        return colors.pop()
    listing = ", ".join(f"{key} on {color}" for key, color in sorted(wanted.items()))
    raise RefusedError(
        f"the members' newest candidates are not on one colour ({listing})",
        remedy="Name the colour they should all move to with --to blue or --to green.",
    )


def skew_ms(write_done: Sequence[float]) -> float:
    """Milliseconds from the first write's completion to the last's (0 for fewer than two)."""
    return (max(write_done) - min(write_done)) * 1000 if len(write_done) > 1 else 0.0


# ---------------------------------------------------------------------------------------------------
# The report.


@dataclass(kw_only=True)
class MemberOutcome:
    member: Member
    before: Color | None = None
    target: Color | None = None
    changed: bool = False
    write_ms: float = 0.0
    verified: bool | None = None  # None: not verified (not moved, or the run stopped before)
    message: str = ""
    unverified: tuple[str, ...] = ()
    moved_back: bool | None = None  # None: not needed; True/False: the compensating switch's outcome
    error: str = ""


@dataclass(kw_only=True)
class GroupResult:
    group: str
    action: Action
    target: Color | None = None
    ok: bool = False
    dry_run: bool = False
    members: list[MemberOutcome] = field(default_factory=list)
    skew_ms: float = 0.0
    total_ms: float = 0.0  # from the first write to all verified
    failed: list[str] = field(default_factory=list)  # members whose write or verification failed
    moved_back: list[str] = field(default_factory=list)  # written back (see each member's message)
    not_moved_back: list[str] = field(default_factory=list)  # compensation failed: needs a person

    def text(self) -> str:
        head = f"group {self.group}: {self.action} to {self.target or '?'}"
        if self.dry_run:
            head += " (dry run: nothing written)"
        elif self.ok:
            head += f": all {len(self.members)} verified in {self.total_ms:.0f} ms (write skew {self.skew_ms:.0f} ms)"
        else:
            head += f": FAILED ({', '.join(self.failed)})"
        lines = [head]
        for m in self.members:
            state = (
                "unchanged" if not m.changed else f"{m.before or '?'} -> {m.target} in {m.write_ms:.0f} ms"
            )
            status = "" if m.verified is None else (" verified" if m.verified else " NOT verified")
            back = {None: "", True: "; moved back", False: "; MOVE BACK FAILED"}[m.moved_back]
            detail = f": {m.error or m.message}" if (m.error or m.verified is False) else ""
            lines.append(f"  {m.member.key} [{m.member.router}] {state}{status}{back}{detail}")
        if self.moved_back:
            lines.append(f"moved back: {', '.join(self.moved_back)}")
        if self.not_moved_back:
            lines.append(f"could NOT move back (fix by hand): {', '.join(self.not_moved_back)}")
        unverified = sorted({u for m in self.members for u in m.unverified})
        for item in unverified:
            lines.append(f"not verified: {item}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "action": self.action,
            "target": str(self.target) if self.target else None,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "skew_ms": round(self.skew_ms, 1),
            "total_ms": round(self.total_ms, 1),
            "failed": self.failed,
            "moved_back": self.moved_back,
            "not_moved_back": self.not_moved_back,
            "members": [
                {
                    "app": m.member.app,
                    "namespace": m.member.namespace,
                    "router": m.member.router,
                    "before": str(m.before) if m.before else None,
                    "target": str(m.target) if m.target else None,
                    "changed": m.changed,
                    "write_ms": round(m.write_ms, 1),
                    "verified": m.verified,
                    "message": m.message,
                    "unverified": list(m.unverified),
                    "moved_back": m.moved_back,
                    "error": m.error,
                }
                for m in self.members
            ],
        }
