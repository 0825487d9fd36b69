"""How many requests a switch and a rollback send to the real apiserver (issue 14): a count, not a time.

Every request is a round trip on the critical path of a cutover (and of an emergency rollback). The
CLI appends each request it sends to BLUEGREEN_REQUEST_LOG; these tests read that log. What each
must still send, for safety (issue 10): the router's object and the target's readiness read, the
Lease taken and released, one guarded write that moves traffic and records the history, the
EndpointSlices verified; then the Event. The preview Service is not written: it follows the
candidate (deploy and the gate point it), so a switch and a rollback leave it alone.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Service

from bluegreen.cli import Outcome, execute
from hack.localcluster import LocalCluster
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster
# A switch: the live Service; the Lease taken while free, in one JSON patch (so what is read after it
# is read under it); both Deployments in one list (decide, readiness, images), not read again; the one
# guarded write; one WatchList of the EndpointSlices (the target's ready pods known from its Deployment
# as read, not listed); then the Event and the timings in the history (the preview Service is not
# written: it follows the candidate); the Lease released from the copy held (no read).
SWITCH_REQUESTS = 8
# A rollback: the same, plus the rejected mark on the release it left.
ROLLBACK_REQUESTS = 9
# A re-run with nothing to do: the live Service, the Lease taken, both Deployments (one list), the Lease
# given back; no other write.
NOOP_REQUESTS = 4
LEASE = "/apis/coordination.k8s.io/v1/namespaces/NS/leases/bluegreen-shop"


def steps(log: Path, namespace: str) -> list[str]:
    """The log as 'METHOD path' with the namespace blanked, a watch marked as one."""
    out = []
    for line in log.read_text().splitlines():
        _, method, target = line.split(" ", 2)
        path, _, query = target.partition("?")
        out.append(
            f"{'WATCH' if 'watch=' in query else method} {path.replace(f'/namespaces/{namespace}/', '/namespaces/NS/')}"
        )
    return out


LIVE = "/api/v1/namespaces/NS/services/shop"
DEPLOYMENTS = "/apis/apps/v1/namespaces/NS/deployments"
SLICES = "WATCH /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices"


def assert_one_write_moves_traffic(sent: list[str]) -> None:
    """Before the verification watch, the live Service is written exactly once (selector and history
    together); after it, only the non-critical rest (the timings, the Event); the preview Service
    never (it follows the candidate: deploy and the gate point it)."""
    before_verify = sent[: sent.index(SLICES)]
    writes = Counter(s for s in before_verify if s.split()[0] in ("PATCH", "PUT", "POST"))
    assert writes[f"PATCH {LIVE}"] == 1, "\n".join(sent)
    assert not any(s.endswith("/events") for s in before_verify), "\n".join(sent)
    assert not any(s.endswith("/services/shop-preview") for s in sent), "\n".join(sent)


def assert_both_colours_read_at_once(sent: list[str]) -> None:
    """Both colours' Deployments come from one list request, never one GET each."""
    assert sent.count(f"GET {DEPLOYMENTS}") == 1, "\n".join(sent)
    assert not any(s.startswith(f"GET {DEPLOYMENTS}/") for s in sent), "\n".join(sent)


def run(
    cluster: LocalCluster, namespace: str, log: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[Outcome, list[str]]:
    log.unlink(missing_ok=True)
    monkeypatch.setenv("BLUEGREEN_REQUEST_LOG", str(log))
    outcome = execute(
        [*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "-o", "json"]
    )
    assert outcome.exit_code == 0, outcome.error
    return outcome, steps(log, namespace)


def test_switch_and_rollback_send_only_what_they_must(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    # The Lease as every run of the app leaves it: free (the first run ever creates it: one request more).
    kube.create(
        Lease(metadata=ObjectMeta(name="bluegreen-shop"), spec=LeaseSpec(leaseDurationSeconds=60)),
        namespace=namespace,
    )
    log = tmp_path / "requests.log"

    switched, sent = run(cluster, namespace, log, monkeypatch, "switch", "--to", "green")
    assert switched.result is not None and switched.result.result == "switched"
    assert_one_write_moves_traffic(sent)
    assert_both_colours_read_at_once(sent)
    assert len(sent) == SWITCH_REQUESTS, "\n".join(sent)
    annotations = kube.get(Service, "shop", namespace=namespace).to_dict()["metadata"]["annotations"]
    assert json.loads(annotations["bluegreen.io/history"])[0]["to"] == "green"

    rolled, sent = run(cluster, namespace, log, monkeypatch, "rollback")
    assert rolled.result is not None and rolled.result.result == "rolled-back"
    assert_one_write_moves_traffic(sent)
    assert_both_colours_read_at_once(sent)
    assert len(sent) == ROLLBACK_REQUESTS, "\n".join(sent)

    again, sent = run(cluster, namespace, log, monkeypatch, "switch", "--to", "blue")
    assert again.result is not None and again.result.result == "noop"
    assert [s for s in sent if s.split()[0] in ("PATCH", "PUT", "POST")] == [
        f"PATCH {LEASE}",
        f"PUT {LEASE}",
    ], "\n".join(sent)
    assert_both_colours_read_at_once(sent)
    assert len(sent) == NOOP_REQUESTS, "\n".join(sent)


def test_a_pod_the_selector_catches_besides_the_deployments_is_verified_by_listing(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target's pods are known from its Deployment only while the EndpointSlices agree: a pod the
    Service selects that the Deployment did not make (here a bare one with the colour's labels) is
    never mistaken for converged or not; the pods are listed, and the switch verifies all of them."""
    from lightkube.models.core_v1 import Container, PodSpec
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Pod

    from tests.support.apps import COLOR_LABEL, NAME_LABEL, ready_pod_ips

    create_app(kube, namespace, "shop", replicas=2)
    stray = Pod(
        metadata=ObjectMeta(name="stray", labels={NAME_LABEL: "shop", COLOR_LABEL: "green"}),
        spec=PodSpec(containers=[Container(name="app", image="registry.local/shop:1.0")]),
    )
    kube.create(stray, namespace=namespace)
    deadline = time.monotonic() + 60
    while len(ready_pod_ips(kube, namespace, {NAME_LABEL: "shop", COLOR_LABEL: "green"})) < 3:
        assert time.monotonic() < deadline, "the stray pod never became Ready"
        time.sleep(0.2)

    switched, sent = run(
        cluster, namespace, tmp_path / "requests.log", monkeypatch, "switch", "--to", "green"
    )
    assert switched.result is not None and switched.result.result == "switched", switched
    assert "list exactly the 3 ready green pods" in " ".join(switched.result.messages)
    assert "GET /api/v1/namespaces/NS/pods" in sent, "\n".join(sent)
