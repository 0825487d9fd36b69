"""The preview Service `<app>-preview` follows the candidate, as Argo Rollouts' previewService does.

`deploy` points it at the colour it deploys to before updating that colour, and the gate, which
tests the idle colour through it, points it there when it does not select it already. `switch` and
`rollback` never write it: after a switch both Services select the new live colour until the next
deploy, and after a rollback it still selects the rejected release, which stays up to be examined.

An app without a preview Service is fine: nothing here reads or writes one that does not exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bluegreen.errors import NotFoundError
from bluegreen.kube import call, found, get_json, patch_json
from bluegreen.model import AppSpec, Color

if TYPE_CHECKING:
    from lightkube import Client


def _path(app: AppSpec) -> str:
    return f"/api/v1/namespaces/{app.namespace}/services/{app.preview_service}"


def selects(kube: Client, app: AppSpec) -> str | None:
    """The colour label value the preview Service selects ('' when it selects no colour), or None
    when the app has no preview Service."""
    svc = found(f"reading Service {app.namespace}/{app.preview_service}", lambda: get_json(kube, _path(app)))
    if svc is None:
        return None
    return str(((svc.get("spec") or {}).get("selector") or {}).get(app.color_label, ""))


def change(app: AppSpec, color: Color) -> str:
    """How a write pointing the preview at `color` is listed in a result's changes."""
    return f"Service {app.namespace}/{app.preview_service}: selector {app.color_label}={color}"


def point(kube: Client, app: AppSpec, color: Color) -> str:
    """Point the preview Service at `color` (a guarded write: only while the caller holds the app's
    Lease, never once the run is cancelled); what changed, or '' when the app has none."""
    patch: dict[str, Any] = {"spec": {"selector": {app.color_label: str(color)}}}
    try:  # a merge patch of a Service that does not exist is a 404, and changes nothing
        call(
            f"pointing Service {app.namespace}/{app.preview_service} at {color}",
            lambda: patch_json(kube, _path(app), patch),
            idempotent=False,
        )
    except NotFoundError:
        return ""
    return change(app, color)


def follow(kube: Client, app: AppSpec, color: Color) -> str:
    """The preview pointed at `color` if it selects another colour: one read, and a write only when
    needed (a re-run writes nothing); what changed, or ''."""
    now = selects(kube, app)
    if now is None or now == str(color):
        return ""
    return point(kube, app, color)
