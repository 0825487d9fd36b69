"""TCP faults from Toxiproxy between the CLI and the apiserver: latency, resets, stalls, cut streams, a
closed port. Each row gets its own Toxiproxy proxy in front of the FaultProxy, whose hooks add a toxic
(or close the port) at a chosen request: "a closed port at the Nth request"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightkube import Client

from tests.faults.harness import (
    LEDGER,
    Row,
    Scene,
    concurrently,
    guarded,
    kubeconfig_via,
    needs,
    next_run_now_or_later,
    observe,
    run_cli,
    run_later,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Request, Rule
from tests.support.toxiproxy import Proxy, Toxiproxy

pytestmark = pytest.mark.cluster

SELECTOR = "PATCH /api/v1/namespaces/NS/services/shop"
EVENT = "POST /apis/events.k8s.io/v1/namespaces/NS/events"
# The verification opens with one WatchList request (sendInitialEvents), not a list and a watch.
VERIFY = "WATCH /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices"
LEASE_TAKE = "PUT /apis/coordination.k8s.io/v1/namespaces/NS/leases/bluegreen-shop"


@dataclass(frozen=True)
class Case:
    fault: str
    moment: str
    at: str | None  # the step that triggers it; None: from the start
    act: Callable[[Proxy], None]
    occurrence: int = 1
    moved: bool = True  # the switch gets its write through: its re-run needs intent (not a flip back)


def toxic(kind: str, *streams: str, **attributes: int) -> Callable[[Proxy], None]:
    """Add toxic `kind` on each stream (default downstream: the apiserver's answers)."""

    def act(proxy: Proxy) -> None:
        for stream in streams or ("downstream",):
            proxy.toxic(kind, stream=stream, **attributes)

    return act


def disable(proxy: Proxy) -> None:
    proxy.disable()


CASES = [
    Case(
        "latency 300 ms each way", "whole run", None, toxic("latency", "upstream", "downstream", latency=300)
    ),
    Case(
        "latency 2 s (jitter 1 s) downstream",
        "from the selector write on",
        SELECTOR,
        toxic("latency", latency=2000, jitter=1000),
    ),
    Case("reset_peer on every connection", "whole run", None, toxic("reset_peer", timeout=0), moved=False),
    Case("reset_peer", "from the lock write on", LEASE_TAKE, toxic("reset_peer", timeout=0), moved=False),
    Case("reset_peer", "from the selector write on", SELECTOR, toxic("reset_peer", timeout=0)),
    Case("reset_peer", "while verifying (EndpointSlice watch)", VERIFY, toxic("reset_peer", timeout=0)),
    Case(
        "timeout (data stops, no close)", "from the selector write on", SELECTOR, toxic("timeout", timeout=0)
    ),
    Case(
        "timeout 2 s then close",
        "from the Event's POST on (after the move)",
        EVENT,
        toxic("timeout", timeout=2000),
    ),
    Case("limit_data 4 kB downstream", "whole run", None, toxic("limit_data", bytes=4000), moved=False),
    Case("limit_data 20 kB downstream", "whole run", None, toxic("limit_data", bytes=20000)),
    Case(
        "limit_data 1 kB upstream",
        "whole run",
        None,
        toxic("limit_data", "upstream", bytes=1000),
        moved=False,
    ),
    Case("closed port", "whole run", None, disable, moved=False),
    Case("closed port", "at the lock write", LEASE_TAKE, disable, moved=False),
    Case("closed port", "at the selector write", SELECTOR, disable),
    Case("closed port", "while verifying (EndpointSlice watch)", VERIFY, disable),
]


IDS = [f"{c.fault}-{c.moment}".replace(" ", "-") for c in CASES]


@pytest.fixture(scope="module")
def tcp_faults(
    kube: Client,
    cluster_kubeconfig: Path,
    fault_proxy: FaultProxy,
    toxiproxy: Toxiproxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Row]:
    """Every case at once (each has its own Toxiproxy proxy and namespace); the rows by case id."""
    tmp = tmp_path_factory.mktemp("tcp")
    rows = {
        key: LEDGER.add(Row(fault=f"Toxiproxy: {case.fault}", phase="switch", moment=case.moment))
        for key, case in zip(IDS, CASES, strict=True)
    }
    later: list[tuple[Scene, Row]] = []

    def one(key: str, case: Case) -> None:
        row = rows[key]
        scene = set_up(kube, "switch", cluster_kubeconfig, tmp, "tcp")
        proxy = toxiproxy.proxy(fault_proxy.port)
        try:
            via = kubeconfig_via(cluster_kubeconfig, proxy.port, tmp / f"kubeconfig-{proxy.name}")
            rule = None
            if case.at is None:
                case.act(proxy)
            else:

                def trigger(_: Request) -> None:
                    case.act(proxy)

                rule = fault_proxy.add(
                    Rule(scene.namespace, case.at, "hook", occurrence=case.occurrence, hook=trigger)
                )
            run = run_cli(scene.args(), via)
            if rule is not None and not rule.fired.is_set():
                row.problems.append("the fault never fired: the run did not send that request")
            verdict(row, run, observe(kube, scene), scene, expect={0, 1, 3})
        finally:
            proxy.delete()
        next_run_now_or_later(kube, scene, row, later)

    concurrently(list(zip(IDS, CASES, strict=True)), lambda item: guarded(rows[item[0]], lambda: one(*item)))
    run_later(kube, later)
    return rows


@pytest.mark.parametrize(
    "key",
    [pytest.param(k, marks=needs("intent") if c.moved else ()) for k, c in zip(IDS, CASES, strict=True)],
)
def test_tcp_fault_during_switch(key: str, tcp_faults: dict[str, Row]) -> None:
    row = tcp_faults[key]
    assert row.consistent, " | ".join(row.cells())
