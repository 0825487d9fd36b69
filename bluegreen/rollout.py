"""Pure rules about Deployments and pods: rollout status, why pods fail, images, templates.

Everything takes the plain dicts the apiserver sends, so it is tested without a cluster.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from typing import Any, NamedTuple

# A container image reference: [registry[:port]/]path[:tag][@sha256:digest] (the docker/distribution grammar,
# simplified: lower-case path components, a tag of at most 128 word characters).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"
IMAGE = rf"^{_REGISTRY}?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"


def valid_image(reference: str) -> bool:
    # Compiled on first use (re caches it): 2 ms of every start otherwise, and a switch never asks.
    return len(reference) <= 255 and re.match(IMAGE, reference) is not None


class RolloutStatus(NamedTuple):
    done: bool
    failed: bool
    message: str
    ready: int
    desired: int


def rollout_status(deployment: dict[str, Any]) -> RolloutStatus:
    """kubectl's `rollout status` rules, plus the progress deadline as failure."""
    meta, spec, status = (
        deployment.get("metadata") or {},
        deployment.get("spec") or {},
        deployment.get("status") or {},
    )
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas") or 0
    total = status.get("replicas") or 0
    available = status.get("availableReplicas") or 0
    name = meta.get("name", "deployment")
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return RolloutStatus(
            False, False, f"waiting for {name}'s new spec to be observed", available, desired
        )
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(False, True, f"{name} exceeded its progress deadline", available, desired)
    if updated < desired:
        return RolloutStatus(
            False, False, f"{name}: {updated} of {desired} new replicas updated", available, desired
        )
    if total > updated:
        return RolloutStatus(
            False, False, f"{name}: {total - updated} old replicas pending termination", available, desired
        )
    if available < updated:
        return RolloutStatus(
            False, False, f"{name}: {available} of {updated} updated replicas available", available, desired
        )
    return RolloutStatus(
        True, False, f"{name}: {available} of {desired} replicas available", available, desired
    )


def fully_available(deployment: dict[str, Any] | None) -> bool:
    """Ready to take all traffic: rolled out, at least one replica, every replica available."""
    if deployment is None:
        return False
    state = rollout_status(deployment)
    return state.done and state.desired > 0


def pod_problems(pods: list[dict[str, Any]]) -> list[str]:
    """One line per reason the pods are not Ready, with how many pods share it (pure)."""
    reasons: Counter[str] = Counter()
    for pod in pods:
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            continue
        reasons.update(_pod_reasons(pod))
    return [f"{count} pod{'s' if count > 1 else ''}: {reason}" for reason, count in sorted(reasons.items())]


def _pod_reasons(pod: dict[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return [
            f"{scheduled.get('reason') or 'Unschedulable'}: {scheduled.get('message', '').strip()}".rstrip(
                ": "
            )
        ]
    found = []
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        name = container.get("name", "?")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            restarts = container.get("restartCount") or 0
            extra = f", {restarts} restarts" if restarts else ""
            found.append(
                f"{waiting['reason']} (container {name}{extra}): {waiting.get('message', '')}".rstrip(": ")
            )
        elif terminated and terminated.get("exitCode", 0) != 0:
            found.append(
                f"container {name} exited {terminated.get('exitCode')} ({terminated.get('reason', 'Error')})"
            )
        elif "running" in state and not container.get("ready"):
            found.append(f"readiness probe failing (container {name} running, not Ready)")
    if not found and status.get("phase") == "Pending":
        found.append("Pending: not started yet")
    return found


def images_of(template: dict[str, Any]) -> list[str]:
    return [c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []]


def with_images(template: dict[str, Any], images: dict[str, str], single: str | None) -> dict[str, Any]:
    """A copy of the pod template with new images: `single` for a one-container pod, or by name.

    Raises ValueError naming what does not fit (pure), before anything is written.
    """
    out = copy.deepcopy(template)
    containers = (out.get("spec") or {}).get("containers") or []
    names = [c.get("name") for c in containers]
    if single is not None:
        if len(containers) != 1:
            raise ValueError(
                f"the pod has {len(containers)} containers ({', '.join(map(str, names))}): use --set-image NAME=IMAGE"
            )
        containers[0]["image"] = single
    unknown = sorted(set(images) - set(map(str, names)))
    if unknown:
        raise ValueError(
            f"no container named {', '.join(unknown)} in the pod (it has {', '.join(map(str, names))})"
        )
    for container in containers:
        if container.get("name") in images:
            container["image"] = images[container["name"]]
    return out


def recolored(template: dict[str, Any], label: str, color: str) -> dict[str, Any]:
    """A copy of the pod template whose colour label is `color` (pure)."""
    out = copy.deepcopy(template)
    out.setdefault("metadata", {}).setdefault("labels", {})[label] = color
    return out
