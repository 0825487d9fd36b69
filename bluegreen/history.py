"""The audit trail on the live Service: active and previous colour, the last 20 switches, and Events.

The annotations make the cluster the source of truth: rollback needs nothing but cluster access.
The history is bounded by size as well as by count (MAX_BYTES, MAX_REASON) so that no reason, however
long, can push the Service past the apiserver's annotation limit after traffic has moved.

Routers whose object is not the live Service cannot move traffic and record it in one write: they
record the intent first (SWITCHING_TO on the live Service), write their object, then record the
switch and clear the intent; `lags()` tells whoever reads the history whether it trails the router.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bluegreen.errors import ConflictError
from bluegreen.kube import call, get_json, patch_json, write_json
from bluegreen.lock import micro_time
from bluegreen.model import AppSpec, RunInfo

if TYPE_CHECKING:
    from lightkube import Client

ACTIVE = "bluegreen.io/active-color"
PREVIOUS = "bluegreen.io/previous-color"
HISTORY = "bluegreen.io/history"
SWITCHING_TO = "bluegreen.io/switching-to"
# Migration hook runs (expand, post-switch, contract), newest first: apart from the switch history,
# whose newest entry is the last switch (retire's window and rollback read it as such).
MIGRATIONS = "bluegreen.io/migrations"
# Patches of a colour's images that moved no traffic (`bluegreen patch`), newest first, entries with
# action "patch": apart from the switch history for the same reason as the migrations.
PATCHES = "bluegreen.io/patches"
KEEP = 20
MAX_BYTES = 64 * 1024  # the history annotation's size; the apiserver allows 256 KiB for all annotations
MAX_REASON = 1000  # characters of a reason kept in the history (the Event's note is cut at 1024)
RECORD_ATTEMPTS = 5


class NotRecorded(Exception):
    """The history could not be written (other writers won every attempt): report it, never drop it."""


def entry(
    *,
    from_color: str | None,
    to_color: str,
    images: dict[str, list[str]],
    run: RunInfo,
    reason: str,
    action: str,
    timings: dict[str, float | None],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": os.urandom(6).hex(),  # names this entry for the amendment that adds its timings
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "from": from_color,
        "to": to_color,
        "images": images,
        "run_id": run.run_id,
        "run_url": run.run_url,
        "actor": run.actor,
        "correlation_id": run.correlation_id,
        "reason": bounded_reason(reason),
        "timings_ms": {k: round(v, 1) for k, v in timings.items() if v is not None},
        **(extra or {}),
    }


def bounded_reason(reason: str) -> str:
    """The reason as recorded: cut to MAX_REASON characters, saying how long it was (pure)."""
    if len(reason) <= MAX_REASON:
        return reason
    return f"{reason[:MAX_REASON]}… (cut from {len(reason)} characters)"


def parse(annotations: dict[str, str] | None) -> list[dict[str, Any]]:
    """The recorded history, newest first; a damaged annotation reads as empty, never as an error."""
    raw = (annotations or {}).get(HISTORY)
    if not raw:
        return []
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError:
        return []
    return [e for e in loaded if isinstance(e, dict)] if isinstance(loaded, list) else []


def encoded(entries: list[dict[str, Any]]) -> str:
    """The history annotation for `entries` (newest first): at most KEEP entries and MAX_BYTES, the
    oldest dropped first; the newest is always kept (its reason is bounded, so it fits) (pure)."""
    kept = entries[:KEEP]
    text = json.dumps(kept, separators=(",", ":"))
    while len(text.encode()) > MAX_BYTES and len(kept) > 1:
        kept = kept[:-1]
        text = json.dumps(kept, separators=(",", ":"))
    return text


def appended(annotations: dict[str, str] | None, new: dict[str, Any]) -> str:
    """The history annotation with `new` first, bounded by count and size (pure)."""
    return encoded([new, *parse(annotations)])


def switched_annotations(
    annotations: dict[str, str] | None, new: dict[str, Any], *, active: str, previous: str | None
) -> dict[str, str | None]:
    """The annotations a switch writes on the live Service: the new state, the history with `new`
    first, and no intent left behind (None deletes in a merge patch) (pure)."""
    return {ACTIVE: active, PREVIOUS: previous, HISTORY: appended(annotations, new), SWITCHING_TO: None}


def amended(annotations: dict[str, str] | None, entry_id: str, extra: dict[str, Any]) -> str | None:
    """The history with the entry `entry_id` updated by `extra`; None when that entry is gone (pure)."""
    entries = parse(annotations)
    for item in entries:
        if item.get("id") == entry_id:
            item.update(extra)
            return encoded(entries)
    return None


def migrations(annotations: dict[str, str] | None) -> list[dict[str, Any]]:
    """The recorded migration hook runs, newest first; a damaged annotation reads as empty (pure)."""
    return parse({HISTORY: (annotations or {}).get(MIGRATIONS, "")})


def record_migration(kube: Client, app: AppSpec, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Prepend a hook run to the migration history, bounded like the switch history; returns it as
    written, newest first (NotRecorded if other writers won every attempt)."""
    return _patch_service(
        kube,
        app,
        f"recording the {new.get('hook')} hook run",
        lambda found: {MIGRATIONS: encoded([new, *migrations(found)])},
    )


