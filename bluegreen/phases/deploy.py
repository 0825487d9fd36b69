"""deploy: the new images on the idle colour, as many replicas as live, rolled out; live untouched.

The idle colour's pod template is the live one's with only the images (and the colour label)
changed, so the two environments stay identical but for the release. With manifests (`-f`), the
template is the one in the user's files instead (bluegreen/manifests.py), and their ConfigMaps and
Secrets are applied first as immutable content-named copies that only this colour's new template
references: the live colour's pods and config are never touched.

The release is recorded on the idle Deployment, in the same write as its template: the candidate
annotation (bluegreen/intent.py) that `switch` promotes. Re-running deploy is safe: when live already
runs the release it changes nothing (the rollback target is never overwritten by the live release),
and when the idle colour already runs it the write is skipped and its gate stamp stays valid.

The preview Service follows the candidate (bluegreen/preview.py): under the lock, before the idle
colour is updated, it is pointed at that colour if it selects the other one (after a switch it
selects the new live colour), so during the rollout it serves the release being rolled out.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from bluegreen import drain, drift, intent, preview, routers, telemetry
from bluegreen.errors import ConflictError, NotFoundError, RefusedError, RolloutError, UsageError
from bluegreen.kube import call, found, get_json, write_json
from bluegreen.model import Color, Result
from bluegreen.patching import PATCHED, released_as
from bluegreen.phases import scaling
from bluegreen.phases.context import Context
from bluegreen.rollout import images_of, recolored, valid_image, with_images

COPY_OF = "bluegreen.io/copy-of"  # bluegreen.manifests.COPY_OF, without importing it for image-only deploys

if TYPE_CHECKING:
    from bluegreen.manifests import Manifests

CONFLICT_RETRIES = 3
PLURALS = {"ConfigMap": "configmaps", "Secret": "secrets", "Service": "services"}
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def check_images(image: str | None, set_images: dict[str, str], *, manifests: bool = False) -> None:
    """Usage errors for image arguments, before anything touches the cluster. With manifests the
    images are optional: the files name them, --image/--set-image override them."""
    if not image and not set_images and not manifests:
        raise UsageError(
            "no image given",
            remedy="Pass --image IMAGE, or --set-image CONTAINER=IMAGE (repeatable), or -f with the app's manifests.",
        )
    for reference in [*([image] if image else []), *set_images.values()]:
        if not valid_image(reference):
            raise UsageError(
                f"{reference!r} is not a valid image reference",
                remedy="Use [REGISTRY/]NAME[:TAG][@sha256:DIGEST], e.g. ghcr.io/acme/shop:1.4.2.",
            )


@telemetry.traced("deploy")
def run(
    ctx: Context,
    *,
    image: str | None = None,
    set_images: dict[str, str] | None = None,
    timeout: float | None = None,
    keep_failed: bool = False,
    manifests: Manifests | None = None,
    copy_cluster_config: bool = False,
) -> Result:
    set_images = set_images or {}
    check_images(image, set_images, manifests=manifests is not None)
    live_service = ctx.service()  # a missing namespace or app fails here, with its own message
    state = routers.make(ctx.router_name(live_service), ctx.app, ctx.kube).read()
    if state.active is None:
        raise split_route(state.detail, "deploy would write onto a colour that serves traffic")
    live_color = state.active
    idle_color = live_color.other
    live = ctx.deployment(live_color)
    if live is None:
        raise NotFoundError(
            f"the live colour's Deployment {ctx.app.namespace}/{ctx.app.deployment(live_color)} does not exist",
            remedy="Run `bluegreen init` to adopt the app, or check --app.",
        )
    idle = ctx.deployment(idle_color)
    base = None
    if manifests is not None:
        base = _from_manifests(ctx, manifests, idle_color, idle)
        source = base["spec"]["template"]
    else:
        source = recolored(live["spec"]["template"], ctx.app.color_label, str(idle_color))
    try:
        template = with_images(source, set_images, image)
    except ValueError as error:
        raise UsageError(
            str(error),
            remedy="Name the containers as the pod template (the live one, or the manifests') does.",
        ) from None
    replicas = live["spec"].get("replicas", 1)
    label = ctx.app.color_label
    configs = _config_objects(ctx, manifests)
    if copy_cluster_config:
        # After the files' own config was renamed: what the template still names is in the cluster.
        ours = {(c["kind"], c["metadata"]["name"]) for c in configs}
        template, found = _cluster_config(ctx, template, ours)
        configs = [*found, *configs]
    per_color = scaling.objects(ctx, manifests, idle_color)  # the idle colour's HPAs and PDBs
    if base is not None:
        # The apiserver validates everything (dryRun=All, unknown fields refused) before the first
        # real write, so a bad manifest changes nothing; and the template it would store, with its
        # defaults filled in, is what the release is judged by (hashes, live's, the drift record).
        _apply(ctx, configs, dry_run=True)
        scaling.apply(ctx, per_color, dry_run=True)
        trial = _desired(ctx, live, idle, idle_color, template, replicas, {"hash": ""}, base=base)
        trial["metadata"].pop("resourceVersion", None)  # a trial: the real write below is the guarded one
        template = _write(ctx, trial, create=idle is None, dry_run=True)["spec"]["template"]
    releases = {
        live_color: intent.Release.of(live_color, live, label),
        idle_color: intent.Release.of(idle_color, idle, label),
    }
    release = intent.template_hash(template, label)
    patched_note = ""
    for color, dep in ((live_color, live), (idle_color, idle)):
        if dep is not None and release in released_as(dep, label):
            # That colour runs this release, patched since (`bluegreen patch`): the patched template is
            # this release, so a re-run of its deploy never puts the unpatched images back.
            template, release = dep["spec"]["template"], releases[color].hash
            patched_note = f"{color} runs this release with patched images since: kept as it is"
            break

    result = Result(
        phase="deploy", result="deployed", app=ctx.app.name, namespace=ctx.app.namespace, dry_run=ctx.dry_run
    )
    result.active_color, result.previous_color = str(live_color), None
    result.candidate = release
    result.images = {
        str(live_color): images_of(live["spec"]["template"]),
        str(idle_color): images_of(template),
    }
    if patched_note:
        result.messages.append(patched_note)
    if releases[live_color].hash == release:
        # A re-run after the switch: the idle colour is the rollback target, never overwrite it.
        result.result = "noop"
        result.messages.append(
            f"live ({live_color}) already runs this release (template {release}): nothing to deploy"
        )
        result.details["candidate"] = {"color": str(live_color), "hash": release}
        return result
    sent = (releases[idle_color].candidate or {}).get("sent")
    # The same release on idle: its stored template hashes the same, or it is the one we last sent
    # (in case the apiserver's defaulting changed what we sent) and nobody changed it since.
    unchanged = idle is not None and (
        releases[idle_color].hash == release
        or (
            sent == release
            and (releases[idle_color].candidate or {}).get("hash") == releases[idle_color].hash
        )
    )
    # Recorded: its candidate describes this very template. A re-deploy of it keeps that record (its
    # deploy number too), so re-running an old deploy never makes an old release the newest one.
    recorded = (releases[idle_color].candidate or {}).get("hash") == releases[idle_color].hash
    scaled = (idle or {}).get("spec", {}).get("replicas", 1) == replicas  # e.g. not retired since
    skip = unchanged and recorded and scaled
    candidate: dict[str, Any] = (
        dict(releases[idle_color].candidate or {})
        if unchanged and recorded
        else {
            "hash": release,
            "sent": release,
            "images": images_of(template),
            "seq": intent.next_seq(releases),
            "run_id": ctx.run.run_id,
            "run_url": ctx.run.run_url,
            "actor": ctx.run.actor,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    desired = _desired(ctx, live, idle, idle_color, template, replicas, candidate, base=base)
    copies = ctx.config_copies() if manifests is not None or copy_cluster_config else {}
    copies.update(
        {(c["kind"], c["metadata"]["name"]): c["metadata"]["annotations"][COPY_OF] for c in configs}
    )
    declared = _declared(ctx, live["spec"]["template"], template, copies)
    desired["metadata"]["annotations"][drift.DECLARED] = drift.encode(declared)
    if manifests is not None:
        # What the release changes beyond images, for the job summary: paths and names, no values.
        beyond = list(dict.fromkeys([*map(_item, declared["template"]), *declared["config"]]))
        result.details["beyond_images"] = beyond
        shown = ", ".join(beyond[:8]) + (f" and {len(beyond) - 8} more" if len(beyond) > 8 else "")
        result.messages.append(
            f"beyond images, this release changes {shown} (against live {live_color})"
            if beyond
            else f"beyond images, this release changes nothing against live {live_color}"
        )
    result.candidate = candidate["hash"]
    result.details["candidate"] = {"color": str(idle_color), **candidate}
    if unchanged and recorded and releases[idle_color].seq < releases[live_color].seq:
        result.messages.append(
            f"{idle_color} already runs this release as deploy #{releases[idle_color].seq}, older than live's "
            f"#{releases[live_color].seq}: `switch` alone leaves live as it is; to go back to it, "
            f"`bluegreen rollback` or `bluegreen switch --to {idle_color}`"
        )
    if releases[idle_color].is_rejected and unchanged:
        result.messages.append(
            f"this release was rolled back before ({(releases[idle_color].rejected or {}).get('time', '?')}): "
            "switch refuses it unless --force; deploy a new release instead"
        )
    verb = "create" if idle is None else "update"
    # Warned before anything is written: the rollout below is the first time these pods stop.
    findings = drain.check(desired, updates_serving_pods=bool(idle and idle["spec"].get("replicas", 1)))
    for finding in findings:
        ctx.reporter.warning(f"drain: {finding}")
        result.messages.append(f"drain: {finding}")
    result.details["drain"] = [str(f) for f in findings]
    for obj in configs:
        meta = obj["metadata"]
        if obj["kind"] == "Service":
            result.changes.append(f"apply Service {meta['name']}")
        else:  # names only: a Secret's values are never printed
            result.changes.append(
                f"apply {obj['kind']} {meta['name']} (copy of {meta['annotations'][COPY_OF]})"
            )
    result.details["config"] = {
        f"{c['kind']} {c['metadata']['annotations'][COPY_OF]}": c["metadata"]["name"]
        for c in configs
        if c["kind"] != "Service"
    }
    result.changes += [f"apply {o['kind']} {o['metadata']['name']}" for o in per_color]
    result.changes.append(
        f"{verb} Deployment {ctx.app.deployment(idle_color)}: images {', '.join(images_of(template))}, replicas {replicas}"
    )
    if ctx.dry_run:
        _write(ctx, desired, create=idle is None, dry_run=True)
        if preview.selects(ctx.kube, ctx.app) not in (None, str(idle_color)):
            result.changes.append(preview.change(ctx.app, idle_color))
        result.result = "planned"
        result.messages.append(
            "dry run: the apiserver validated the change (dryRun=All); nothing was changed"
        )
        return result

    with ctx.lock():
        result.mark("lock taken")
        # The preview Service follows the candidate (bluegreen/preview.py): on the colour about to be
        # updated before its rollout starts, so smoke tests never reach the live colour through it.
        pointed = preview.follow(ctx.kube, ctx.app, idle_color)
        if skip:
            result.changes[-1] = (
                f"Deployment {ctx.app.deployment(idle_color)} already runs this release: not written"
            )
        else:
            # The copies first: the new pods must find their config when they start.
            _apply(ctx, configs, dry_run=False)
            stored = _write_settled(ctx, desired, idle, idle_color)
            _fix_record(
                ctx,
                stored,
                candidate,
                _declared(ctx, live["spec"]["template"], stored["spec"]["template"], copies),
            )
            result.candidate = candidate["hash"]
            result.details["candidate"] = {"color": str(idle_color), **candidate}
            result.mark(f"{verb}d {ctx.app.deployment(idle_color)}")
        if pointed:
            result.changes.append(pointed)
        if manifests is not None:
            # After the Deployment they target exists; only the idle colour's, never live's.
            scaling.apply(ctx, per_color, dry_run=False)
            result.changes += [f"deleted {gone}" for gone in scaling.prune(ctx, idle_color, per_color)]
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


def _write_settled(
    ctx: Context, desired: dict[str, Any], idle: dict[str, Any] | None, color: Color
) -> dict[str, Any]:
    """The write, retried when only the Deployment's status moved on since it was read (its controller
    writes status often, e.g. right after a scale); a change to its spec or annotations by anyone else
    stays a conflict."""
    for _ in range(CONFLICT_RETRIES):
        try:
            return _write(ctx, desired, create=idle is None, dry_run=False)
        except ConflictError:
            current = ctx.deployment(color)
            if idle is None or current is None or not _same_but_status(idle, current):
                raise
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    return _write(ctx, desired, create=idle is None, dry_run=False)


def _same_but_status(before: dict[str, Any], now: dict[str, Any]) -> bool:
    def essence(dep: dict[str, Any]) -> tuple[Any, ...]:
        meta = dep.get("metadata") or {}
        return dep.get("spec"), meta.get("annotations"), meta.get("labels")

    return essence(before) == essence(now)


def split_route(detail: str, why: str) -> RefusedError:
    """The refusal for a route that sends traffic to both colours (or to none): never guess which is live."""
    return RefusedError(
        f"traffic is not on one colour ({detail}): {why}",
        remedy="Settle it first: `bluegreen switch --to blue` (or green) moves all traffic to one colour.",
    )


def _fix_record(
    ctx: Context, stored: dict[str, Any], candidate: dict[str, Any], declared: dict[str, Any]
) -> None:
    """The candidate and the declared differences describe the template as the apiserver stored it;
    if defaulting changed the template we sent, correct them (guarded: a later write wins)."""
    stored_hash = intent.template_hash(stored["spec"]["template"], ctx.app.color_label)
    annotations = (stored.get("metadata") or {}).get("annotations") or {}
    record = drift.encode(declared)
    if stored_hash == candidate["hash"] and annotations.get(drift.DECLARED) == record:
        return
    candidate["hash"] = stored_hash
    name = stored["metadata"]["name"]
    patch: dict[str, Any] = {
        "metadata": {
            "resourceVersion": stored["metadata"]["resourceVersion"],
            "annotations": {intent.CANDIDATE: intent.encode(candidate), drift.DECLARED: record},
        }
    }
    call(
        f"recording the candidate on Deployment {ctx.app.namespace}/{name}",
        lambda: ctx.kube.patch(
            Deployment, name, patch, namespace=ctx.app.namespace, patch_type=PatchType.MERGE
        ),
        idempotent=False,
    )


def _restore(ctx: Context, color: Color, previous: dict[str, Any], failed: RolloutError) -> None:
    """Put the idle colour back as it was: it is the rollback target, and a failed release must not
    take that away. The failure's pod reasons are already in the error."""
    current = ctx.deployment(color)
    if current is None:
        return
    current["spec"]["template"] = previous["spec"]["template"]
    current["spec"]["replicas"] = previous["spec"].get("replicas", 1)
    # Its recorded candidate, gate stamp and rejection go back too: they describe that template.
    current["metadata"]["annotations"] = (previous.get("metadata") or {}).get("annotations") or {}
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
    candidate: dict[str, Any],
    *,
    base: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The idle Deployment as it should be: the manifests' (`base`), the existing one updated, or a
    copy of live recoloured; carrying the candidate, and no gate stamp of an earlier template."""
    if base is not None:
        desired = copy.deepcopy(base)
        if idle is not None:
            desired["metadata"]["resourceVersion"] = idle["metadata"]["resourceVersion"]
            # Our own records stay (the candidate, gate stamp and rejection are decided below).
            ours = {
                k: v
                for k, v in ((idle.get("metadata") or {}).get("annotations") or {}).items()
                if k.startswith("bluegreen.io/")
            }
            desired["metadata"]["annotations"] = {**(desired["metadata"].get("annotations") or {}), **ours}
    elif idle is not None:
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
    annotations = desired["metadata"].setdefault("annotations", {}) or {}
    if (intent.stamp(annotations, intent.GATE) or {}).get("hash") != candidate["hash"]:
        annotations.pop(intent.GATE, None)
    if (intent.stamp(annotations, PATCHED) or {}).get("hash") != candidate["hash"]:
        annotations.pop(PATCHED, None)  # a patch stamp describes the template this write replaces
    annotations[intent.CANDIDATE] = intent.encode(candidate)
    desired["metadata"]["annotations"] = annotations
    return desired


def _write(ctx: Context, desired: dict[str, Any], *, create: bool, dry_run: bool) -> dict[str, Any]:
    name = desired["metadata"]["name"]
    path = f"/apis/apps/v1/namespaces/{ctx.app.namespace}/deployments"
    if create:
        return call(
            f"creating Deployment {ctx.app.namespace}/{name}",
            lambda: write_json(ctx.kube, "POST", path, desired, dry_run=dry_run),
            idempotent=False,
        )
    # A whole replace carrying the resourceVersion read: a concurrent edit is a 409, not a lost update;
    # and every field of the template is ours, so an earlier `kubectl edit` of the idle colour does not
    # survive the release (server-side apply would keep fields another manager added).
    return call(
        f"updating Deployment {ctx.app.namespace}/{name}",
        lambda: write_json(ctx.kube, "PUT", f"{path}/{name}", desired, dry_run=dry_run),
        idempotent=False,
    )


# -- manifests (-f) -------------------------------------------------------------------------------


def _from_manifests(
    ctx: Context, found: Manifests, color: Color, idle: dict[str, Any] | None
) -> dict[str, Any]:
    """The idle colour's Deployment from the manifests, refused (exit 2, nothing written) when it
    cannot take the place of the existing one or would not be reached by the live Service."""
    from bluegreen import manifests

    dep = manifests.colored(
        found,
        name=ctx.app.deployment(color),
        namespace=ctx.app.namespace,
        color_label=ctx.app.color_label,
        color=str(color),
    )
    where = found.deployment
    if idle is not None and (idle.get("spec") or {}).get("selector") != dep["spec"]["selector"]:
        raise UsageError(
            f"{where}: its selector {dep['spec']['selector']} (with the colour label) differs from "
            f"{ctx.app.deployment(color)}'s {(idle.get('spec') or {}).get('selector')}, and a Deployment's "
            "selector cannot change",
            remedy=f"Keep the selector the colours have, or delete {ctx.app.deployment(color)} (the idle "
            "colour, not serving) and deploy again.",
        )
    if ctx.router_name() == "service":
        selector = dict(((ctx.service().get("spec") or {}).get("selector")) or {})
        selector.pop(ctx.app.color_label, None)
        labels = dep["spec"]["template"]["metadata"]["labels"]
        missing = {k: v for k, v in selector.items() if labels.get(k) != v}
        if missing:
            raise UsageError(
                f"{where}: its pod labels lack {missing}, which the live Service {ctx.app.service} "
                "selects: after a switch no pod would answer",
                remedy="Give the pod template the labels the live Service selects.",
            )
    return dep


def _config_objects(ctx: Context, found: Manifests | None) -> list[dict[str, Any]]:
    """What is applied before the Deployment: the config copies, then other Services as written."""
    from bluegreen import manifests

    if found is None:
        return []
    out = [manifests.config_copy(d.obj, app=ctx.app.name, namespace=ctx.app.namespace) for d in found.configs]
    for doc in found.services:
        service = copy.deepcopy(doc.obj)
        service["metadata"]["namespace"] = ctx.app.namespace
        out.append(service)
    return out


def _cluster_config(
    ctx: Context, template: dict[str, Any], ours: set[tuple[str, str]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """--copy-cluster-config: the ConfigMaps and Secrets the template names, read from the cluster
    and copied for this colour as the manifests' are (content-hash names, immutable), with the
    template pointing at the copies. A reference to a copy is taken back to its original, so each
    release copies the original's content as it is then (the same content, the same copy). What is
    not in the cluster is left as written (an optional reference, or one the pods will report)."""
    from bluegreen import driftread, manifests

    out: list[dict[str, Any]] = []
    renames: dict[tuple[str, str], str] = {}
    for (kind, name), source in manifests.cluster_sources(template, ctx.config_copies()).items():
        if (kind, name) in ours:
            continue  # the manifests' own copy, made from the files
        obj = found(
            f"reading {kind} {ctx.app.namespace}/{source}",
            lambda kind=kind, source=source: get_json(  # type: ignore[misc]
                ctx.kube, f"/api/v1/namespaces/{ctx.app.namespace}/{driftread.PLURALS[kind]}/{source}"
            ),
        )
        if obj is None:
            if source != name:
                continue  # its original is gone: the existing copy stays referenced
            ctx.reporter.warning(
                f"{kind} {source}, which the pod template names, is not in the cluster: not copied"
            )
            continue
        meta = obj.get("metadata") or {}
        if manifests.COPY_OF in (meta.get("annotations") or {}):
            continue  # a copy already (of another app, or unlabelled): immutable, shared as it is
        # kubectl's last-applied annotation holds a Secret's values in clear: never copied along.
        meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
        made = manifests.config_copy(obj, app=ctx.app.name, namespace=ctx.app.namespace)
        renames[(kind, name)] = made["metadata"]["name"]
        if all(c["metadata"]["name"] != made["metadata"]["name"] or c["kind"] != kind for c in out):
            out.append(made)
    return manifests.renamed(template, renames), out


def _apply(ctx: Context, objects: list[dict[str, Any]], *, dry_run: bool) -> None:
    """Server-side apply, as field manager `bluegreen`. An existing copy has the same content (its
    name is its content's hash), so re-applying it changes nothing."""
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        path = f"/api/v1/namespaces/{ctx.app.namespace}/{PLURALS[kind]}/{name}"
        call(
            f"applying {kind} {ctx.app.namespace}/{name}" + (" (dry run)" if dry_run else ""),
            lambda obj=obj, path=path: write_json(  # type: ignore[misc]
                ctx.kube, "PATCH", path, obj, dry_run=dry_run, apply=True
            ),
            # A dry run is a read; a real apply is a write: sent only while this run holds the lock.
            idempotent=dry_run,
        )


def _item(path: str) -> str:
    """A template path cut to the named item it is in: spec.containers[app].env[GREETING] for its
    fields deeper down; spec.containers[app].resources stays as it is."""
    head, bracket, _ = path.rpartition("]")
    in_container = path.startswith(("spec.containers[", "spec.initContainers[")) and path.count("]") == 1
    return head + bracket if bracket and not in_container else path


def _declared(
    ctx: Context, live: dict[str, Any], idle: dict[str, Any], copies: dict[tuple[str, str], str]
) -> dict[str, Any]:
    """How the idle colour's template and config differ from live's (bluegreen/drift.py)."""
    from bluegreen import manifests

    def view(template: dict[str, Any]) -> dict[str, Any]:
        return manifests.normalized(
            template, color_label=ctx.app.color_label, originals=copies, mask_images=True
        )

    def refs(template: dict[str, Any]) -> dict[tuple[str, str], str]:
        return {(kind, copies.get((kind, name), name)): name for kind, name in manifests.references(template)}

    return drift.record(view(live), view(idle), refs(live), refs(idle))
