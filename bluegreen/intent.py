"""Intent, not toggles: which release a switch promotes, decided from what deploy and gate recorded.

`deploy` records the candidate on the idle colour's Deployment (CANDIDATE: its pod-template hash,
images, run, a sequence number one above both colours'); a passing gate stamps the template it
judged (GATE); a rollback marks the release it left rejected (REJECTED). `switch` without `--to`
promotes the newest candidate, and when that candidate is already live it does nothing: a re-run
never flips traffic back. Pure: annotations in, a decision or a RefusedError out.

The template hash is ours (sha256 of the stored pod template, the colour label left out so the same
release hashes the same on either colour), not the ReplicaSet's pod-template-hash label, which only
exists once the controller has acted.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from bluegreen.errors import RefusedError, UsageError
from bluegreen.model import Color

CANDIDATE = "bluegreen.io/candidate"
GATE = "bluegreen.io/gate"
REJECTED = "bluegreen.io/rejected"


def template_hash(template: Mapping[str, Any], color_label: str) -> str:
    """The release a pod template runs, as 16 hex digits: equal on blue and green for the same release."""
    body = copy.deepcopy(dict(template))
    labels = (body.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(color_label, None)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp(annotations: Mapping[str, str] | None, key: str) -> dict[str, Any] | None:
    """One of our JSON annotations on a Deployment; a damaged one reads as absent."""
    raw = (annotations or {}).get(key)
    if not raw:
        return None
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return loaded if isinstance(loaded, dict) and isinstance(loaded.get("hash"), str) else None


def encode(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)


class Release(NamedTuple):
    """What one colour's Deployment runs and what was recorded about it."""

    color: Color
    hash: str  # of the template as stored now; "" when the Deployment does not exist
    candidate: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    rejected: dict[str, Any] | None = None

    @classmethod
    def of(cls, color: Color, deployment: Mapping[str, Any] | None, color_label: str) -> Release:
        if deployment is None:
            return cls(color=color, hash="")
        annotations = (deployment.get("metadata") or {}).get("annotations") or {}
        template = (deployment.get("spec") or {}).get("template") or {}
        return cls(
            color=color,
            hash=template_hash(template, color_label),
            candidate=stamp(annotations, CANDIDATE),
            gate=stamp(annotations, GATE),
            rejected=stamp(annotations, REJECTED),
        )

    @property
    def seq(self) -> int:
        """The deploy's sequence number; 0 when no deploy recorded one."""
        value = (self.candidate or {}).get("seq", 0)
        return value if isinstance(value, int) else 0

    @property
    def is_rejected(self) -> bool:
        return bool(self.hash) and (self.rejected or {}).get("hash") == self.hash

    @property
    def label(self) -> str:
        """How messages name it: `green (template 1a2b..., deploy #4)`."""
        seq = f", deploy #{self.seq}" if self.seq else ""
        return f"{self.color} (template {self.hash or 'none'}{seq})"


def next_seq(releases: Mapping[Color, Release]) -> int:
    return max((r.seq for r in releases.values()), default=0) + 1


