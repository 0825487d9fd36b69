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
    drop,
    kubeconfig_via,
    next_run,
    observe,
    run_cli,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Request, Rule
from tests.support.toxiproxy import Proxy, Toxiproxy

pytestmark = pytest.mark.cluster

SELECTOR = "PATCH /api/v1/namespaces/NS/services/shop"
WATCH = "WATCH /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices"
LEASE_TAKE = "PUT /apis/coordination.k8s.io/v1/namespaces/NS/leases/bluegreen-shop"


@dataclass(frozen=True)
class Case:
    fault: str
    moment: str
    at: str | None  # the step that triggers it; None: from the start
    act: Callable[[Proxy], None]
    occurrence: int = 1


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
    Case("reset_peer on every connection", "whole run", None, toxic("reset_peer", timeout=0)),
    Case("reset_peer", "from the lock write on", LEASE_TAKE, toxic("reset_peer", timeout=0)),
    Case("reset_peer", "from the selector write on", SELECTOR, toxic("reset_peer", timeout=0)),
    Case("reset_peer", "while verifying (EndpointSlice watch)", WATCH, toxic("reset_peer", timeout=0)),
    Case(
        "timeout (data stops, no close)", "from the selector write on", SELECTOR, toxic("timeout", timeout=0)
    ),
    Case(
        "timeout 2 s then close",
        "from the 2nd Service write on",
        SELECTOR,
        toxic("timeout", timeout=2000),
        occurrence=2,
    ),
    Case("limit_data 4 kB downstream", "whole run", None, toxic("limit_data", bytes=4000)),
    Case("limit_data 20 kB downstream", "whole run", None, toxic("limit_data", bytes=20000)),
    Case("limit_data 1 kB upstream", "whole run", None, toxic("limit_data", "upstream", bytes=1000)),
    Case("closed port", "whole run", None, disable),
    Case("closed port", "at the lock write", LEASE_TAKE, disable),
    Case("closed port", "at the selector write", SELECTOR, disable),
    Case("closed port", "while verifying (EndpointSlice watch)", WATCH, disable),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.fault}-{c.moment}".replace(" ", "-") for c in CASES])
def test_tcp_fault_during_switch(
    case: Case,
    kube: Client,
    cluster_kubeconfig: Path,
    fault_proxy: FaultProxy,
    toxiproxy: Toxiproxy,
    tmp_path: Path,
) -> None:
    scene = set_up(kube, "switch", cluster_kubeconfig, tmp_path, "tcp")
    proxy = toxiproxy.proxy(fault_proxy.port)
    try:
        via = kubeconfig_via(cluster_kubeconfig, proxy.port, tmp_path / "kubeconfig-toxic")
        row = Row(fault=f"Toxiproxy: {case.fault}", phase="switch", moment=case.moment)
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
    next_run(kube, scene, LEDGER.add(row))
    drop(kube, scene)
    assert row.consistent, row.problems
