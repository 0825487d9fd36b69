"""One real node per session (hack/realnode.py): kubelet, containerd, runc, CNI and kube-proxy in
namespaces of their own, beside the local control plane; each test's thread enters its network
namespace, so its client, its load and the `bluegreen` commands it starts reach the node's cluster
and ClusterIPs.

Without root, CAP_SYS_ADMIN or the binaries the tests are skipped with the reason, never passed;
BLUEGREEN_REQUIRE_REALNODE=1 (CI) turns that skip into a failure. The host is checked before and
after the session: no 10.x address, no kube-proxy/CNI netfilter table or chain, no sysctl changed,
no cgroup, namespace or mount left.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from hack.realnode import PREFIX, NodeUnavailable, RealNode, cgroup_hierarchies, unavailable

SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)


def not_here(reason: str) -> None:
    if os.environ.get("BLUEGREEN_REQUIRE_REALNODE") == "1":
        pytest.fail(f"BLUEGREEN_REQUIRE_REALNODE=1, but a real node cannot run: {reason}")
    pytest.skip(f"no real node here: {reason}")


def _out(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def host_state() -> dict[str, list[str]]:
    """What a real node could leave on the host. Only its own kinds of things: other tests (Docker's)
    may add their own tables and addresses meanwhile."""
    sysctls = []
    for key in SYSCTLS:
        path = Path("/proc/sys") / key
        if path.exists():
            sysctls.append(f"{key}={path.read_text().strip()}")
    netfilter = _out("nft", "list", "tables") + _out("iptables-save")
    return {
        "addresses": [line for line in _out("ip", "-4", "-o", "addr").splitlines() if " inet 10." in line],
        "netfilter": [
            line
            for line in netfilter.splitlines()
            if any(word in line for word in ("kube-proxy", "KUBE-", "CNI-", "cni0"))
        ],
        "sysctls": sysctls,
        "cgroups": sorted(str(p) for h in cgroup_hierarchies() for p in h.glob(f"{PREFIX}*")),
        "namespaces": sorted(str(p) for p in Path("/run/netns").glob(f"{PREFIX}*"))
        if Path("/run/netns").exists()
        else [],
        "mounts": [line for line in _out("cat", "/proc/self/mounts").splitlines() if "realnode" in line],
        "links": [line for line in _out("ip", "-o", "link").splitlines() if "cni0" in line or "veth" in line],
    }


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    reason = unavailable()
    if reason:
        not_here(reason)
    before = host_state()
    started = RealNode(tmp_path_factory.mktemp("realnode"))
    try:
        started.up()
    except NodeUnavailable as error:
        not_here(str(error))
    try:
        yield started
    finally:
        started.down()
    after = host_state()
    assert not started.exists(), f"network namespace {started.name} left behind"
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"the real node left something on the host (before, after): {changed}"


@pytest.fixture
def inside(node: RealNode) -> Iterator[RealNode]:
    """This test's thread (and the threads and processes it starts) in the node's network namespace."""
    with node.inside():
        yield node


@pytest.fixture
def kube(inside: RealNode) -> Client:
    return Client(KubeConfig.from_file(inside.kubeconfig), field_manager="bluegreen-tests")


@pytest.fixture
def namespace(kube: Client, request: pytest.FixtureRequest) -> Iterator[str]:
    base = request.node.name.lower().replace("_", "-").strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    kube.delete(Namespace, name)
