"""init: adopt an existing Deployment + Service for blue-green, with no moment without ready endpoints.

`<app>-blue` is created from the existing pod template with the colour label added; only once it is
rolled out does the Service's selector gain `colour=blue`, so the Service always has ready pods behind
it. The preview Service `<app>-preview` is created selecting green. The original Deployment is left
running for the user to scale down: bluegreen never deletes what it did not create.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import history
from bluegreen.errors import NotFoundError
from bluegreen.kube import call, found, to_dict
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of


def run(ctx: Context, *, source: str | None = None) -> Result:
    app = ctx.app
    service = ctx.service()
    selector = dict(service["spec"].get("selector") or {})
    result = Result(
        phase="init", result="adopted", app=app.name, namespace=app.namespace, dry_run=ctx.dry_run
    )
    if selector.get(app.color_label) in ("blue", "green") and ctx.deployment(
        Color(selector[app.color_label])
    ):
        result.result = "noop"
        result.active_color = selector[app.color_label]
        result.messages.append(
            f"already adopted: Service {app.service} selects {app.color_label}={result.active_color}"
        )
        return result
    source_name = source or app.name
    original = found(
        f"reading Deployment {app.namespace}/{source_name}",
        lambda: ctx.kube.get(Deployment, source_name, namespace=app.namespace),
    )
    if original is None:
        raise NotFoundError(
            f"Deployment {app.namespace}/{source_name} to adopt does not exist",
            remedy="Name the Deployment behind the Service with --from NAME.",
        )
    blue = blue_from(
        to_dict(original), name=app.deployment(Color.BLUE), label=app.color_label, service_selector=selector
    )
    new_selector = {**selector, app.color_label: "blue"}
    preview = preview_service(
        service, name=app.preview_service, selector={**selector, app.color_label: "green"}
    )
    result.images = {"blue": images_of(blue["spec"]["template"])}
    result.changes += [
        f"create Deployment {blue['metadata']['name']} from {source_name} ({blue['spec'].get('replicas', 1)} replicas)",
        f"Service {app.service}: selector {selector} -> {new_selector}",
        f"create Service {app.preview_service} selecting green",
    ]
    if ctx.dry_run:
        _create_blue(ctx, blue, dry_run=True)
        _create_preview(ctx, preview, dry_run=True)
        result.result = "planned"
        result.messages.append(
            "dry run: the apiserver validated the new objects (dryRun=All); nothing was changed"
        )
        return result
    with ctx.lock():
        if ctx.deployment(Color.BLUE) is None:
            _create_blue(ctx, blue, dry_run=False)
        ctx.wait_rollout(Color.BLUE, timeout=ctx.timeout)
        result.mark("blue rolled out")
        patch: dict[str, Any] = {
            "metadata": {
                "resourceVersion": service["metadata"]["resourceVersion"],
                "annotations": {history.ACTIVE: "blue"},
            },
            "spec": {"selector": new_selector},
        }
        call(
            f"pointing Service {app.namespace}/{app.service} at blue",
            lambda: ctx.kube.patch(
                Service, app.service, patch, namespace=app.namespace, patch_type=PatchType.MERGE
            ),
            idempotent=False,
        )
        result.mark("Service selects blue")
        if (
            found(
                f"reading Service {app.preview_service}",
                lambda: ctx.kube.get(Service, app.preview_service, namespace=app.namespace),
            )
            is None
        ):
            _create_preview(ctx, preview, dry_run=False)
        history.event(
            ctx.kube,
            app,
            reason="Adopted",
            note=f"bluegreen adopted {source_name}: Service {app.service} now selects blue",
        )
    result.active_color = "blue"
    result.messages.append(
        f"Deployment {source_name} still runs but no longer receives traffic from {app.service}; "
        f"scale it down when you are ready: kubectl -n {app.namespace} scale deployment {source_name} --replicas=0"
    )
    return result


def blue_from(
    original: dict[str, Any], *, name: str, label: str, service_selector: dict[str, str]
) -> dict[str, Any]:
    """The blue Deployment: the original's spec, its pods labelled blue and selected by colour (pure)."""
    spec = copy.deepcopy(original["spec"])
    template_labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
    template_labels.update(service_selector)  # the pods must match the live Service's selector
    template_labels[label] = "blue"
    spec["selector"] = {"matchLabels": {**(spec.get("selector") or {}).get("matchLabels", {}), label: "blue"}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": original["metadata"]["namespace"],
            "labels": {**(original["metadata"].get("labels") or {}), label: "blue"},
        },
        "spec": spec,
    }


def preview_service(live: dict[str, Any], *, name: str, selector: dict[str, str]) -> dict[str, Any]:
    keep = ("name", "port", "targetPort", "protocol", "appProtocol")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": live["metadata"]["namespace"],
            "labels": live["metadata"].get("labels") or {},
        },
        "spec": {
            "selector": selector,
            "ports": [{k: p[k] for k in keep if k in p} for p in live["spec"].get("ports") or []],
        },
    }


def _create_blue(ctx: Context, blue: dict[str, Any], *, dry_run: bool) -> None:
    obj = cast(Deployment, Deployment.from_dict(blue))
    call(
        f"creating Deployment {ctx.app.namespace}/{blue['metadata']['name']}",
        lambda: ctx.kube.create(obj, dry_run=dry_run),
        idempotent=False,
    )


def _create_preview(ctx: Context, preview: dict[str, Any], *, dry_run: bool) -> None:
    obj = cast(Service, Service.from_dict(preview))
    call(
        f"creating Service {ctx.app.namespace}/{preview['metadata']['name']}",
        lambda: ctx.kube.create(obj, dry_run=dry_run),
        idempotent=False,
    )
