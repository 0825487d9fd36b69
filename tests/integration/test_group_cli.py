"""`bluegreen group`: several apps named in bluegreen.yaml move together, and back."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube import Client

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
