"""init: adopt an existing Deployment + Service for blue-green, with no moment without ready endpoints.

`<app>-blue` is created from the existing pod template with the colour label added; only once it is
rolled out does the Service's selector gain `colour=blue`, so the Service always has ready pods behind
it. The preview Service `<app>-preview` is created selecting green. The original Deployment is left
running for the user to scale down: bluegreen never deletes what it did not create.

`init --router R` sets the app up for R and records it on the stable Service (annotation
`bluegreen.io/router`), so later commands need no `--router`. For the routers whose frontend points
at the colour Services (ingress, gateway, smi) it creates `<app>-blue` / `<app>-green`, each selecting
its colour's pods as the Deployments select them, and checks that the live colour's lists ready
endpoints before recording. The dns router's colour Services must be LoadBalancers external-dns
publishes: init does not create them, it refuses and says what to create. Re-running `init --router R`
on an adopted app records R (the way to move an app adopted before routers were recorded).
"""

from __future__ import annotations

import copy
from typing import Any, cast

from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import history, routers
from bluegreen.errors import ConfigError, NotFoundError
from bluegreen.kube import call, found, to_dict
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of
from bluegreen.routers._common import color_service, ensure_color_services
from bluegreen.routers.dns import create_remedy, unpublishable


def run(ctx: Context, *, source: str | None = None) -> Result:
    app = ctx.app
    service = ctx.service()
    selector = dict(service["spec"].get("selector") or {})
    result = Result(
        phase="init", result="adopted", app=app.name, namespace=app.namespace, dry_run=ctx.dry_run
    )
    recorded = routers.recorded(service)
    router = ctx.router_name(service)  # a --router that disagrees with the recorded one stops here
    record = bool(ctx.router) and ctx.router != recorded
    if router == "dns":
        _check_dns_services(ctx)  # before any write: init does not create what external-dns publishes
    if selector.get(app.color_label) in ("blue", "green") and ctx.deployment(
        Color(selector[app.color_label])
    ):
        result.active_color = selector[app.color_label]
        result.messages.append(
            f"already adopted: Service {app.service} selects {app.color_label}={result.active_color}"
        )
        changed = _set_up_router(ctx, router, Color(result.active_color), record=record, result=result)
        result.result = ("planned" if ctx.dry_run else "adopted") if changed else "noop"
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
        _set_up_router(ctx, router, Color.BLUE, record=record, result=result)
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
        _set_up_router(ctx, router, Color.BLUE, record=record, result=result)
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


def _set_up_router(ctx: Context, name: str, live: Color, *, record: bool, result: Result) -> bool:
    """The router's own objects (the colour Services, checked: `live`'s lists ready endpoints), then
    `name` recorded on the stable Service when it was given and differs from the recorded one. Only
    after the check: a router whose backend is not there is not recorded. Whether anything changed."""
    app = ctx.app
    changes: list[str] = []
    router = routers.make(name, app, ctx.kube, **(ctx.router_options if name == "dns" else {}))
    if getattr(router, "uses_color_services", False):
        changes += ensure_color_services(ctx.kube, app, dry_run=ctx.dry_run)
        if not ctx.dry_run:
            with ctx.lock():
                found = router.check_backend(live)  # type: ignore[attr-defined]
            result.messages.append(f"{name} router: {found}")
    if record:
        changes.append(f"Service {app.service}: annotation {routers.RECORDED}={name}")
        if not ctx.dry_run:
            with ctx.lock():
                call(
                    f"recording router {name} on Service {app.namespace}/{app.service}",
                    lambda: ctx.kube.patch(
                        Service,
                        app.service,
                        {"metadata": {"annotations": {routers.RECORDED: name}}},
                        namespace=app.namespace,
                        patch_type=PatchType.MERGE,
                    ),
                    idempotent=True,  # the same annotation again is the same state
                )
            result.messages.append(
                f"router {name} recorded on Service {app.service}: later commands need no --router"
            )
    result.changes += changes
    return bool(changes)


def _check_dns_services(ctx: Context) -> None:
    """The dns router's colour Services exist as LoadBalancers (external-dns publishes their address);
    ConfigError naming what to create otherwise. An address not yet assigned is no reason to refuse:
    a switch to that colour waits for it (and refuses without it)."""
    app = ctx.app
    for color in Color:
        name = color_service(app, color)
        got = found(
            f"reading Service {app.namespace}/{name}",
            lambda name=name: ctx.kube.get(Service, name, namespace=app.namespace),  # type: ignore[misc]
        )
        services: dict[Color, dict[str, Any]] = {c: {} for c in Color}
        services[color] = to_dict(got) if got is not None else {}
        problem = unpublishable(app, services, color)
        if problem and "no load-balancer address" not in problem:
            raise ConfigError(
                f"dns router: {problem}; bluegreen does not create it (a ClusterIP Service has no "
                "address external-dns could publish); nothing was changed",
                remedy=create_remedy(app, color),
            )
