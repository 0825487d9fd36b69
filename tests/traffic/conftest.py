"""The real-traffic rig for these tests: one per session, entered by each test's thread.

The rig (hack/traffic_rig.py) runs its own cluster, kube-proxy and per-pod servers in a network
namespace; a test runs inside that namespace (`inside`), so its Kubernetes client, its load and the
`bluegreen` commands it starts all reach the rig's cluster and ClusterIPs. Without root or network
namespaces the tests are skipped with the reason, never passed; BLUEGREEN_REQUIRE_TRAFFIC=1 (CI) turns
that skip into a failure, so a CI machine that lost the rig cannot go green without it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from hack.traffic_rig import Rig, RigUnavailable, unavailable


def not_here(reason: str) -> None:
    if os.environ.get("BLUEGREEN_REQUIRE_TRAFFIC") == "1":
        pytest.fail(f"BLUEGREEN_REQUIRE_TRAFFIC=1, but the traffic rig cannot run: {reason}")
    pytest.skip(f"no real traffic here: {reason}")


def host_state() -> tuple[list[str], list[str]]:
    """What the rig could leave on the host: 10.x addresses and kube-proxy's nftables tables.

    Only those: other tests (Docker's) may add their own tables meanwhile."""
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    return (
        [line for line in addresses.splitlines() if " inet 10." in line],
        [line for line in tables.splitlines() if "kube-proxy" in line],
    )


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    reason = unavailable()
    if reason:
        not_here(reason)
    before = host_state()
    started = Rig(tmp_path_factory.mktemp("rig"))
    try:
        started.up()
    except RigUnavailable as error:
        not_here(str(error))
    try:
        yield started
    finally:
        started.down()
    assert not started.exists(), f"network namespace {started.name} left behind"
    assert host_state() == before, "the rig left an address or an nftables table on the host"


@pytest.fixture
def inside(rig: Rig) -> Iterator[Rig]:
    """This test's thread (and what it starts) in the rig's network namespace."""
    with rig.inside():
        yield rig


@pytest.fixture
def kube(inside: Rig) -> Client:
    """An admin client on the rig's cluster (its connections are made inside the namespace)."""
    return Client(KubeConfig.from_file(inside.kubeconfig), field_manager="bluegreen-tests")


@pytest.fixture
def namespace(kube: Client, request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.node.name.lower().replace("_", "-").strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kube.delete(Namespace, name)
