"""`deploy --copy-cluster-config` on the real cluster: config found in the cluster, versioned per colour.

The app's pods name a ConfigMap and a Secret that live in the cluster, not in any file. With the flag
a deploy copies them under content-hash names for the idle colour alone, so editing the originals
later never changes a running colour, and the next release takes the originals as they are then.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.core_v1 import (
    ConfigMapEnvSource,
    EnvFromSource,
    EnvVar,
    EnvVarSource,
    SecretKeySelector,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Secret
from lightkube.types import PatchType

from bluegreen.cli import Outcome, execute
from bluegreen.report import text
from hack.localcluster import LocalCluster
from tests.integration.test_engine import Bg, deployment_dict, selector_color
from tests.support.apps import deployment, service, wait_available

pytestmark = pytest.mark.cluster
SECRET = "s3cret-value"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@pytest.fixture
def bg(cluster: LocalCluster, namespace: str) -> Bg:
    def run(*args: str) -> Outcome:
        return execute([*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)])

    return run


def app_with_cluster_config(kube: Client, namespace: str) -> None:
    """blue live and green idle, both naming ConfigMap shop-config and Secret shop-db directly."""
    kube.create(
        ConfigMap(metadata=ObjectMeta(name="shop-config"), data={"GREETING": "hello"}), namespace=namespace
    )
    kube.create(
        Secret(
            metadata=ObjectMeta(
                name="shop-db",
                # as `kubectl apply` leaves it: the values in clear, which a copy must not carry along
                annotations={LAST_APPLIED: json.dumps({"stringData": {"password": SECRET}})},
            ),
            data={"password": base64.b64encode(SECRET.encode()).decode()},
        ),
        namespace=namespace,
    )
    for color in ("blue", "green"):
        dep = deployment("shop", color, replicas=1)
        assert dep.spec is not None and dep.spec.template.spec is not None
        container = dep.spec.template.spec.containers[0]
        container.envFrom = [EnvFromSource(configMapRef=ConfigMapEnvSource(name="shop-config"))]
        container.env = [
            EnvVar(
                name="DB_PASSWORD",
                valueFrom=EnvVarSource(secretKeyRef=SecretKeySelector(name="shop-db", key="password")),
            )
        ]
        kube.create(dep, namespace=namespace)
    kube.create(service("shop", "shop", "blue"), namespace=namespace)
    kube.create(service("shop-preview", "shop", "green"), namespace=namespace)
    for color in ("blue", "green"):
        wait_available(kube, namespace, f"shop-{color}")


def refs(kube: Client, namespace: str, color: str) -> tuple[str, str]:
    """(the ConfigMap, the Secret) colour `color`'s pod template names."""
    container = deployment_dict(kube, namespace, f"shop-{color}")["spec"]["template"]["spec"]["containers"][0]
    return container["envFrom"][0]["configMapRef"]["name"], container["env"][0]["valueFrom"]["secretKeyRef"][
        "name"
    ]


def as_dict(obj: Any) -> dict[str, Any]:
    found: dict[str, Any] = obj.to_dict()
    return found


def test_cluster_config_is_copied_for_the_idle_colour_alone_and_the_next_release_takes_it_as_it_is_then(
    bg: Bg, kube: Client, namespace: str
) -> None:
    app_with_cluster_config(kube, namespace)
    blue = deployment_dict(kube, namespace, "shop-blue")["metadata"]["resourceVersion"]

    outcome = bg("deploy", "--image", "registry.local/shop:2.0", "--copy-cluster-config")

    assert outcome.exit_code == 0, outcome.error
    config, secret = refs(kube, namespace, "green")
    assert config.startswith("shop-config-") and secret.startswith("shop-db-")
    assert refs(kube, namespace, "blue") == ("shop-config", "shop-db")  # live untouched
    assert deployment_dict(kube, namespace, "shop-blue")["metadata"]["resourceVersion"] == blue
    copied = as_dict(kube.get(ConfigMap, config, namespace=namespace))
    assert copied["data"] == {"GREETING": "hello"} and copied["immutable"] is True
    assert copied["metadata"]["labels"]["bluegreen.io/app"] == "shop"
    assert copied["metadata"]["annotations"]["bluegreen.io/copy-of"] == "shop-config"
    db = as_dict(kube.get(Secret, secret, namespace=namespace))
    assert base64.b64decode(db["data"]["password"]).decode() == SECRET
    assert LAST_APPLIED not in (db["metadata"].get("annotations") or {})
    assert outcome.result is not None
    shown = text(outcome.result) + json.dumps(outcome.result.to_dict())
    assert SECRET not in shown and base64.b64encode(SECRET.encode()).decode() not in shown
    assert f"apply Secret {secret} (copy of shop-db)" in outcome.result.changes
    assert bg("diff").exit_code == 0  # the copies are the release's: no drift

    # The original edited after the deploy: the idle colour's copy (immutable) does not change.
    kube.patch(
        ConfigMap,
        "shop-config",
        {"data": {"GREETING": "bonjour"}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    assert as_dict(kube.get(ConfigMap, config, namespace=namespace))["data"] == {"GREETING": "hello"}

    # Green goes live; the next release copies the original as it is now, for blue alone.
    assert bg("switch", "--to", "green").exit_code == 0
    again = bg("deploy", "--image", "registry.local/shop:3.0", "--copy-cluster-config")
    assert again.exit_code == 0, again.error
    assert selector_color(kube, namespace) == "green"
    new_config, new_secret = refs(kube, namespace, "blue")
    assert new_config != config and new_config.startswith("shop-config-")
    assert new_secret == secret  # the same content: the same copy
    assert as_dict(kube.get(ConfigMap, new_config, namespace=namespace))["data"] == {"GREETING": "bonjour"}
    assert refs(kube, namespace, "green") == (config, secret)  # live keeps its config


def test_a_dry_run_with_copy_cluster_config_creates_no_copy(bg: Bg, kube: Client, namespace: str) -> None:
    app_with_cluster_config(kube, namespace)

    outcome = bg("deploy", "--image", "registry.local/shop:2.0", "--copy-cluster-config", "--dry-run")

    assert outcome.exit_code == 0, outcome.error
    assert outcome.result is not None and outcome.result.result == "planned"
    assert any(c.startswith("apply ConfigMap shop-config-") for c in outcome.result.changes)
    assert {c.metadata.name for c in kube.list(ConfigMap, namespace=namespace) if c.metadata} == {
        "shop-config",
        "kube-root-ca.crt",
    }
    assert refs(kube, namespace, "green") == ("shop-config", "shop-db")
