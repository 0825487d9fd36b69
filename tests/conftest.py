"""Fixtures every test can use: one real local cluster per test session, a fresh namespace per test.

The cluster is the real control plane from hack/localcluster.py (kube-apiserver with RBAC, etcd, the
controllers, the scheduler and kwok nodes). It is started in a temporary directory for the session
and stopped at its end, or reused when BLUEGREEN_TEST_KUBECONFIG names the kubeconfig of one already
running (`make cluster` writes .cluster/kubeconfig), which makes a quick edit-test loop.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from hack.localcluster import LocalCluster
from tests.support.prism import Recorder, prism


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    existing = os.environ.get("BLUEGREEN_TEST_KUBECONFIG")
    if existing:
        reused = LocalCluster(Path(existing).resolve().parent)
        if not reused.running():
            pytest.fail(
                f"BLUEGREEN_TEST_KUBECONFIG={existing}, but no cluster runs there: run `make cluster`"
            )
        yield reused
        return
    started = LocalCluster(tmp_path_factory.mktemp("cluster")).up(die_with_parent=True, quiet=True)
    try:
        yield started
    finally:
        started.down()


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster) -> Client:
    """An admin client (system:masters) on the session's cluster."""
    return Client(KubeConfig.from_file(cluster.kubeconfig), field_manager="bluegreen-tests")


@pytest.fixture
def namespace(kube: Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (not waited for: names never repeat)."""
    base = request.node.name.lower().replace("_", "-").strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"bluegreen.test/ns": "true"})))
    yield name
    kube.delete(Namespace, name)


@pytest.fixture(scope="session")
def prism_server() -> Iterator[Recorder]:
    """Prism serving GitHub's OpenAPI description, behind a recording proxy (tests/support/prism.py)."""
    with prism() as recorder:
        yield recorder


@pytest.fixture
def github_api(prism_server: Recorder) -> Recorder:
    """The session's Prism with an empty record and no refusal, for one test."""
    prism_server.exchanges.clear()
    prism_server.refuse = None
    return prism_server
