"""The engine runs under deploy/rbac.yaml's least-privilege Role, and says plainly what a lesser one lacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.rbac_authorization_v1 import Role

from bluegreen.cli import execute
from hack.localcluster import LocalCluster
from tests.integration.test_engine import QUICK, versions
from tests.support.apps import create_app, service_account_kubeconfig

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"
pytestmark = pytest.mark.cluster


def install_rbac(kube: Client, namespace: str) -> None:
    for obj in codecs.load_all_yaml(RBAC.read_text().replace("NAMESPACE", namespace)):
        kube.create(obj)


def test_the_shipped_role_is_namespaced_only() -> None:
    kinds = {doc["kind"] for doc in yaml.safe_load_all(RBAC.read_text())}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding"}


def test_a_whole_release_and_rollback_run_under_the_shipped_role(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    install_rbac(kube, namespace)
    config = service_account_kubeconfig(
        kube, cluster.kubeconfig, namespace, "bluegreen", tmp_path / "sa.kubeconfig"
    )

    def bg(*args: str) -> int:
        outcome = execute([*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(config)])
        assert outcome.error is None, outcome.error
        return outcome.exit_code

    assert bg("release", "--image", "registry.local/shop:2.0", *QUICK) == 0
    assert bg("patch", "--image", "registry.local/shop:1.0-p1", "--reason", "CVE") == 0  # the rollback target
    assert bg("status") == 0
    assert bg("rollback", "--reason", "drill") == 0
    assert bg("retire") == 0


def without_verb(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path, *, resource: str, verb: str
) -> Path:
    """deploy/rbac.yaml's Role installed with one verb taken off one resource; a kubeconfig for its
    ServiceAccount."""
    install_rbac(kube, namespace)
    role = kube.get(Role, "bluegreen", namespace=namespace)
    assert role.rules is not None
    for rule in role.rules:
        if rule.resources == [resource]:
            rule.verbs = [v for v in rule.verbs if v != verb]
    kube.replace(role)
    path: Path = service_account_kubeconfig(
        kube, cluster.kubeconfig, namespace, "bluegreen", tmp_path / "sa.kubeconfig"
    )
    return path


def test_a_role_without_patch_on_services_is_refused_with_the_missing_verb_and_nothing_changes(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    config = without_verb(kube, cluster, namespace, tmp_path, resource="services", verb="patch")
    state = versions(kube, namespace)
    outcome = execute(
        ["switch", "--to", "green", "--app", "shop", "-n", namespace, "--kubeconfig", str(config)]
    )

    assert outcome.exit_code == 3
    assert outcome.error is not None
    assert 'cannot patch resource "services"' in outcome.error.message
    assert "deploy/rbac.yaml" in outcome.error.remedy
    after = versions(kube, namespace)
    # The lock was taken and released (the Lease is ours to write); nothing else moved.
    assert {k: v for k, v in after.items() if not k.startswith("Lease")} == {
        k: v for k, v in state.items() if not k.startswith("Lease")
    }


def logged(config: Path, namespace: str, log: Path, *args: str) -> tuple[str, list[str]]:
    """`bluegreen ARGS` for app shop under `config`: its result, and the requests it sent."""
    log.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLUEGREEN_REQUEST_LOG", str(log))
        outcome = execute([*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(config)])
    assert outcome.error is None, outcome.error
    assert outcome.result is not None
    return outcome.result.result, log.read_text().splitlines()


def test_a_role_from_before_the_deployments_list_still_switches_and_rolls_back(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    """A Role installed before switch read both colours in one list (no `list` on deployments): the
    switch and the rollback read them one by one instead, as they did, rather than fail an upgrade."""
    create_app(kube, namespace, "shop", replicas=1)
    config = without_verb(kube, cluster, namespace, tmp_path, resource="deployments", verb="list")

    def bg(*args: str) -> tuple[str, list[str]]:
        return logged(config, namespace, tmp_path / "requests.log", *args)

    switched, sent = bg("switch", "--to", "green")
    assert switched == "switched"
    # The list refused (403), then each colour read by name.
    assert sum(f"/namespaces/{namespace}/deployments/shop-" in line for line in sent) == 2, "\n".join(sent)
    rolled, _ = bg("rollback")
    assert rolled == "rolled-back"


def test_a_role_from_before_the_lease_patch_still_takes_the_lock_by_reading_it(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    """A Role installed before switch took a free Lease in one JSON patch (no `patch` on leases): the
    switch and the rollback read the Lease and update it, as they did, and leave it free."""
    create_app(kube, namespace, "shop", replicas=1)
    config = without_verb(kube, cluster, namespace, tmp_path, resource="leases", verb="patch")

    def bg(*args: str) -> tuple[str, list[str]]:
        return logged(config, namespace, tmp_path / "requests.log", *args)

    for args, expected in ((("switch", "--to", "green"), "switched"), (("rollback",), "rolled-back")):
        result, sent = bg(*args)
        assert result == expected
        lease = [line.split(" ", 2)[1] for line in sent if "/leases" in line]
        # The patch refused (403), then read, taken (created, the first time) and released.
        assert lease[:2] == ["PATCH", "GET"] and lease[2] in ("PUT", "POST"), "\n".join(sent)
        assert lease[3:] == ["PUT"], "\n".join(sent)
    spec = kube.get(Lease, "bluegreen-shop", namespace=namespace).spec
    assert spec is not None and spec.holderIdentity is None