def patches(annotations: dict[str, str] | None) -> list[dict[str, Any]]:
    """The recorded patches, newest first; a damaged annotation reads as empty (pure)."""
    return parse({HISTORY: (annotations or {}).get(PATCHES, "")})


def with_patch(annotations: dict[str, str] | None, new: dict[str, Any]) -> str | None:
    """The patch history with `new` first, bounded like the switch history; None when an entry with
    its id is already there (a re-run, or a retry whose first answer was lost) (pure)."""
    found = patches(annotations)
    if any(e.get("id") == new.get("id") for e in found):
        return None
    return encoded([new, *found])


def record_patch(kube: Client, app: AppSpec, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Prepend a patch to the patch history (once per entry id); returns it as written, newest first
    (NotRecorded if other writers won every attempt)."""

    def build(found: dict[str, str]) -> dict[str, str | None] | None:
        text = with_patch(found, new)
        return None if text is None else {PATCHES: text}

    return _patch_service(kube, app, f"recording the patch of {new.get('to')}", build)


def lags(annotations: dict[str, str] | None, live: str | None) -> str:
    """Why the recorded state disagrees with `live`, the colour the router reads; '' when it agrees
    or nothing is recorded (pure)."""
    found = annotations or {}
    recorded = found.get(ACTIVE)
    intent = found.get(SWITCHING_TO)
    if intent:
        landed = "landed" if intent == live else "did not land"
        return f"a switch to {intent} was started and not recorded (its write {landed}; the router routes to {live or 'no single colour'})"
    if recorded and live and recorded != live:
        return f"the history says {recorded} is live, the router routes to {live}"
    return ""


def service_path(app: AppSpec) -> str:
    """The API path of the app's live Service."""
    return f"/api/v1/namespaces/{app.namespace}/services/{app.service}"


def _patch_service(
    kube: Client, app: AppSpec, what: str, build: Any, known: tuple[str, dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Read the live Service, build annotations from its annotations, write them guarded by the
    resourceVersion read; re-read on a conflict. NotRecorded after RECORD_ATTEMPTS conflicts.

    `known`: (resourceVersion, annotations) of the Service as our own last write left it, used for the
    first attempt instead of a read: if anyone wrote it since, that attempt is a 409 and read again."""
    for _ in range(RECORD_ATTEMPTS):
        if known is not None:
            version, found = known
            known = None
        else:
            service = call(
                f"reading Service {app.namespace}/{app.service}", lambda: get_json(kube, service_path(app))
            )
            metadata = service.get("metadata") or {}
            version, found = metadata.get("resourceVersion") or "", dict(metadata.get("annotations") or {})
        annotations = build(dict(found))
        if annotations is None:
            return parse(found)
        patch = {"metadata": {"resourceVersion": version, "annotations": annotations}}
        try:
            call(
                f"{what} on Service {app.namespace}/{app.service}",
                lambda: patch_json(kube, service_path(app), patch, patch="merge"),
                idempotent=False,
            )
            if MIGRATIONS in annotations:
                return parse({HISTORY: annotations.get(MIGRATIONS) or ""})
            if PATCHES in annotations:
                return parse({HISTORY: annotations.get(PATCHES) or ""})
            return parse({HISTORY: annotations.get(HISTORY) or ""}) if HISTORY in annotations else []
        except ConflictError:
            continue
    raise NotRecorded(
        f"{what} on Service {app.namespace}/{app.service}: another writer changed it {RECORD_ATTEMPTS} times in a row"
    )


def record(
    kube: Client, app: AppSpec, new: dict[str, Any], *, active: str, previous: str | None
) -> list[dict[str, Any]]:
    """Set the active and previous colour, prepend `new` to the history and clear a recorded intent,
    in one guarded patch. Returns the history as written, newest first; NotRecorded if it could not
    be written (the caller reports it: the switch itself stands)."""
    return _patch_service(
        kube,
        app,
        "recording history",
        lambda found: switched_annotations(found, new, active=active, previous=previous),
    )


def record_intent(kube: Client, app: AppSpec, to_color: str) -> None:
    """Before a router that cannot record in its own write moves traffic: say where it is going."""
    _patch_service(
        kube, app, f"recording the intent to switch to {to_color}", lambda _: {SWITCHING_TO: to_color}
    )


def clear_intent(kube: Client, app: AppSpec) -> None:
    """Forget a recorded intent whose write never landed (the router still reads the recorded colour)."""
    _patch_service(kube, app, "clearing an unfinished switch's intent", lambda _: {SWITCHING_TO: None})


def amend(
    kube: Client,
    app: AppSpec,
    entry_id: str,
    extra: dict[str, Any],
    *,
    known: tuple[str, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Add what was learnt after the switch (timings, verification) to its history entry; returns
    the history as written (or as read, when the entry is gone), newest first."""

    def build(found: dict[str, str]) -> dict[str, str | None] | None:
        text = amended(found, entry_id, extra)
        return None if text is None else {HISTORY: text}

    return _patch_service(kube, app, "adding the switch's timings to the history", build, known)


def event(kube: Client, app: AppSpec, *, reason: str, note: str, warning: bool = False) -> None:
    """A Kubernetes Event on the live Service, where `kubectl describe service` shows it."""
    created = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{app.service}.bluegreen-", "namespace": app.namespace},
        "eventTime": micro_time(datetime.now(UTC)),
        "reportingController": "bluegreen.io/bluegreen",
        "reportingInstance": socket.gethostname()[:128],
        "action": reason,
        "reason": reason,
        "note": note[:1024],
        "type": "Warning" if warning else "Normal",
        "regarding": {"apiVersion": "v1", "kind": "Service", "name": app.service, "namespace": app.namespace},
    }
    call(
        f"posting an Event on Service {app.namespace}/{app.service}",
        lambda: write_json(
            kube, "POST", f"/apis/events.k8s.io/v1/namespaces/{app.namespace}/events", created
        ),
        idempotent=False,
    )


def switch_event(
    kube: Client,
    app: AppSpec,
    run: RunInfo,
    *,
    action: str,
    from_color: str | None,
    to_color: str,
    reason: str,
) -> None:
    """The Event a switch or rollback leaves on the live Service."""
    by = f" ({run.holder})" if run.run_id or run.actor else ""
    why = f": {bounded_reason(reason)}" if reason else ""
    why += f" [correlation {run.correlation_id}]" if run.correlation_id else ""
    rolled = action.endswith("rollback")
    event(
        kube,
        app,
        reason="RolledBack" if rolled else "Switched",
        note=f"{'Rolled back' if rolled else 'Switched'} Service {app.service} from "
        f"{from_color or 'none'} to {to_color}{by}{why}",
        warning=rolled,
    )
