"""Reading what drift.judge needs from the cluster: both colours' Deployments, the app's config
copies and the content of those the colours reference. Used by `diff`, `status` and the gate's
`drift` check, so all three judge the same reads the same way (the judging is bluegreen/drift.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bluegreen import drift, manifests
from bluegreen.errors import NotFoundError
from bluegreen.kube import call, found, get_json, metadata_list
from bluegreen.model import AppSpec, Color

if TYPE_CHECKING:
    from lightkube import Client

PLURALS = {"ConfigMap": "configmaps", "Secret": "secrets"}


def deployments(kube: Client, app: AppSpec) -> dict[Color, dict[str, Any] | None]:
    """Each colour's Deployment as stored (None: it does not exist)."""
    out: dict[Color, dict[str, Any] | None] = {}
    for color in Color:
        name, ns = app.deployment(color), app.namespace
        out[color] = found(
            f"reading Deployment {ns}/{name}",
            lambda name=name, ns=ns: get_json(  # type: ignore[misc]
                kube, f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
            ),
        )
    return out


def config_copies(kube: Client, app: AppSpec) -> dict[tuple[str, str], str]:
    """The app's ConfigMap and Secret copies (deploy -f): (kind, copy name) -> the name it copies.
    Read as metadata only: listing Secrets never fetches their values."""
    out: dict[tuple[str, str], str] = {}
    for kind, plural in PLURALS.items():
        items = call(
            f"listing the {kind} copies of {app.name}",
            lambda plural=plural: metadata_list(  # type: ignore[misc]
                kube,
                f"/api/v1/namespaces/{app.namespace}/{plural}",
                params={"labelSelector": f"{manifests.APP_LABEL}={app.name}"},
            ),
        )
        for item in items:
            meta = item.get("metadata") or {}
            original = (meta.get("annotations") or {}).get(manifests.COPY_OF)
            if original:
                out[(kind, meta["name"])] = original
    return out


def content(kube: Client, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    """A copy's content and the hash of it (a Secret's values stay in memory, never in a result)."""
    obj = found(
        f"reading {kind} {namespace}/{name}",
        lambda: get_json(kube, f"/api/v1/namespaces/{namespace}/{PLURALS[kind]}/{name}"),
    )
    if obj is None:
        return None
    return {"kind": kind, **manifests.content(obj), "hash": manifests.content_hash(obj)}


def judged(
    kube: Client, app: AppSpec, stored: dict[Color, dict[str, Any] | None] | None = None
) -> drift.Judgement:
    """Both colours judged as they are now; `stored`: their Deployments when the caller read them.
    NotFoundError when a colour's Deployment does not exist: there is nothing to compare it with."""
    stored = deployments(kube, app) if stored is None else stored
    both: dict[Color, dict[str, Any]] = {}
    for color in Color:
        dep = stored.get(color)
        if dep is None:
            raise NotFoundError(
                f"Deployment {app.namespace}/{app.deployment(color)} does not exist: drift is judged "
                "between both colours",
                remedy="Deploy the idle colour first (`bluegreen deploy`), or check --app.",
            )
        both[color] = dep
    return drift.judge(
        both,
        config_copies(kube, app),
        lambda kind, name: content(kube, app.namespace, kind, name),
        color_label=app.color_label,
    )
