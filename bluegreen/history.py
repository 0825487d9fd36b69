"""The audit trail on the live Service: active and previous colour, the last 20 switches, and Events.

The annotations make the cluster the source of truth: rollback needs nothing but cluster access.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from typing import Any

from lightkube import Client
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service
from lightkube.resources.events_v1 import Event
from lightkube.types import PatchType

from bluegreen.errors import ConflictError
from bluegreen.kube import call
from bluegreen.model import AppSpec, RunInfo

ACTIVE = "bluegreen.io/active-color"
PREVIOUS = "bluegreen.io/previous-color"
HISTORY = "bluegreen.io/history"
KEEP = 20


def entry(
    *,
    from_color: str | None,
    to_color: str,
    images: dict[str, list[str]],
    run: RunInfo,
    reason: str,
    action: str,
    timings: dict[str, float | None],
) -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "from": from_color,
        "to": to_color,
        "images": images,
        "run_id": run.run_id,
        "run_url": run.run_url,
        "actor": run.actor,
        "correlation_id": run.correlation_id,
        "reason": reason,
        "timings_ms": {k: round(v, 1) for k, v in timings.items() if v is not None},
    }


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


def appended(annotations: dict[str, str] | None, new: dict[str, Any]) -> str:
    """The history annotation with `new` first, trimmed to the newest KEEP entries (pure)."""
    return json.dumps([new, *parse(annotations)][:KEEP], separators=(",", ":"))


def record(
    kube: Client, app: AppSpec, new: dict[str, Any], *, active: str, previous: str | None
) -> list[dict[str, Any]]:
    """Set the active and previous colour and prepend `new` to the history, in one guarded patch.

    Returns the history as written, newest first."""
    for _ in range(5):
        service = call(
            f"reading Service {app.namespace}/{app.service}",
            lambda: kube.get(Service, app.service, namespace=app.namespace),
        )
        assert service.metadata is not None
        written = appended(service.metadata.annotations, new)
        patch = {
            "metadata": {
                "resourceVersion": service.metadata.resourceVersion,
                "annotations": {
                    ACTIVE: active,
                    PREVIOUS: previous,
                    HISTORY: written,
                },
            }
        }
        try:
            call(
                f"recording history on Service {app.namespace}/{app.service}",
                lambda: kube.patch(
                    Service, app.service, patch, namespace=app.namespace, patch_type=PatchType.MERGE
                ),
                idempotent=False,
            )
            return parse({HISTORY: written})
        except ConflictError:
            continue
    return []  # five writers in a row beat us to it; the switch itself stands


def event(kube: Client, app: AppSpec, *, reason: str, note: str, warning: bool = False) -> None:
    """A Kubernetes Event on the live Service, where `kubectl describe service` shows it."""
    now = datetime.now(UTC)
    created = Event(
        metadata=ObjectMeta(generateName=f"{app.service}.bluegreen-", namespace=app.namespace),
        eventTime=now,
        reportingController="bluegreen.io/bluegreen",
        reportingInstance=socket.gethostname()[:128],
        action=reason,
        reason=reason,
        note=note[:1024],
        type="Warning" if warning else "Normal",
        regarding=ObjectReference(apiVersion="v1", kind="Service", name=app.service, namespace=app.namespace),
    )
    call(
        f"posting an Event on Service {app.namespace}/{app.service}",
        lambda: kube.create(created),
        idempotent=False,
    )
