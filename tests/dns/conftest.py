"""The dns router's real data plane: one BIND 9 per session on a loopback port, one external-dns per
test watching that test's namespace (tests/support/dnsrig.py).

Without `named` or the external-dns build the tests are skipped with the reason, never passed;
BLUEGREEN_REQUIRE_TRAFFIC=1 (CI) turns that skip into a failure, as for the traffic rig.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client

from bluegreen.model import AppSpec
from hack.localcluster import LocalCluster
from tests.support.apps import create_app
from tests.support.dnsrig import Bind, ExternalDns, external_dns_binary, named_binary


def not_here(reason: str) -> None:
    if os.environ.get("BLUEGREEN_REQUIRE_TRAFFIC") == "1":
        pytest.fail(f"BLUEGREEN_REQUIRE_TRAFFIC=1, but the DNS data plane cannot run: {reason}")
    pytest.skip(f"no DNS data plane here: {reason}")


@pytest.fixture(scope="session")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind]:
    if not named_binary():
        not_here("BIND 9's named is not installed (hack/install-bind.sh, run by `make deps`)")
    server = Bind(tmp_path_factory.mktemp("bind"))
    try:
        server.start()
    except RuntimeError as error:
        not_here(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def external_dns(
    bind: Bind, cluster: LocalCluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ExternalDns]:
    """external-dns for this test's namespace, started; stopped at the end (or earlier by the test).
    Indirectly parametrized "defaults" runs it with its default sync intervals (still --events)."""
    binary = external_dns_binary()
    if binary is None:
        not_here("external-dns is not built (hack/build-external-dns.sh, run by `make deps`)")
        raise AssertionError("unreachable")
    fast = getattr(request, "param", "fast") == "fast"
    publisher = ExternalDns(binary, cluster.kubeconfig, namespace, bind, tmp_path, fast=fast).start()
    try:
        yield publisher
    finally:
        publisher.stop()


@pytest.fixture
def app(kube: Client, namespace: str) -> AppSpec:
    """App `shop`: both colours Ready, Service `shop` on blue, `shop-preview` on green."""
    create_app(kube, namespace, "shop", replicas=1)
    return AppSpec(name="shop", namespace=namespace)
