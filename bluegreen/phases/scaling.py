"""HorizontalPodAutoscalers and PodDisruptionBudgets per colour (deploy -f).

Each one in the manifests is applied once per colour, targeting that colour only
(manifests.per_color): `<name>-<colour>`, labelled with the app and the colour. Deploy applies the
idle colour's after writing its Deployment and deletes the idle colour's that the release no longer
holds; the live colour's are never touched. A retired colour (scaled to 0) is not scaled back up
by its HPA: the HPA controller disables autoscaling while the target's replicas are 0, and a
rollback that scales the colour up again re-enables it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bluegreen.kube import call, delete_json, metadata_list, write_json
from bluegreen.model import Color
from bluegreen.phases.context import Context

if TYPE_CHECKING:
    from bluegreen.manifests import Manifests

PATHS = {
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


def objects(ctx: Context, found: Manifests | None, color: Color) -> list[dict[str, Any]]:
    """The colour's HPAs and PDBs from the manifests (none for an image-only deploy)."""
    from bluegreen import manifests

    if found is None:
        return []
    return [
        manifests.per_color(
            doc.obj,
            app=ctx.app.name,
            namespace=ctx.app.namespace,
            deployment=ctx.app.deployment(color),
            color_label=ctx.app.color_label,
            color=str(color),
        )
        for doc in found.scaling
    ]


def apply(ctx: Context, objs: list[dict[str, Any]], *, dry_run: bool) -> None:
    """Server-side apply as field manager `bluegreen`; a dry run is a read, a real one a write."""
    for obj in objs:
        kind, name = obj["kind"], obj["metadata"]["name"]
        path = PATHS[kind].format(ns=ctx.app.namespace) + f"/{name}"
        call(
            f"applying {kind} {ctx.app.namespace}/{name}" + (" (dry run)" if dry_run else ""),
            lambda obj=obj, path=path: write_json(  # type: ignore[misc]
                ctx.kube, "PATCH", path, obj, dry_run=dry_run, apply=True
            ),
            idempotent=dry_run,
        )


def prune(ctx: Context, color: Color, keep: list[dict[str, Any]]) -> list[str]:
    """Delete the colour's HPAs and PDBs the release does not hold; what was deleted."""
    from bluegreen import manifests

    kept = {(o["kind"], o["metadata"]["name"]) for o in keep}
    selector = f"{manifests.APP_LABEL}={ctx.app.name},{manifests.COLOR_OF}={color}"
    deleted: list[str] = []
    for kind, base in PATHS.items():
        path = base.format(ns=ctx.app.namespace)
        items = call(
            f"listing the {color} {kind}s of {ctx.app.name}",
            lambda path=path: metadata_list(ctx.kube, path, params={"labelSelector": selector}),  # type: ignore[misc]
        )
        for item in items:
            name = (item.get("metadata") or {}).get("name", "")
            if (kind, name) in kept:
                continue
            call(
                f"deleting {kind} {ctx.app.namespace}/{name}",
                lambda name=name, path=path: delete_json(ctx.kube, f"{path}/{name}"),  # type: ignore[misc]
                idempotent=False,
            )
            deleted.append(f"{kind} {name}")
    return deleted
