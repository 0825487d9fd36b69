"""Keeping the rollback target patched (pure): may the idle colour be patched, and what changes.

A security patch must reach both colours: the live one by the next release, the idle one (the
rollback target) by `bluegreen patch`, which re-deploys it with patched images of the same release
and moves no traffic. Only a rollback target is patched: the idle colour must hold a release that
was live before (its deploy number below live's) and was not rolled back from. A candidate that was
never promoted is patched by deploying it again; a rejected release is no rollback target.

The patch is stamped on the Deployment in the same write as its template (PATCHED: the patched
template's hash, the history entry's id, the images before and after), so `status` can tell when
each colour was last patched, and a re-run whose write landed but whose history entry did not can
still record it. The stamp describes one template: a later deploy of another template voids it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bluegreen import intent
from bluegreen.errors import NotFoundError, RefusedError, UsageError
from bluegreen.model import Color
from bluegreen.rollout import with_images

PATCHED = "bluegreen.io/patched"


def repository(image: str) -> str:
    """The image without its tag and digest: `ghcr.io/acme/shop:1.4@sha256:...` -> `ghcr.io/acme/shop`."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


@dataclass(frozen=True, kw_only=True)
class Plan:
    """The patch of the idle colour: its new template, and each container's image before and after."""

    color: Color
    template: dict[str, Any]
    changed: dict[str, tuple[str, str]]  # container -> (image before, image after); empty: nothing to do
    release: intent.Release  # the idle colour's release as it is before the patch


def plan(
    live: Color,
    deployments: Mapping[Color, Mapping[str, Any] | None],
    *,
    image: str | None,
    set_images: Mapping[str, str],
    color_label: str,
) -> Plan:
    """The patch of the idle colour (live.other), or why there is none: NotFoundError (no idle
    Deployment), RefusedError (not a rollback target, or a different image), UsageError (containers)."""
    idle = live.other
    dep = deployments.get(idle)
    if dep is None:
        raise NotFoundError(
            f"the idle colour {idle} has no Deployment: there is no rollback target to patch",
            remedy="Patch the live colour by deploying the patched release (`bluegreen deploy`).",
        )
    releases = {c: intent.Release.of(c, deployments.get(c), color_label) for c in Color}
    target = releases[idle]
    if target.is_rejected:
        rejected = target.rejected or {}
        raise RefusedError(
            f"{target.label} was rolled back from at {rejected.get('time', '?')}: it is no rollback target, "
            "and patching it would not make it one",
            remedy="Deploy a fixed release instead (`bluegreen deploy`); it replaces the rejected one.",
        )
    if target.seq > releases[live].seq:
        raise RefusedError(
            f"{target.label} is newer than the live release {releases[live].label}: a candidate never "
            "promoted (or switched away from), not the rollback target that patch keeps patched",
            remedy="Deploy the patched images as the candidate (`bluegreen deploy --image ...`), then gate "
            "and switch it as usual.",
        )
    before = dict((dep.get("spec") or {}).get("template") or {})
    try:
        template = with_images(before, dict(set_images), image)
    except ValueError as error:
        raise UsageError(
            str(error), remedy=f"Name the containers as {idle}'s pod template does (`bluegreen status`)."
        ) from None
    old = {str(c.get("name")): str(c.get("image", "")) for c in _containers(before)}
    new = {str(c.get("name")): str(c.get("image", "")) for c in _containers(template)}
    changed = {name: (old[name], new[name]) for name in new if old.get(name) != new[name]}
    other = {name: pair for name, pair in changed.items() if repository(pair[0]) != repository(pair[1])}
    if other:
        shown = ", ".join(f"{n}: {a} -> {b}" for n, (a, b) in sorted(other.items()))
        raise RefusedError(
            f"a patch keeps each image's repository and changes its tag or digest only ({shown}): "
            "another image is another release",
            remedy="Give the patched build of the same image (e.g. shop:1.4.2-p1 or a new digest), or "
            "release the new image with `bluegreen deploy`.",
        )
    return Plan(color=idle, template=template, changed=changed, release=target)


def _containers(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((template.get("spec") or {}).get("containers") or [])


def patched_candidate(
    candidate: Mapping[str, Any] | None, new_hash: str, images: list[str]
) -> dict[str, Any]:
    """The idle colour's candidate record after a patch: the same release (its deploy number, run and
    time kept), describing the patched template, so `switch`, `diff` and `deploy` do not take the
    patch for an edit made outside bluegreen."""
    return {**dict(candidate or {}), "hash": new_hash, "sent": new_hash, "images": images}


def stamp(annotations: Mapping[str, str] | None) -> dict[str, Any] | None:
    """The patch recorded on a Deployment; a damaged one reads as absent."""
    return intent.stamp(annotations, PATCHED)


def last_patched(deployment: Mapping[str, Any] | None, color_label: str) -> dict[str, Any] | None:
    """The colour's last patch when it still describes the template the colour runs, else None."""
    if deployment is None:
        return None
    found = stamp((deployment.get("metadata") or {}).get("annotations"))
    template = (deployment.get("spec") or {}).get("template") or {}
    if found is None or found.get("hash") != intent.template_hash(template, color_label):
        return None
    return found


def released_as(deployment: Mapping[str, Any] | None, color_label: str) -> list[str]:
    """The release hashes the colour ran before its patches (while its patch stamp holds): a deploy of
    one of them is that release, patched since, and never undoes the patch."""
    found = last_patched(deployment, color_label) or {}
    hashes = found.get("released_as")
    return [h for h in hashes if isinstance(h, str)] if isinstance(hashes, list) else []


def encode(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)
