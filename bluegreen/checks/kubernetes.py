"""`kubernetes`: every pod of the colour Ready, and no container restarts growing while we watch.

One LIST of the colour's pods per interval (the request rate does not grow with the duration). The
first measurement records each pod's restart count; later ones judge the growth since then, so a
pod that restarted before the gate began is not held against it, but one that keeps restarting is.
"""

from __future__ import annotations

import time
from typing import ClassVar

from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Pod

from bluegreen.checks.base import Measurement, Target, Threshold
from bluegreen.config import KubernetesCheckConfig


def _ready(pod: Pod) -> bool:
    conditions = pod.status.conditions if pod.status else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def _restarts(pod: Pod) -> int:
    statuses = pod.status.containerStatuses if pod.status else None
    return sum(s.restartCount for s in statuses or [])


def _why_not_ready(pod: Pod) -> str:
    reasons: list[str] = []
    for status in (pod.status.containerStatuses if pod.status else None) or []:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason:
            reasons.append(f"{status.name}: {waiting.reason}, {status.restartCount} restarts")
    phase = pod.status.phase if pod.status else None
    return "; ".join(reasons) or f"phase {phase or 'unknown'}, not Ready"


class KubernetesCheck:
    kind: ClassVar[str] = "kubernetes"
    once: ClassVar[bool] = False

    def __init__(self, config: KubernetesCheckConfig, *, kube: Client) -> None:
        self.config = config
        self.name = config.name
        self._kube = kube
        self._first_restarts: dict[str, int] = {}  # pod uid -> restarts when first seen

    def close(self) -> None:
        pass

    def measure(self, target: Target) -> Measurement:
        app = target.app
        labels = app.pod_labels(target.color)
        shown = f"pods {','.join(f'{k}={v}' for k, v in labels.items())} in {app.namespace}"
        at = time.time()
        try:
            pods = [
                p
                for p in self._kube.list(Pod, namespace=app.namespace, labels={**labels})
                if p.metadata is not None and p.metadata.deletionTimestamp is None
            ]
        except ApiError as error:
            return Measurement(
                check=self.name,
                kind=self.kind,
                target=shown,
                error=f"cannot list pods: {error.status.message}",
                at=at,
            )
        except Exception as error:  # the cluster's transport errors: a measurement error, never a pass
            return Measurement(
                check=self.name, kind=self.kind, target=shown, error=f"cannot list pods: {error}", at=at
            )
        growth = 0
        not_ready: list[str] = []
        for pod in pods:
            assert pod.metadata is not None
            uid = pod.metadata.uid or pod.metadata.name or ""
            count = _restarts(pod)
            first = self._first_restarts.setdefault(uid, count)
            growth += max(0, count - first)
            if not _ready(pod):
                not_ready.append(f"{pod.metadata.name}: {_why_not_ready(pod)}")
        return Measurement(
            check=self.name,
            kind=self.kind,
            target=shown,
            values={"pods": len(pods), "ready": len(pods) - len(not_ready), "restarts_growth": growth},
            thresholds=(
                Threshold(metric="pods", op=">=", limit=1),
                Threshold(metric="ready", op=">=", relative_to="pods"),
                Threshold(metric="restarts_growth", op="<=", limit=self.config.max_restarts),
            ),
            detail="\n".join(not_ready),
            at=at,
        )
