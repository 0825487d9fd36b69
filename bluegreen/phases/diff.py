"""diff: the two colours side by side; drift (what differs beyond the declared release) is exit 1.

Reads only. The judging is bluegreen/drift.py; here the colours' templates, the config copies they
reference and the record the newest deploy left are read from the cluster.
"""

from __future__ import annotations

from typing import Any

from bluegreen import drift, intent, manifests
from bluegreen.errors import NotFoundError
from bluegreen.kube import found, get_json
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context

PLURALS = {"ConfigMap": "configmaps", "Secret": "secrets"}


def run(ctx: Context) -> Result:
    ctx.service()  # a missing namespace or app fails here, with its own message
    deployments: dict[Color, dict[str, Any]] = {}
    for color in Color:
        dep = ctx.deployment(color)
        if dep is None:
            raise NotFoundError(
                f"Deployment {ctx.app.namespace}/{ctx.app.deployment(color)} does not exist: diff compares both colours",
                remedy="Deploy the idle colour first (`bluegreen deploy`), or check --app.",
            )
        deployments[color] = dep
    copies = ctx.config_copies()
    templates = {c: d["spec"]["template"] for c, d in deployments.items()}
    views = {
        c: manifests.normalized(t, color_label=ctx.app.color_label, originals=copies, mask_images=True)
        for c, t in templates.items()
    }
    refs = {
        c: {(kind, copies.get((kind, name), name)): name for kind, name in manifests.references(t)}
        for c, t in templates.items()
    }
    contents: dict[str, dict[str, Any] | None] = {}
    for color_refs in refs.values():
        for (kind, _), name in color_refs.items():
            if (kind, name) in copies and name not in contents:
                contents[name] = _content(ctx, kind, name)
    releases = {c: intent.Release.of(c, d, ctx.app.color_label) for c, d in deployments.items()}
    newest = max(Color, key=lambda c: releases[c].seq) if any(r.seq for r in releases.values()) else None
    declared = None
    if newest is not None:
        declared = drift.decode(
            ((deployments[newest].get("metadata") or {}).get("annotations") or {}).get(drift.DECLARED)
        )
    edited = {}
    for color, release in releases.items():
        recorded = (release.candidate or {}).get("hash")
        if recorded and recorded != release.hash:
            edited[color] = (
                f"changed after deploy #{release.seq} wrote it: its template is {release.hash}, "
                f"deploy recorded {recorded}"
            )
    findings = drift.compare(
        templates=views, refs=refs, contents=contents, newest=newest, declared=declared, edited=edited
    )

    result = Result(phase="diff", result="clean", app=ctx.app.name, namespace=ctx.app.namespace)
    state_active = None
    try:
        from bluegreen import routers

        state_active = routers.make(ctx.router_name(), ctx.app, ctx.kube).read().active
    except NotFoundError:
        pass
    result.active_color = str(state_active) if state_active else None
    for color, template in templates.items():
        result.images[str(color)] = [
            c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []
        ]
    drifted = [f for f in findings if f.drift]
    result.result = "drift" if drifted else "clean"
    result.messages.extend(f.line() for f in findings)
    if drifted:
        result.messages.append(
            f"{len(drifted)} difference{'s' if len(drifted) != 1 else ''} beyond the release: deploy the "
            "release again (`bluegreen deploy -f ...`) to make the idle colour what the files say"
        )
    else:
        result.messages.append(
            "no drift: the colours differ only by the release"
            + (f" (deploy #{releases[newest].seq} on {newest})" if newest else "")
        )
    result.details = {
        "drift": [f.to_dict() for f in drifted],
        "release": [f.to_dict() for f in findings if not f.drift],
        "newest": str(newest) if newest else None,
    }
    return result


def _content(ctx: Context, kind: str, name: str) -> dict[str, Any] | None:
    """A copy's content and the hash of it (a Secret's values stay in memory, never in the result)."""
    obj = found(
        f"reading {kind} {ctx.app.namespace}/{name}",
        lambda: get_json(ctx.kube, f"/api/v1/namespaces/{ctx.app.namespace}/{PLURALS[kind]}/{name}"),
    )
    if obj is None:
        return None
    return {"kind": kind, **manifests.content(obj), "hash": manifests.content_hash(obj)}
