"""`bluegreen group`: several apps named in bluegreen.yaml move together, and back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from bluegreen.cli import execute
from hack.localcluster import LocalCluster
from tests.integration.test_engine import selector_color
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster


def test_group_switch_and_rollback_through_the_cli(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    for app in ("cart", "web"):
        create_app(kube, namespace, app, replicas=1)
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        f"groups:\n  - name: storefront\n    namespace: {namespace}\n    members: [cart, web]\n"
    )

    def group(*args: str) -> int:
        outcome = execute(
            [
                "group",
                *args,
                "--group",
                "storefront",
                "--config",
                str(config),
                "--kubeconfig",
                str(cluster.kubeconfig),
            ]
        )
        assert outcome.error is None, outcome.error
        return outcome.exit_code

    assert group("switch", "--to", "green") == 0
    assert [selector_color(kube, namespace, app) for app in ("cart", "web")] == ["green", "green"]
    assert group("switch", "--to", "green") == 0  # already there: nothing moves
    assert [selector_color(kube, namespace, app) for app in ("cart", "web")] == ["green", "green"]
    assert group("rollback") == 0
    assert [selector_color(kube, namespace, app) for app in ("cart", "web")] == ["blue", "blue"]


def test_group_wait_for_lock_outlasts_a_members_lock_left_by_a_dead_run(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    for app in ("cart", "web"):
        create_app(kube, namespace, app, replicas=1)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-web"),
            spec=LeaseSpec(
                holderIdentity="a run that died", leaseDurationSeconds=2, renewTime=datetime.now(UTC)
            ),
        ),
        namespace=namespace,
    )
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        f"groups:\n  - name: storefront\n    namespace: {namespace}\n    members: [cart, web]\n"
    )
    argv = ["group", "switch", "--to", "green", "--group", "storefront", "--config", str(config)]
    argv += ["--kubeconfig", str(cluster.kubeconfig)]
    refused = execute(argv)
    assert refused.exit_code == 1 and refused.error is not None
    assert "a run that died" in refused.error.message and "--wait-for-lock" in refused.error.remedy
    waited = execute([*argv, "--wait-for-lock", "30s"])
    assert waited.exit_code == 0, waited.error
    assert [selector_color(kube, namespace, app) for app in ("cart", "web")] == ["green", "green"]


def test_an_unknown_group_is_a_usage_error(cluster: LocalCluster, tmp_path: Path) -> None:
    config = tmp_path / "bluegreen.yaml"
    config.write_text("groups:\n  - name: storefront\n    namespace: x\n    members: [cart]\n")
    outcome = execute(
        [
            "group",
            "switch",
            "--group",
            "checkout",
            "--config",
            str(config),
            "--kubeconfig",
            str(cluster.kubeconfig),
        ]
    )
    assert outcome.exit_code == 2
    assert outcome.error is not None and "no group named 'checkout'" in outcome.error.message
