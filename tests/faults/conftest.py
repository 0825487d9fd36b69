"""Fixtures of the fault-injection suite, and the fault table printed at the end of the run.

Two proxies sit between the CLI and the session cluster's apiserver, on loopback free ports:

    bluegreen ──TLS──> Toxiproxy (TCP toxics) ──> FaultProxy (per-request faults, hooks) ──> apiserver

Toxiproxy forwards bytes, so TLS passes through it; the FaultProxy terminates TLS with the apiserver's
own certificate. Each test makes its own Toxiproxy proxy, and FaultProxy rules are per namespace, so
the rows of a test can run at the same time.

The table is printed in the terminal summary; with BLUEGREEN_FAULT_TABLE=FILE it is also written there
as Markdown (docs/reliability.md quotes it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.localcluster import LocalCluster
from tests.faults.harness import LEDGER, kubeconfig_via
from tests.faults.httpfaults import FaultProxy
from tests.support.toxiproxy import Toxiproxy, toxiproxy_server


def apiserver_port(cluster: LocalCluster) -> int:
    return int(json.loads(cluster.state_file.read_text())["ports"]["apiserver"])


@pytest.fixture(scope="session")
def fault_proxy(cluster: LocalCluster) -> Iterator[FaultProxy]:
    with FaultProxy(cluster.dir / "pki", apiserver_port(cluster)) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def toxiproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toxiproxy]:
    with toxiproxy_server(tmp_path_factory.mktemp("toxiproxy") / "toxiproxy.log") as server:
        yield server


@pytest.fixture
def proxied(cluster: LocalCluster, fault_proxy: FaultProxy, tmp_path: Path) -> Path:
    """A kubeconfig that reaches the session cluster through the FaultProxy."""
    return kubeconfig_via(cluster.kubeconfig, fault_proxy.port, tmp_path / "kubeconfig-proxied")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER.rows:
        return
    table = LEDGER.markdown()
    terminalreporter.section("fault injection: one row per injected fault")
    terminalreporter.write_line(table)
    out = os.environ.get("BLUEGREEN_FAULT_TABLE")
    if out:
        Path(out).write_text(table + "\n")


@pytest.fixture(scope="session")
def cluster_kubeconfig(cluster: LocalCluster) -> Path:
    """The session cluster's own kubeconfig: straight to the apiserver, for set-up and re-runs."""
    return cluster.kubeconfig