class Decision:
    """What a switch does: nothing (target None, with why), or move to `target`; and what it overrode.
    (A plain class: a switch's start-up imports no dataclasses, issue 14.)"""

    __slots__ = ("forced", "notes", "target", "ungated", "why")

    def __init__(
        self,
        *,
        target: Color | None,
        why: str = "",
        forced: list[str] | None = None,  # refusals --force overrode, for the history
        ungated: bool = False,
        notes: list[str] | None = None,
    ) -> None:
        self.target, self.why, self.ungated = target, why, ungated
        self.forced = forced if forced is not None else []
        self.notes = notes if notes is not None else []

    def _fields(self) -> tuple[Any, ...]:
        return (self.target, self.why, self.forced, self.ungated, self.notes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass was

    def __repr__(self) -> str:
        return (
            f"Decision(target={self.target!r}, why={self.why!r}, forced={self.forced!r}, "
            f"ungated={self.ungated!r}, notes={self.notes!r})"
        )


def decide(
    live: Color,
    releases: Mapping[Color, Release],
    *,
    to: Color | None = None,
    candidate: str = "",
    force: bool = False,
    gate_required: bool = False,
    rollback: bool = False,
) -> Decision:
    """The colour a switch moves to, or why it moves nothing; RefusedError when it must not move.

    - `candidate` (a template hash, as deploy's output gives it): promote that release wherever it is.
    - `to`: that colour, whatever was recorded (an explicit move, e.g. going back by hand).
    - neither: the newest recorded candidate; when it is live, nothing to do.
    Then the target must not be a rejected release, and a promotion (the target's deploy newer than
    live's) must have passed a gate on this very template when one is required or was stamped.
    """
    current = releases[live]
    if candidate:
        holders = [c for c in (live, live.other) if releases[c].hash == candidate]
        if not holders:
            raise RefusedError(
                f"candidate {candidate} is deployed on neither colour (blue runs {releases[Color.BLUE].hash or 'nothing'}, "
                f"green {releases[Color.GREEN].hash or 'nothing'}): a later deploy replaced it",
                remedy="Switch the release that replaced it (its own run), or deploy this one again.",
            )
        if to is not None and to not in holders:
            raise UsageError(
                f"--to {to} and --candidate {candidate} disagree: {candidate} runs on {holders[0]}",
                remedy="Give one of them.",
            )
        if live in holders:
            return Decision(target=None, why=f"candidate {candidate} is already live on {live}")
        target = holders[0]
        if releases[target].seq < current.seq and not force:
            raise RefusedError(
                f"candidate {releases[target].label} is older than the live release {current.label}",
                remedy=f"To go back to it, run `bluegreen rollback` or `bluegreen switch --to {target}`.",
            )
    elif to is not None:
        if to is live:
            return Decision(target=None, why=f"traffic already goes to {live}")
        target = to
    else:
        newest = max((live, live.other), key=lambda c: releases[c].seq)  # a tie keeps live
        if releases[newest].seq == 0:
            raise RefusedError(
                "no candidate is recorded: `switch` without --to promotes the release `bluegreen deploy` recorded",
                remedy="Deploy the release first (`bluegreen deploy --image IMAGE`), or name the colour with --to.",
            )
        if newest is live:
            return Decision(target=None, why=f"the newest candidate {current.label} is already live")
        target = newest

    chosen = releases[target]
    decision = Decision(target=target)
    if chosen.is_rejected:
        rejected = chosen.rejected or {}
        what = (
            f"{chosen.label} was rolled back at {rejected.get('time', '?')}"
            f"{': ' + str(rejected['reason']) if rejected.get('reason') else ''}"
        )
        if not force:
            raise RefusedError(
                f"{what}; it is rejected",
                remedy="Deploy a new release, or pass --force to switch to it anyway (the history records it).",
            )
        decision.forced.append(f"rejected: {what}")
    promoting = not rollback and chosen.seq >= current.seq
    if promoting:
        gate_hash = (chosen.gate or {}).get("hash")
        problem = ""
        if gate_hash and gate_hash != chosen.hash:
            problem = (
                f"the {target} pod template changed after its gate passed: the gate judged {gate_hash}, "
                f"the Deployment now runs {chosen.hash}"
            )
        elif not gate_hash and gate_required:
            problem = f"{chosen.label} never passed a gate, and bluegreen.yaml has one"
        if problem and not force:
            raise RefusedError(
                problem,
                remedy="Run the gate on it (`bluegreen gate`), or pass --force (recorded as ungated).",
            )
        if problem:
            decision.forced.append(f"ungated: {problem}")
            decision.ungated = True
        recorded = (chosen.candidate or {}).get("hash")
        if recorded and recorded != chosen.hash and not gate_hash:
            decision.notes.append(
                f"the {target} template changed after deploy recorded it ({recorded} -> {chosen.hash})"
            )
    return decision
