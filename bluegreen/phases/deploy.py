"""deploy: the new images on the idle colour, as many replicas as live, rolled out; live untouched.

The idle colour's pod template is the live one's with only the images (and the colour label)
changed, so the two environments stay identical but for the release.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from lightkube.resources.apps_v1 import Deployment

from bluegreen import drain, routers
from bluegreen.errors import NotFoundError, RolloutError, UsageError
from bluegreen.kube import call
from bluegreen.model import Color, Result
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of, recolored, valid_image, with_images


def check_images(image: str | None, set_images: dict[str, str]) -> None:
    """Usage errors for image arguments, before anything touches the cluster."""
    if not image and not set_images:
        raise UsageError(
            "no image given", remedy="Pass --image IMAGE, or --set-image CONTAINER=IMAGE (repeatable)."
        )
    for reference in [*([image] if image else []), *set_images.values()]:
        if not valid_image(reference):
            raise UsageError(
                f"{reference!r} is not a valid image reference",
                remedy="Use [REGISTRY/]NAME[:TAG][@sha256:DIGEST], e.g. ghcr.io/acme/shop:1.4.2.",
            )


def run(
    ctx: Context,
    *,
    image: str | None = None,
    set_images: dict[str, str] | None = None,
    timeout: float | None = None,
    keep_failed: bool = False,
) -> Result:
    set_images = set_images or {}
    check_images(image, set_images)
    ctx.service()  # a missing namespace or app fails here, with its own message
    state = routers.make(ctx.router, ctx.app, ctx.kube).read()
    live_color = state.active or Color.BLUE
    idle_color = live_color.other
    live = ctx.deployment(live_color)
    if live is None:
        raise NotFoundError(
            f"the live colour's Deployment {ctx.app.namespace}/{ctx.app.deployment(live_color)} does not exist",
            remedy="Run `bluegreen init` to adopt the app, or check --app.",
        )
    idle = ctx.deployment(idle_color)
    try:
        template = with_images(
            recolored(live["spec"]["template"], ctx.app.color_label, str(idle_color)), set_images, image
        )
    except ValueError as error:
        raise UsageError(str(error), remedy="Name the containers as the live pod template does.") from None
    replicas = live["spec"].get("replicas", 1)
    desired = _desired(ctx, live, idle, idle_color, template, replicas)

    result = Result(
        phase="deploy", result="deployed", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.active_color, result.previous_color = str(live_color), None
    result.images = {
        str(live_color): images_of(live["spec"]["template"]),
        str(idle_color): images_of(template),
    }
    verb = "create" if idle is None else "update"
    # Warned before anything is written: the rollout below is the first time these pods stop.
    findings = drain.check(desired, updates_serving_pods=bool(idle and idle["spec"].get("replicas", 1)))
    for finding in findings:
        ctx.reporter.warning(f"drain: {finding}")
        result.messages.append(f"drain: {finding}")
    result.details["drain"] = [str(f) for f in findings]
    result.changes.append(
        f"{verb} Deployment {ctx.app.deployment(idle_color)}: images {', '.join(images_of(template))}, replicas {replicas}"
    )
    if ctx.dry_run:
        _write(ctx, desired, create=idle is None, dry_run=True)
        result.result = "planned"
        result.messages.append(
            "dry run: the apiserver validated the change (dryRun=All); nothing was changed"
        )
        return result

    with ctx.lock():
        result.mark("lock taken")
        _write(ctx, desired, create=idle is None, dry_run=False)
        result.mark(f"{verb}d {ctx.app.deployment(idle_color)}")
        try:
            ctx.wait_rollout(idle_color, timeout=timeout or ctx.timeout)
        except RolloutError as failed:
            if idle is not None and not keep_failed:
                _restore(ctx, idle_color, idle, failed)
            raise
        result.mark(f"{idle_color} rolled out: {replicas}/{replicas} available")
    result.messages.append(
        f"{idle_color} runs {', '.join(images_of(template))} with {replicas} replicas; live traffic still on {live_color}"
    )
    result.details["idle_color"] = str(idle_color)
    return result


def _restore(ctx: Context, color: Color, previous: dict[str, Any], failed: RolloutError) -> None:
    """Put the idle colour back as it was: it is the rollback target, and a failed release must not
    take that away. The failure's pod reasons are already in the error."""
    current = ctx.deployment(color)
    if current is None:
        return
    current["spec"]["template"] = previous["spec"]["template"]
    current["spec"]["replicas"] = previous["spec"].get("replicas", 1)
    current.pop("status", None)
    _write(ctx, current, create=False, dry_run=False)
    failed.remedy = (
        f"{ctx.app.deployment(color)} was put back to {', '.join(images_of(previous['spec']['template']))}, so "
        "rollback keeps its target (--keep-failed leaves the failed pods for inspection). Live was not touched."
    )


def _desired(
    ctx: Context,
    live: dict[str, Any],
    idle: dict[str, Any] | None,
    color: Color,
    template: dict[str, Any],
    replicas: int,
) -> dict[str, Any]:
    """The idle Deployment as it should be: the existing one updated, or a copy of live recoloured."""
    if idle is not None:
        desired = copy.deepcopy(idle)
    else:
        desired = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": ctx.app.deployment(color),
                "namespace": ctx.app.namespace,
                "labels": {**(live["metadata"].get("labels") or {}), ctx.app.color_label: str(color)},
            },
            "spec": {
                k: v for k, v in copy.deepcopy(live["spec"]).items() if k not in ("template", "replicas")
            },
        }
        selector = desired["spec"].setdefault("selector", {}).setdefault("matchLabels", {})
        selector[ctx.app.color_label] = str(color)
    desired["spec"]["template"] = template
    desired["spec"]["replicas"] = replicas
    desired.pop("status", None)
    return desired


def _write(ctx: Context, desired: dict[str, Any], *, create: bool, dry_run: bool) -> None:
    name = desired["metadata"]["name"]
    obj = cast(Deployment, Deployment.from_dict(desired))
    if create:
        call(
            f"creating Deployment {ctx.app.namespace}/{name}",
            lambda: ctx.kube.create(obj, namespace=ctx.app.namespace, dry_run=dry_run),
            idempotent=False,
        )
    else:
        # replace() carries the resourceVersion read: a concurrent edit is a 409, not a lost update.
        call(
            f"updating Deployment {ctx.app.namespace}/{name}",
            lambda: ctx.kube.replace(obj, dry_run=dry_run),
            idempotent=False,
        )
