"""`kubernetes`: every pod of the colour Ready, and no container restarts growing while we watch.

One LIST of the colour's pods, then one watch stream that keeps them current: measuring every
interval costs no request, so the load does not grow with the duration (if the stream breaks, the
next measurement LISTs again and follows a new one). The first measurement records each pod's
restart count; later ones judge the growth since then, so a pod that restarted before the gate
began is not held against it, but one that keeps restarting is.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import ClassVar

import httpx2
from lightkube import ApiError, Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod
from lightkube.types import on_error_stop

from bluegreen.checks.base import Measurement, Target, Threshold
from bluegreen.config import KubernetesCheckConfig
from bluegreen.model import Color

STREAM_IDLE = 20.0  # seconds a pod watch may stay silent before it is re-listed


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
        self._selectors: dict[Color, dict[str, str]] = {}  # colour -> its Deployment's pod selector
        # The colour's pods, kept current by one watch stream on a connection of its own.
        self._lock = threading.Lock()
        self._pods: dict[str, Pod] = {}
        self._following: tuple[str, tuple[tuple[str, str], ...]] | None = None
        self._ended = threading.Event()
        self._ended.set()
        self._cancel = threading.Event()

    def close(self) -> None:
        self._stop()

    def _stop(self) -> None:
        # Never close the stream's connection from here: a socket closed under a thread blocked on
        # it frees its file descriptor for reuse, and the thread's next read takes whatever file gets
        # that number (a pipe, another socket). The thread sees the flag, or its read times out.
        self._cancel.set()

    def _follow(self, namespace: str, labels: dict[str, str]) -> None:
        """LIST once, then follow a watch stream from that resourceVersion in a daemon thread."""
        self._stop()
        listed = self._kube.list(Pod, namespace=namespace, labels={**labels})
        pods = {p.metadata.uid or "": p for p in listed if p.metadata is not None}
        version = listed.resourceVersion
        with self._lock:
            self._pods = pods
        # A quiet stream ends after STREAM_IDLE seconds; the next measure then re-lists.
        stream = Client(
            self._kube.config, namespace=namespace, timeout=httpx2.Timeout(10.0, read=STREAM_IDLE)
        )
        ended, cancel = threading.Event(), threading.Event()
        self._ended, self._cancel = ended, cancel

        def run() -> None:
            # Ends when cancelled, idle too long, or broken: the next measure re-LISTs.
            with contextlib.suppress(Exception):
                for event, pod in stream.watch(
                    Pod,
                    namespace=namespace,
                    labels={**labels},
                    resource_version=version,
                    on_error=on_error_stop,
                ):
                    if cancel.is_set():
                        break
                    uid = pod.metadata.uid if pod.metadata else None
                    with self._lock:  # this stream's own dict: a cancelled one cannot touch the next
                        if event == "DELETED":
                            pods.pop(uid or "", None)
                        else:
                            pods[uid or ""] = pod
            with contextlib.suppress(Exception):
                stream.close()  # here, in the thread that reads it, closing is safe
            ended.set()

        threading.Thread(target=run, name=f"bluegreen-watch-{self.name}", daemon=True).start()

    def current(self, namespace: str, labels: dict[str, str]) -> list[Pod]:
        """The colour's pods now: from the stream, re-listed only when the stream has ended."""
        key = (namespace, tuple(sorted(labels.items())))
        if self._following != key or self._ended.is_set():
            self._following = None
            self._follow(namespace, labels)
            self._following = key
        with self._lock:
            return [
                p
                for p in self._pods.values()
                if p.metadata is not None and p.metadata.deletionTimestamp is None
            ]

    def _labels(self, target: Target) -> dict[str, str]:
        """The colour's pods as its Deployment selects them (apps label pods their own way)."""
        app = target.app
        if target.color not in self._selectors:
            try:
                dep = self._kube.get(Deployment, app.deployment(target.color), namespace=app.namespace)
                selector = dep.spec.selector.matchLabels if dep.spec and dep.spec.selector else None
            except ApiError:
                selector = None
            self._selectors[target.color] = dict(selector or app.pod_labels(target.color))
        return self._selectors[target.color]

    def measure(self, target: Target) -> Measurement:
        app = target.app
        labels = self._labels(target)
        shown = f"pods {','.join(f'{k}={v}' for k, v in labels.items())} in {app.namespace}"
        at = time.time()
        try:
            pods = self.current(app.namespace, labels)
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
        for pod in sorted(pods, key=lambda p: (p.metadata.name or "") if p.metadata else ""):
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
