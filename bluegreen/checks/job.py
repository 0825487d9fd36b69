"""`job`: a Kubernetes Job from a template (smoke or critical-path tests run inside the cluster).

Every string in the template may name {{color}}, {{namespace}}, {{app}} and {{window}}. The Job is
created with a fresh name and bluegreen labels, followed with a watch stream until it is Complete
or Failed (or the timeout passes, when it is deleted), and the tail of its pods' logs goes into the
report. Pods on a kwok-simulated cluster run no containers, so there are no logs there: the report
says so plainly rather than showing an empty tail.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any, ClassVar, cast

from lightkube import ApiError, Client
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType

from bluegreen.checks.base import Measurement, Target, Threshold, tail
from bluegreen.config import JobCheckConfig, format_duration, render

CHECK_LABEL = "bluegreen.io/check"


def _render_all(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, dict):
        return {k: _render_all(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_all(v, variables) for v in value]
    return value


def manifest(config: JobCheckConfig, target: Target, suffix: str) -> dict[str, Any]:
    """The Job to create: the template rendered, named and labelled; never retried by the controller
    unless the template says so, and cleaned up an hour after it finishes."""
    job: dict[str, Any] = _render_all(dict(config.template), target.variables())
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    metadata = dict(job.get("metadata") or {})
    metadata.pop("generateName", None)
    metadata["name"] = f"{target.app.name}-{config.name}-{target.color}-{suffix}"[:63].rstrip("-")
    metadata["namespace"] = target.app.namespace
    labels = {
        **(metadata.get("labels") or {}),
        "app.kubernetes.io/managed-by": "bluegreen",
        CHECK_LABEL: config.name,
        target.app.color_label: str(target.color),
    }
    metadata["labels"] = labels
    job["metadata"] = metadata
    spec = dict(job["spec"])
    spec.setdefault("backoffLimit", 0)
    deadline = max(1, round(config.timeout))
    spec["activeDeadlineSeconds"] = min(int(spec.get("activeDeadlineSeconds") or deadline), deadline)
    spec.setdefault("ttlSecondsAfterFinished", 3600)
    job["spec"] = spec
    return job


def _finished(job: Job) -> str:
    """ "Complete", "Failed" or "" from the Job's conditions."""
    for condition in (job.status.conditions if job.status else None) or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type + (
                f" ({condition.reason}: {condition.message})" if condition.type == "Failed" else ""
            )
    return ""


class JobCheck:
    kind: ClassVar[str] = "job"
    once: ClassVar[bool] = True

    def __init__(self, config: JobCheckConfig, *, kube: Client) -> None:
        self.config = config
        self.name = config.name
        self._kube = kube

    def close(self) -> None:
        pass

    def measure(self, target: Target) -> Measurement:
        c = self.config
        ns = target.app.namespace
        at = time.time()
        body = manifest(c, target, secrets.token_hex(3))
        name = body["metadata"]["name"]
        shown = f"job {ns}/{name}"
        try:
            self._kube.create(cast(Job, Job.from_dict(body)), namespace=ns)
        except ApiError as error:
            return Measurement(
                check=c.name,
                kind=self.kind,
                target=shown,
                error=f"cannot create the Job: {error.status.message}",
                at=at,
            )
        except Exception as error:
            return Measurement(
                check=c.name, kind=self.kind, target=shown, error=f"cannot create the Job: {error}", at=at
            )
        try:
            outcome = self._follow(name, ns)
        except ApiError as error:
            return Measurement(
                check=c.name,
                kind=self.kind,
                target=shown,
                error=f"lost the Job: {error.status.message}",
                at=at,
            )
        except Exception as error:
            return Measurement(
                check=c.name, kind=self.kind, target=shown, error=f"lost the Job: {error}", at=at
            )
        thresholds = (
            Threshold(metric="finished", op="==", limit=True),
            Threshold(metric="outcome", op="==", limit="Complete"),
        )
        if not outcome:
            self._delete(name, ns)
            return Measurement(
                check=c.name,
                kind=self.kind,
                target=shown,
                values={"finished": False},
                thresholds=thresholds[:1],
                detail=f"not finished after {format_duration(c.timeout)}; deleted\n{self._logs(name, ns)}",
                at=at,
            )
        return Measurement(
            check=c.name,
            kind=self.kind,
            target=shown,
            values={"finished": True, "outcome": outcome},
            thresholds=thresholds,
            detail=self._logs(name, ns),
            at=at,
        )

    def _follow(self, name: str, namespace: str) -> str:
        """ "Complete" or "Failed (...)" as soon as the Job says so, read from a watch stream.

        The Job's activeDeadlineSeconds (set from the check's timeout) makes the Job controller end it,
        so the stream always brings a final event; no polling.
        """
        current = self._kube.get(Job, name, namespace=namespace)
        if _finished(current):
            return _finished(current)
        version = current.metadata.resourceVersion if current.metadata else None
        for _, event in self._kube.watch(
            Job, namespace=namespace, fields={"metadata.name": name}, resource_version=version
        ):
            if _finished(event):
                return _finished(event)
        return ""  # the stream ended without a final state (only when the server stops watching)

    def _logs(self, name: str, namespace: str) -> str:
        try:
            pods = list(self._kube.list(Pod, namespace=namespace, labels={"job-name": name}))
        except Exception as error:
            return f"(no logs: cannot list the Job's pods: {error})"
        if not pods:
            return "(no logs: the Job made no pods)"
        parts: list[str] = []
        for pod in pods:
            assert pod.metadata is not None and pod.metadata.name is not None
            try:
                text = "".join(
                    self._kube.log(pod.metadata.name, namespace=namespace, tail_lines=self.config.tail_lines)
                )
            except Exception as error:
                parts.append(
                    f"{pod.metadata.name}: no logs ({_short(error)}); pods on kwok-simulated nodes run no "
                    "containers and have no logs"
                    if _simulated(pod)
                    else f"{pod.metadata.name}: no logs ({_short(error)})"
                )
                continue
            parts.append(f"{pod.metadata.name}:\n{tail(text, self.config.tail_lines) or '(empty log)'}")
        return "\n".join(parts)

    def _delete(self, name: str, namespace: str) -> None:
        # Best effort: ttlSecondsAfterFinished cleans up too.
        with contextlib.suppress(Exception):
            self._kube.delete(Job, name, namespace=namespace, cascade=CascadeType.BACKGROUND)


def _simulated(pod: Pod) -> bool:
    annotations = pod.metadata.annotations if pod.metadata else None
    node = pod.spec.nodeName if pod.spec else None
    return bool(annotations and any(k.startswith("kwok.x-k8s.io") for k in annotations)) or bool(
        node and "kwok" in node
    )


def _short(error: Exception) -> str:
    if isinstance(error, ApiError):
        return error.status.message or str(error.status.code)
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__
