"""The apiserver itself fails mid-phase: stopped (SIGSTOP, then SIGCONT) or killed and restarted.

These run on a cluster of their own (the session cluster serves the other tests meanwhile). The
FaultProxy in front of it fires the fault when the chosen request arrives, then forwards that request
to the frozen or dead apiserver.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig

from hack.localcluster import ClusterError, LocalCluster, _alive, _request, _spawn
from tests.faults.harness import (
    LEDGER,
    SET_UP_WAIT,
    Cli,
    Row,
    Scene,
    guarded,
    kubeconfig_via,
    needs,
    new_namespace,
    next_run_now_or_later,
    observe,
    run_later,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Request, Rule
from tests.faults.test_requests import ordinal, short
from tests.support.apps import deployment, wait_available

pytestmark = pytest.mark.cluster

LEASE = "PUT /apis/coordination.k8s.io/v1/namespaces/NS/leases/bluegreen-{app}"
SERVICE = "PATCH /api/v1/namespaces/NS/services/{app}"
# The verification opens with one WatchList request (sendInitialEvents), not a list and a watch.
VERIFY = "WATCH /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices"
ROLLOUT = "GET /apis/apps/v1/namespaces/NS/deployments/shop-green"
# After the move: the switch's Event (the preview Service is not written: it follows the candidate).
EVENT = "POST /apis/events.k8s.io/v1/namespaces/NS/events"


class Apiserver:
    """The private cluster's kube-apiserver process: freeze, thaw, kill, start again."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.killed = threading.Event()
        self.argv: list[bytes] = []

    def _state(self) -> dict[str, object]:
        state: dict[str, object] = json.loads(self.cluster.state_file.read_text())
        return state

    @property
    def pid(self) -> int:
        pids = self._state()["pids"]
        assert isinstance(pids, dict)
        return int(pids["kube-apiserver"])

    def freeze(self, seconds: float) -> None:
        """SIGSTOP now, SIGCONT after `seconds` (from a timer thread: the caller goes on at once)."""
        pid = self.pid
        os.kill(pid, signal.SIGSTOP)
        threading.Timer(seconds, os.kill, (pid, signal.SIGCONT)).start()

    def kill(self) -> None:
        """SIGKILL now; `restart()` starts it again with the same command line."""
        pid = self.pid
        self.argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        os.kill(pid, signal.SIGKILL)
        self.killed.set()

    def restart(self) -> None:
        # From the test's main thread: the process dies with the thread that started it (PDEATHSIG).
        while _alive(self.pid):
            time.sleep(0.05)
        log = self.cluster.dir / "logs" / f"kube-apiserver-{int(time.time() * 1000)}.log"
        new = _spawn(Path(self.argv[0].decode()), [a.decode() for a in self.argv[1:]], log, True)
        state = self._state()
        pids = state["pids"]
        assert isinstance(pids, dict)
        pids["kube-apiserver"] = new
        self.cluster.state_file.write_text(json.dumps(state))
        self.killed.clear()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _request("GET", f"{self.cluster.server}/readyz", self.cluster.dir / "pki")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"the apiserver is not ready {timeout:.0f}s after its restart")


@dataclass
class Private:
    cluster: LocalCluster
    apiserver: Apiserver
    proxy: FaultProxy
    proxied: Path

    def kube(self) -> Client:
        """A fresh admin client: the previous one's connections may have died with the apiserver."""
        return Client(KubeConfig.from_file(self.cluster.kubeconfig), field_manager="bluegreen-tests")


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    cluster = LocalCluster(tmp_path_factory.mktemp("private-cluster"))
    for attempt in (1, 2, 3):
        try:
            cluster.up(die_with_parent=True, quiet=True)
            break
        except ClusterError:  # a free port taken by another process between choosing and binding it
            if attempt == 3:
                raise
    try:
        port = int(json.loads(cluster.state_file.read_text())["ports"]["apiserver"])
        with FaultProxy(cluster.dir / "pki", port) as proxy:
            proxied = kubeconfig_via(cluster.kubeconfig, proxy.port, cluster.dir / "kubeconfig-proxied")
            yield Private(cluster, Apiserver(cluster), proxy, proxied)
    finally:
        cluster.down()


