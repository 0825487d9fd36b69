"""The examples users copy work as written: the manifests apply, and the Action runs a release on
them as the example's least-privilege ServiceAccount (examples/k8s/rbac.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube import Client, codecs
from lightkube.resources.core_v1 import Service

import entrypoint
from hack.localcluster import LocalCluster
from tests.support.apps import service_account_kubeconfig, wait_available
from tests.support.github import read_outputs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "k8s"


def apply_examples(kube: Client, namespace: str) -> None:
    """Every example manifest except the Namespace, moved into this test's namespace."""
    for name in ("rbac.yaml", "shop.yaml"):
        for obj in codecs.load_all_yaml((EXAMPLES / name).read_text()):
            assert obj.metadata is not None and obj.metadata.namespace == "shop"
            obj.metadata.namespace = namespace
            for subject in getattr(obj, "subjects", None) or []:
                subject.namespace = namespace
            kube.create(obj)


def step(tmp_path: Path, kubeconfig: Path, **inputs: str) -> tuple[int, dict[str, str]]:
    output = tmp_path / f"output-{inputs['phase']}"
    output.touch()
    env = {
        "GITHUB_OUTPUT": str(output),
        "BLUEGREEN_KUBECONFIG": kubeconfig.read_text(),
        **{"BLUEGREEN_" + key.upper(): value for key, value in inputs.items()},
    }
    return entrypoint.main(env), read_outputs(output)


def test_the_example_app_releases_under_the_example_role(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_examples(kube, namespace)
    for color in ("blue", "green"):
        wait_available(kube, namespace, f"shop-{color}")
    ci = service_account_kubeconfig(
        kube, cluster.kubeconfig, namespace, "bluegreen", tmp_path / "ci.kubeconfig"
    )

    code, out = step(
        tmp_path, ci, phase="deploy", app="shop", namespace=namespace, image="ghcr.io/acme/shop:1.1.0"
    )
    assert code == 0, capsys.readouterr().out
    assert out["result"] == "deployed"
    code, out = step(tmp_path, ci, phase="switch", app="shop", namespace=namespace)
    assert code == 0, capsys.readouterr().out
    assert (out["result"], out["active-color"]) == ("switched", "green")
    live = kube.get(Service, "shop", namespace=namespace)
    assert live.spec is not None and live.spec.selector == {
        "app.kubernetes.io/name": "shop",
        "bluegreen.io/color": "green",
    }
