"""Will this app drop requests when its pods stop? A check of the pod template and rollout strategy.

Measured on a real node (docs/real-pods.md): an app without a preStop delay and with a short grace
period failed 584 of 13,400 requests while its idle colour rolled; with preStop 5 s and grace 30 s, 0.
A pod gets SIGTERM while kube-proxy still sends it new connections (endpoints are removed
asynchronously, and kube-proxy syncs at most once a second), and requests still running at the grace
deadline are killed. Pure: takes the Deployment as the apiserver sends it; deploy and gate report it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_GRACE = 30.0  # terminationGracePeriodSeconds when unset
RECOMMENDED_PRESTOP = 5  # seconds: beyond endpoint removal plus kube-proxy's 1 s minimum sync period
_SLEEP_COMMAND = re.compile(r"^\s*sleep\s+(\d+(?:\.\d+)?)\s*;?\s*$")


@dataclass(frozen=True)
class Finding:
    """One reason the app will drop requests: the field at fault, what happens, and the fix."""

    field: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}. Fix: {self.fix}"


def prestop_seconds(container: dict[str, Any]) -> float | None:
    """How long a container's preStop hook delays SIGTERM: None without one, 0 when unknown (an
    exec or HTTP hook that is not a plain sleep: it may drain, but how long is the app's business)."""
    hook = ((container.get("lifecycle") or {}).get("preStop")) or None
    if hook is None:
        return None
    if "sleep" in hook:
        return float((hook["sleep"] or {}).get("seconds") or 0)
    command = ((hook.get("exec") or {}).get("command")) or []
    if len(command) >= 2 and command[-2].endswith("sleep"):
        try:
            return float(command[-1])
        except ValueError:
            return 0.0
    if command and (found := _SLEEP_COMMAND.match(command[-1])):
        return float(found.group(1))
    return 0.0


def unavailable_during_update(deployment: dict[str, Any]) -> int:
    """How many pods a rolling update may take down at once (maxUnavailable, rounded down as the
    Deployment controller does); every replica for a Recreate strategy."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return replicas
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(replicas * float(value[:-1]) / 100)
    return int(value)


def check(
    deployment: dict[str, Any], *, longest_request: float = 0.0, updates_serving_pods: bool = True
) -> list[Finding]:
    """The ways `deployment`'s pods will drop requests as they stop, most likely first.

    `longest_request`: seconds the slowest request may take (configured, or observed by the gate).
    `updates_serving_pods`: the rollout replaces pods that serve (the idle colour's preview Service
    while smoke tests run); a Deployment created from nothing has no old pods to take down."""
    spec = deployment.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    containers = pod.get("containers") or []
    findings: list[Finding] = []
    prefix = "spec.template.spec"
    for c in containers:
        if not c.get("readinessProbe"):
            findings.append(
                Finding(
                    f"{prefix}.containers[{c.get('name', '?')}].readinessProbe",
                    "no readiness probe: a pod gets traffic as soon as it starts, before the app listens",
                    "add a readinessProbe (e.g. httpGet on a /ready path that fails once SIGTERM arrives)",
                )
            )
    delays = [d for d in (prestop_seconds(c) for c in containers) if d is not None]
    if not delays:
        findings.append(
            Finding(
                f"{prefix}.containers[].lifecycle.preStop",
                "no preStop hook: pods get SIGTERM while still receiving new connections (endpoint "
                "removal and kube-proxy's sync take up to ~1 s), so those connections are refused",
                f"add lifecycle.preStop.sleep.seconds: {RECOMMENDED_PRESTOP} and let the app finish "
                "requests in flight on SIGTERM",
            )
        )
    grace = float(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE))
    delay = max(delays, default=0.0)
    if grace < delay + longest_request:
        findings.append(
            Finding(
                f"{prefix}.terminationGracePeriodSeconds",
                f"{grace:g}s is shorter than the preStop delay ({delay:g}s) plus the longest request "
                f"({longest_request:g}s): requests still running at the deadline are killed",
                f"set terminationGracePeriodSeconds to at least {math.ceil(delay + longest_request) + 5}",
            )
        )
    if updates_serving_pods and (down := unavailable_during_update(deployment)) > 0:
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        findings.append(
            Finding(
                "spec.strategy.type" if recreate else "spec.strategy.rollingUpdate.maxUnavailable",
                f"the rolling update of the idle colour takes {down} serving pod{'s' if down != 1 else ''} "
                "down at once while the preview Service serves smoke tests",
                "use strategy RollingUpdate with maxUnavailable: 0 and maxSurge: 1 (or more)",
            )
        )
    return findings