CASES = [
    # (command, fault, seconds, step, occurrence)
    ("switch", "SIGSTOP", 3, LEASE.format(app="shop"), 1),
    ("switch", "SIGSTOP", 3, SERVICE.format(app="shop"), 1),
    ("switch", "SIGSTOP", 3, VERIFY, 1),
    ("switch", "SIGSTOP", 12, SERVICE.format(app="shop"), 1),
    ("deploy", "SIGSTOP", 3, ROLLOUT, 3),
    ("group switch", "SIGSTOP", 3, SERVICE.format(app="web"), 1),
    ("switch", "SIGKILL", 1, LEASE.format(app="shop"), 1),
    ("switch", "SIGKILL", 1, SERVICE.format(app="shop"), 1),
    ("switch", "SIGKILL", 1, EVENT, 1),
    ("deploy", "SIGKILL", 1, ROLLOUT, 3),
    ("rollback", "SIGKILL", 1, SERVICE.format(app="shop"), 1),
]
IDS = [f"{c[0]}-{c[1]}-{c[2]}s-{short(c[3]).split()[-1]}-{c[4]}".replace(" ", "-") for c in CASES]


@pytest.fixture(scope="module")
def apiserver_faults(private: Private, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Row]:
    """Each case in turn (they share the private apiserver), the re-runs after all; rows by id."""
    tmp = tmp_path_factory.mktemp("apiserver")
    rows: dict[str, Row] = {}
    later: list[tuple[Scene, Row]] = []
    for key, (command, fault, seconds, step, occurrence) in zip(IDS, CASES, strict=True):
        name = (
            f"apiserver SIGSTOP for {seconds:.0f} s"
            if fault == "SIGSTOP"
            else "apiserver killed, restarted 1 s later"
        )
        row = rows[key] = LEDGER.add(
            Row(fault=name, phase=command, moment=f"at the {ordinal(occurrence)} {short(step)}")
        )

        def strike(_: Request, fault: str = fault, seconds: float = seconds) -> None:
            if fault == "SIGSTOP":
                private.apiserver.freeze(seconds)
            else:
                private.apiserver.kill()

        def one(
            command: str = command, step: str = step, occurrence: int = occurrence, row: Row = row
        ) -> None:
            scene = set_up(private.kube(), command, private.cluster.kubeconfig, tmp, "apiserver")
            rule = private.proxy.add(Rule(scene.namespace, step, "hook", occurrence=occurrence, hook=strike))
            cli = Cli(scene.args(), private.proxied)
            while not private.apiserver.killed.wait(0.1) and cli.process.poll() is None:
                pass
            killed = private.apiserver.killed.is_set()
            if killed:
                time.sleep(1)
                private.apiserver.restart()
            run = cli.wait()
            private.apiserver.wait_ready()
            time.sleep(3)  # past any freeze: nothing is read from a frozen apiserver
            private.apiserver.wait_ready()
            if killed:
                settled(private.kube())
            if not rule.fired.is_set():
                row.problems.append("the fault never fired: the run did not send that request")
            kube = private.kube()
            verdict(row, run, observe(kube, scene), scene, expect={0, 1, 3})
            next_run_now_or_later(kube, scene, row, later)

        guarded(row, one)
    run_later(private.kube(), later)
    return rows


def settled(kube: Client) -> None:
    """After a restart, the controllers and kwok caught up with the new apiserver (a new Deployment
    becomes available), so the re-run and the next row measure bluegreen, not their relist: on CI
    kwok once took 56 s to see new pods after the apiserver came back."""
    namespace = new_namespace(kube, "settle")
    kube.create(deployment("canary", "blue", replicas=1), namespace=namespace)
    wait_available(kube, namespace, "canary-blue", timeout=SET_UP_WAIT)


# Faults that stop the command before its write applied leave nothing for a re-run to flip back.
UNMOVED = {
    "switch-SIGKILL-1s-leases/bluegreen-shop-1",
    "switch-SIGKILL-1s-services/shop-1",
    "rollback-SIGKILL-1s-services/shop-1",
}


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(k, marks=needs("intent") if not k.startswith("deploy") and k not in UNMOVED else ())
        for k in IDS
    ],
)
def test_apiserver_fails_mid_phase(key: str, apiserver_faults: dict[str, Row]) -> None:
    assert apiserver_faults[key].consistent, " | ".join(apiserver_faults[key].cells())
