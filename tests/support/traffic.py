"""Driving the traffic rig as a user would: the `bluegreen` command inside it, ClusterIPs, clients.

Shared by tests/traffic, bench/traffic.py and the demo. Everything here runs in the rig's network
namespace: a caller is inside it (`Rig.inside()`), and commands go through `ip netns exec`.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from lightkube import Client
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import PatchType

from bluegreen.traffic_probe import ColorReader, Sample, request_once
from hack.traffic_rig import Rig

BLUEGREEN = str(Path(sys.executable).with_name("bluegreen"))


def bluegreen(rig: Rig, *args: str, check: bool = True) -> dict[str, Any]:
    """`bluegreen ARGS -o json` run in the rig's namespace against its cluster: the Result as a dict
    (the whole payload, with `error`, when there is no Result)."""
    done = subprocess.run(
        rig.exec_args(BLUEGREEN, *args, "--kubeconfig", str(rig.kubeconfig), "-o", "json"),
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"bluegreen {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    payload = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    result: dict[str, Any] = payload.get("result") or payload
    return result


def write_time(result: dict[str, Any]) -> float:
    """When the switch's write returned (its timeline's `switched:` event), as time.time() seconds."""
    for entry in result.get("timeline", []):
        if entry["event"].startswith("switched:"):
            return datetime.fromisoformat(entry["time"]).timestamp()
    raise AssertionError(f"no `switched:` event in the result's timeline: {result.get('timeline')}")


def cluster_url(kube: Client, namespace: str, service: str, path: str = "/") -> str:
    found = kube.get(Service, service, namespace=namespace)
    assert found.spec is not None and found.spec.ports
    return f"http://{found.spec.clusterIP}:{found.spec.ports[0].port}{path}"


def wait_answering(url: str, color: str, *, timeout: float = 30, in_a_row: int = 5) -> None:
    """Until `in_a_row` new connections to `url` in a row are answered by `color` (kube-proxy synced).

    `color` "" waits for pods that answer without a colour (an app before bluegreen)."""
    deadline = time.monotonic() + timeout
    streak, last = 0, None
    while time.monotonic() < deadline:
        last = request_once(url, ColorReader(), timeout=1)
        streak = streak + 1 if not last.failed and (last.color or "") == color else 0
        if streak >= in_a_row:
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} not answered by {color} within {timeout}s; last answer: {last}")


def between(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.sent < end]


class KeepAliveClient:
    """One persistent HTTP/1.1 connection, reused for every request (as browsers and SDKs do)."""

    def __init__(self, url: str) -> None:
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        self.connection = http.client.HTTPConnection(host, int(port or 80), timeout=2)
        self.reader = ColorReader()

    def get(self) -> Sample:
        sent = time.time()
        try:
            self.connection.request("GET", "/")
            answer = self.connection.getresponse()
            body = answer.read().decode()
            return Sample(sent, self.reader.read(dict(answer.getheaders()), body))
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()
            return Sample(sent, None, type(error).__name__)

    def close(self) -> None:
        self.connection.close()


class Churn:
    """A busy cluster: another Service's selector flips every `period` seconds, so its endpoints keep
    changing and kube-proxy is always due a sync (it syncs at most once per min-sync-period, 1 s).

    Bounded: it stops after `max_seconds` even if nobody calls stop()."""

    def __init__(
        self, kube: Client, namespace: str, service: str, *, period: float = 0.3, max_seconds: float = 300
    ):
        self.kube, self.namespace, self.service = kube, namespace, service
        self.period, self.max_seconds = period, max_seconds
        self.flips = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.max_seconds
        color = "green"
        while not self._stop.wait(self.period) and time.monotonic() < end:
            patch = {"spec": {"selector": {"bluegreen.io/color": color}}}
            self.kube.patch(
                Service, self.service, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            )
            self.flips += 1
            color = "blue" if color == "green" else "green"

    def start(self) -> Churn:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.flips


def drain(kube: Client, namespace: str, app: str, color: str, *, port: int = 8080) -> int:
    """What an app's drain hook does, on every pod of one colour: `POST /drain`, after which the pod
    ends each keep-alive connection with its next answer. Returns the number of pods drained."""
    pods = kube.list(
        Pod, namespace=namespace, labels={"app.kubernetes.io/name": app, "bluegreen.io/color": color}
    )
    drained = 0
    for pod in pods:
        if pod.status is None or not pod.status.podIP:
            continue
        connection = http.client.HTTPConnection(pod.status.podIP, port, timeout=2)
        try:
            connection.request("POST", "/drain")
            connection.getresponse().read()
            drained += 1
        finally:
            connection.close()
    return drained
