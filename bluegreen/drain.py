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


# -- after a switch: the old colour's keep-alive connections -----------------------------------------
# A selector switch moves new connections only: measured on the traffic rig, 4 keep-alive clients got
# 80 of 80 answers from the old colour after the Service pointed at the new one. The app's drain hook
# (bluegreen.yaml `drain`) makes the old pods answer `Connection: close`, so those clients reconnect and
# reach the new colour; the old colour's request rate (Prometheus) shows whether any traffic lingers.


@dataclass(frozen=True)
class HookOutcome:
    """The drain hook on the old colour's pods: which answered and which did not (pod -> why)."""

    color: str
    drained: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return not self.failed

    def message(self) -> str:
        if not self.drained and not self.failed:
            return f"drain: no running {self.color} pod to drain"
        text = f"drain: {len(self.drained)} {self.color} pod{'s' if len(self.drained) != 1 else ''} drained"
        if self.drained:
            text += f" ({', '.join(self.drained)})"
        if self.failed:
            text += "; failed: " + "; ".join(f"{pod}: {why}" for pod, why in self.failed)
            text += " (their keep-alive clients stay on the old colour until they reconnect)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"color": self.color, "drained": list(self.drained), "failed": dict(self.failed)}


def hook_path(namespace: str, pod: str, port: int, path: str) -> str:
    """The apiserver's proxy path to one pod's drain endpoint: bluegreen reaches pods from outside
    the cluster (a CI runner), where pod IPs are not routable."""
    return f"/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy{path}"


def drainable(pods: list[dict[str, Any]]) -> list[str]:
    """The names of the pods that can be told to drain: running, with an IP, not already stopping."""
    return sorted(
        p["metadata"]["name"]
        for p in pods
        if (p.get("status") or {}).get("podIP")
        and (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    )


@dataclass(frozen=True)
class OldTraffic:
    """The old colour's request rate some time after the switch, judged against the bound."""

    state: str  # drained | draining | lingering
    rate: float  # requests per second, all series together
    by_series: dict[str, float]  # the series still above zero (`pod=shop-blue-1`: rate)
    elapsed: float
    within: float

    def message(self, color: str) -> str:
        if self.state == "drained":
            return f"old traffic: {color} receives no requests ({self.elapsed:.0f}s after the switch)"
        who = ", ".join(f"{name or color} {rate:.3g}/s" for name, rate in sorted(self.by_series.items()))
        if self.state == "draining":
            return (
                f"old traffic: {color} still receives {self.rate:.3g} requests/s {self.elapsed:.0f}s after "
                f"the switch (bound {self.within:.0f}s): {who}"
            )
        return (
            f"old traffic lingers: {color} still receives {self.rate:.3g} requests/s {self.elapsed:.0f}s "
            f"after the switch, beyond the {self.within:.0f}s bound: {who}. Clients on long-lived "
            "connections (keep-alive, gRPC) are still pinned: give the app a drain hook (bluegreen.yaml "
            "`drain`), or find the clients that bypass the Service"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "rate": self.rate,
            "lingering": self.by_series,
            "elapsed_s": round(self.elapsed, 1),
            "within_s": self.within,
        }


def old_traffic(series: dict[str, float], *, elapsed: float, within: float) -> OldTraffic:
    """Judge the old colour's request rate `elapsed` seconds after the switch (pure): zero (or no
    series at all: no request in the window) is drained; above zero is draining until `within`,
    lingering after it."""
    still = {name: rate for name, rate in series.items() if rate > 0}
    total = sum(still.values())
    state = "drained" if not still else "draining" if elapsed < within else "lingering"
    return OldTraffic(state=state, rate=total, by_series=still, elapsed=elapsed, within=within)
