"""`deploy -f` and `diff` on the real local cluster, under the shipped least-privilege Role.

The fixtures (tests/fixtures/manifests) are the app `shop` as kustomize v5.8.1 and helm v3.22.0 render
it (hack/render-fixtures.sh, from examples/kustomize and examples/helm/shop): release 1 and release 2,
which changes an env var, a ConfigMap value and a Secret value; and the Helm chart's output.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.autoscaling_v2 import HorizontalPodAutoscaler
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret, Service
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import PatchType

from bluegreen.cli import Outcome, execute
from bluegreen.github import summary
from bluegreen.report import text
from hack.localcluster import LocalCluster
from tests.integration.test_engine import versions
from tests.integration.test_rbac import install_rbac
from tests.support.apps import (
    COLOR_LABEL,
    create_app,
    ready_pod_ips,
    service_account_kubeconfig,
    wait_available,
)

pytestmark = pytest.mark.cluster
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"
V1, V2 = FIXTURES / "kustomize-v1.yaml", FIXTURES / "kustomize-v2.yaml"
HELM = FIXTURES / "helm.yaml"
SECRETS = (
    "s3cr3t-v1",
    "s3cr3t-v2",
    "czNjcjN0LXYx",
    "czNjcjN0LXYy",
    "s3cr3t-helm",
)  # the fixtures' DB passwords, plain and base64
Bg = Callable[..., Outcome]
# An HPA and a PDB as users write them for the app: deploy makes one of each per colour.
SCALING = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: shop}
spec:
  scaleTargetRef: {kind: Deployment, name: shop, apiVersion: apps/v1}
  minReplicas: 3
  maxReplicas: 5
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: shop}
spec:
  minAvailable: 1
  selector:
    matchLabels: {app.kubernetes.io/name: shop}
"""


@pytest.fixture
def bg(kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path) -> Bg:
    """`bluegreen ARGS` for app shop, as the ServiceAccount of deploy/rbac.yaml; its output may never
    hold a Secret's value."""
    create_app(kube, namespace, "shop", replicas=2)
    install_rbac(kube, namespace)
    config = service_account_kubeconfig(kube, cluster.kubeconfig, namespace, "bluegreen", tmp_path / "sa")

    def run(*args: str) -> Outcome:
        outcome = execute(
            [*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(config), "--timeout", "60s"]
        )
        shown = json.dumps(outcome.result.to_dict()) + text(outcome.result) if outcome.result else ""
        shown += str(outcome.error.message if outcome.error else "")
        assert not [s for s in SECRETS if s in shown], shown
        return outcome

    return run


def template(kube: Client, namespace: str, color: str) -> dict[str, Any]:
    out: dict[str, Any] = kube.get(Deployment, f"shop-{color}", namespace=namespace).to_dict()["spec"][
        "template"
    ]
    return out


def env_of(spec: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in spec["containers"][0].get("env") or []}


def pods(kube: Client, namespace: str, color: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """name -> (resourceVersion, spec) of the colour's pods."""
    return {
        p.metadata.name: (p.metadata.resourceVersion, p.spec.to_dict())
        for p in kube.list(Pod, namespace=namespace, labels={COLOR_LABEL: color})
        if p.metadata and p.metadata.name and p.metadata.resourceVersion and p.spec
    }


def configs(kube: Client, namespace: str) -> dict[str, str]:
    """kind/name -> resourceVersion of every ConfigMap and Secret (but the namespace's CA bundle)."""
    out = {}
    for kind, items in (
        ("ConfigMap", kube.list(ConfigMap, namespace=namespace)),
        ("Secret", kube.list(Secret, namespace=namespace)),
    ):
        for obj in items:
            meta = obj.metadata
            assert meta and meta.name and meta.resourceVersion
            if meta.name != "kube-root-ca.crt":
                out[f"{kind}/{meta.name}"] = meta.resourceVersion
    return out


def greeting_of(kube: Client, namespace: str, spec: dict[str, Any]) -> str:
    """The GREETING a pod with this spec gets: the value in the ConfigMap its env references."""
    ref = env_of(spec)["GREETING"]["valueFrom"]["configMapKeyRef"]
    return str(kube.get(ConfigMap, ref["name"], namespace=namespace).data[ref["key"]])  # type: ignore[index]


def serving(kube: Client, namespace: str) -> set[str]:
    """The pods the live Service selects now (its ready pods' IPs)."""
    selector = kube.get(Service, "shop", namespace=namespace).spec.selector  # type: ignore[union-attr]
    return ready_pod_ips(kube, namespace, selector or {})


def test_a_release_of_env_and_config_reaches_only_the_idle_colour_and_rollback_brings_back_the_old_config(
    kube: Client, namespace: str, bg: Bg, tmp_path: Path
) -> None:
    # Release 1 from the files onto green, then live.
    assert bg("deploy", "-f", str(V1)).exit_code == 0
    assert (
        bg("switch", "--force").exit_code == 0
    )  # no bluegreen.yaml here: --force is not needed, but harmless
    green_pods, green_configs = pods(kube, namespace, "green"), configs(kube, namespace)
    green_rv = kube.get(Deployment, "shop-green", namespace=namespace).metadata.resourceVersion  # type: ignore[union-attr]
    assert {greeting_of(kube, namespace, spec) for _, spec in green_pods.values()} == {"hello"}

    # Release 2 onto blue (idle): the env var and the ConfigMap value change there alone.
    deployed = bg(
        "deploy", "-f", str(V2), "--set-image", "app=registry.local/shop:2.0"
    )  # on top of the files
    assert deployed.exit_code == 0, deployed.error
    assert deployed.result is not None  # the summary says what changed beyond images, without values
    (beyond,) = [m for m in deployed.result.messages if m.startswith("beyond images")]
    assert "spec.containers[app].env[LOG_LEVEL]" in beyond and "debug" not in beyond
    blue = template(kube, namespace, "blue")["spec"]
    assert env_of(blue)["LOG_LEVEL"]["value"] == "debug"
    assert blue["containers"][0]["image"] == "registry.local/shop:2.0"
    copy = env_of(blue)["GREETING"]["valueFrom"]["configMapKeyRef"]["name"]
    assert copy.startswith("shop-config-4956fb4f4b-") and greeting_of(kube, namespace, blue) == "hola"
    secret = blue["containers"][0]["envFrom"][0]["secretRef"]["name"]
    stored = kube.get(Secret, secret, namespace=namespace)
    assert base64.b64decode((stored.data or {})["DB_PASSWORD"]) == b"s3cr3t-v2" and stored.immutable
    # Green, live: its Deployment, its pods and its config not touched (resourceVersions equal).
    assert kube.get(Deployment, "shop-green", namespace=namespace).metadata.resourceVersion == green_rv  # type: ignore[union-attr]
    assert pods(kube, namespace, "green") == green_pods
    after = configs(kube, namespace)
    assert {k: v for k, v in after.items() if k in green_configs} == green_configs
    assert len(after) == len(green_configs) + 2  # release 2's ConfigMap and Secret copies, beside release 1's
    assert bg("diff").exit_code == 0  # a clean release: the colours differ by it alone

    # The switch brings release 2's config with release 2's pods.
    assert bg("switch").exit_code == 0
    blue_pods = pods(kube, namespace, "blue")
    blue_ips = {
        p.status.podIP for p in kube.list(Pod, namespace=namespace, labels={COLOR_LABEL: "blue"}) if p.status
    }
    assert serving(kube, namespace) == blue_ips
    assert {greeting_of(kube, namespace, spec) for _, spec in blue_pods.values()} == {"hola"}

    # The rollback brings release 1's config back with release 1's very pods.
    assert bg("rollback", "--reason", "drill").exit_code == 0
    assert pods(kube, namespace, "green") == green_pods
    green_ips = {
        p.status.podIP for p in kube.list(Pod, namespace=namespace, labels={COLOR_LABEL: "green"}) if p.status
    }
    assert serving(kube, namespace) == green_ips
    assert {greeting_of(kube, namespace, spec) for _, spec in green_pods.values()} == {"hello"}
    assert bg("diff").exit_code == 0

    # retire keeps every copy a colour references (blue's too: a retired colour can be rolled back to).
    before = configs(kube, namespace)
    retired = bg("retire")
    assert retired.exit_code == 0, retired.error
    assert configs(kube, namespace) == before
    # Release 3 onto blue replaces release 2 there: release 2's copies are referenced by no colour now.
    v3 = tmp_path / "v3.yaml"
    v3.write_text(V2.read_text().replace("GREETING: hola", "GREETING: bonjour"))
    assert bg("deploy", "-f", str(v3)).exit_code == 0
    cleaned = bg("retire")
    assert cleaned.exit_code == 0, cleaned.error
    left = set(configs(kube, namespace))
    assert f"ConfigMap/{copy}" not in left  # release 2's ConfigMap copy: gone
    assert f"Secret/{secret}" in left  # release 2's Secret copy: release 3 has the same Secret, so kept
    for color in ("blue", "green"):
        spec = template(kube, namespace, color)["spec"]
        assert f"ConfigMap/{env_of(spec)['GREETING']['valueFrom']['configMapKeyRef']['name']}" in left


@pytest.mark.parametrize(
    ("case", "documents", "says"),
    [
        ("two Deployments", "{v1}\n---\n{other}", "exactly one Deployment"),
        ("our Service", "{v1}\n---\n{svc}", "is bluegreen's own Service"),
        (
            "an unknown kind",
            "{v1}\n---\n{ingress}",
            "kinds bluegreen does not release: networking.k8s.io/v1 Ingress shop",
        ),
        (
            "an HPA of another Deployment",
            "{v1}\n---\n{hpa}",
            "spec.scaleTargetRef must be the app's Deployment",
        ),
        ("a PDB of other pods", "{v1}\n---\n{pdb}", "do not select the Deployment's pods"),
        ("invalid YAML", "{v1}\n---\nkind: [Deployment\n", "invalid YAML"),
        ("an unknown field", "{typo}", 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"'),
        ("a Secret not base64", "{v1}\n---\n{bad_secret}", "data.TOKEN is not base64"),
        ("another namespace", "{v1_other_ns}", "is for namespace 'elsewhere'"),
        ("a ConfigMap too big", "{v1}\n---\n{big}", "larger than 1024 KiB"),
    ],
)
def test_malformed_manifests_are_one_clear_error_and_nothing_is_applied(
    kube: Client, namespace: str, bg: Bg, tmp_path: Path, case: str, documents: str, says: str
) -> None:
    v1 = V1.read_text()
    parts = {
        "v1": v1,
        "other": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: worker}\nspec: {}",
        "svc": "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec: {selector: {app.kubernetes.io/name: shop}}",
        "ingress": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop}\nspec: {}",
        "hpa": SCALING.replace("name: shop, apiVersion", "name: worker, apiVersion"),
        "pdb": SCALING.replace("matchLabels: {app.kubernetes.io/name: shop}", "matchLabels: {tier: db}"),
        "typo": v1.replace(
            "image: registry.local", "imagePullPolicyy: Always\n        image: registry.local"
        ),
        "bad_secret": "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ndata: {TOKEN: not-base64!}",
        "v1_other_ns": v1.replace("  name: shop\n", "  name: shop\n  namespace: elsewhere\n"),
        "big": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {blob: "
        + "x" * (1024 * 1024)
        + "}",
    }
    path = tmp_path / "manifests.yaml"
    path.write_text(documents.format(**parts))
    before = (versions(kube, namespace), configs(kube, namespace))

    outcome = bg("deploy", "-f", str(path))

    assert outcome.exit_code == 2, (case, outcome.error)
    assert outcome.error is not None, case
    assert says in outcome.error.message, outcome.error.message
    assert (versions(kube, namespace), configs(kube, namespace)) == before  # nothing applied


def test_diff_finds_a_direct_edit_of_either_colour_and_none_after_a_clean_release(
    kube: Client, namespace: str, bg: Bg
) -> None:
    assert bg("diff").exit_code == 0  # as created: the same template on both colours
    assert bg("deploy", "-f", str(V1)).exit_code == 0
    assert bg("diff").exit_code == 0

    def edit(color: str, value: str) -> None:  # what `kubectl edit` or `kubectl set env` does
        patch = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "env": [{"name": "LOG_LEVEL", "value": value}]}]}
                }
            }
        }
        kube.patch(
            Deployment,
            f"shop-{color}",
            patch,
            namespace=namespace,
            patch_type=PatchType.STRATEGIC,
            field_manager="kubectl-edit",
        )
        wait_available(kube, namespace, f"shop-{color}")

    edit("green", "trace")  # the idle colour, after bluegreen deployed it
    drifted = bg("diff")
    assert drifted.exit_code == 1 and drifted.result is not None and drifted.result.result == "drift"
    where = {d["where"] for d in drifted.result.details["drift"]}
    assert "spec.containers[app].env[LOG_LEVEL].value" in where
    assert any("LOG_LEVEL" in line and "trace" in line for line in drifted.result.messages)

    assert bg("deploy", "-f", str(V1)).exit_code == 0  # the files again: the edit is gone
    assert env_of(template(kube, namespace, "green")["spec"])["LOG_LEVEL"]["value"] == "info"
    assert bg("diff").exit_code == 0

    edit("blue", "warn")  # the live colour, which has no LOG_LEVEL in this release
    drifted = bg("diff")
    assert drifted.exit_code == 1 and drifted.result is not None
    assert "spec.containers[app].env[LOG_LEVEL].value" in {
        d["where"] for d in drifted.result.details["drift"]
    }


def test_a_drift_check_fails_the_gate_after_a_direct_edit_and_status_says_drift(
    kube: Client, namespace: str, bg: Bg, tmp_path: Path
) -> None:
    config = tmp_path / "bluegreen.yaml"
    config.write_text("checks: [{name: same-env, kind: drift}]\ngate: {min-healthy: 0s, interval: 1s}\n")
    deployed = bg("deploy", "-f", str(V1))
    assert deployed.exit_code == 0 and deployed.result is not None
    # The deploy's summary lists what the release changed beyond images (names, never values).
    shown = summary.markdown(deployed.result, None, phase="deploy", app="shop")
    assert "### Changed beyond images" in shown
    assert deployed.result.details["beyond_images"]
    assert all(f"`{item}`" in shown for item in deployed.result.details["beyond_images"])

    passed = bg("gate", "--config", str(config))
    assert passed.exit_code == 0 and passed.result is not None, passed.result and passed.result.messages
    clean = bg("status")
    assert clean.result is not None and clean.result.details["drift"] == []
    assert "drift:    none" in text(clean.result)

    # `kubectl set env deploy/shop-green LOG_LEVEL=trace`: the idle colour, after bluegreen deployed it.
    kube.patch(
        Deployment,
        "shop-green",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "app", "env": [{"name": "LOG_LEVEL", "value": "trace"}]}]
                    }
                }
            }
        },
        namespace=namespace,
        patch_type=PatchType.STRATEGIC,
        field_manager="kubectl-edit",
    )
    wait_available(kube, namespace, "shop-green")
    failed = bg("gate", "--config", str(config))
    assert failed.exit_code == 1 and failed.result is not None and failed.result.result == "failed"
    shown = summary.markdown(failed.result, None, phase="gate", app="shop")
    assert "### Drift (gate check same-env: failed)" in shown
    assert (
        'spec.containers[app].env[LOG_LEVEL].value: blue (absent), green "trace" '
        '(released as blue (absent), green "info")' in shown
    )

    status = bg("status")
    assert status.exit_code == 0 and status.result is not None
    assert "spec.containers[app].env[LOG_LEVEL].value" in {d["where"] for d in status.result.details["drift"]}
    said = text(status.result)
    assert "drift:    DRIFT" in said and "LOG_LEVEL" in said and "trace" in said
    assert "### Drift" in summary.markdown(status.result, None, phase="status", app="shop")
    diffed = bg("diff")
    assert diffed.exit_code == 1 and diffed.result is not None
    assert "spec.containers[app].env[LOG_LEVEL].value" in summary.markdown(
        diffed.result, None, phase="diff", app="shop"
    )

    assert bg("deploy", "-f", str(V1)).exit_code == 0  # the files again: the edit is gone
    again = bg("gate", "--config", str(config))
    assert again.exit_code == 0 and again.result is not None, again.result and again.result.messages
    after = bg("status")
    assert after.result is not None and after.result.details["drift"] == []


def replicas_of(kube: Client, namespace: str, color: str) -> int | None:
    spec = kube.get(Deployment, f"shop-{color}", namespace=namespace).spec
    return spec.replicas if spec else None


def wait_for(what: str, predicate: Callable[[], bool], *, timeout: float = 90.0) -> None:
    """Bounded: the HPA controller acts every 15 s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(1.0)


def test_hpa_and_pdb_are_applied_per_colour_and_a_retired_colours_hpa_does_not_scale_it_up(
    kube: Client, namespace: str, bg: Bg, tmp_path: Path
) -> None:
    v1, v2, v3 = tmp_path / "v1.yaml", tmp_path / "v2.yaml", tmp_path / "v3.yaml"
    v1.write_text(V1.read_text() + "\n---\n" + SCALING)
    v2.write_text(V2.read_text() + "\n---\n" + SCALING)
    v3.write_text(V2.read_text().replace("GREETING: hola", "GREETING: bonjour"))  # no HPA, no PDB

    assert bg("deploy", "-f", str(v1)).exit_code == 0  # onto green; blue (live) is left as it was
    hpa = kube.get(HorizontalPodAutoscaler, "shop-green", namespace=namespace)
    assert hpa.spec is not None and hpa.spec.scaleTargetRef.name == "shop-green"
    pdb = kube.get(PodDisruptionBudget, "shop-green", namespace=namespace)
    assert pdb.spec is not None and pdb.spec.selector is not None
    assert pdb.spec.selector.matchLabels == {"app.kubernetes.io/name": "shop", COLOR_LABEL: "green"}
    assert [
        h.metadata.name for h in kube.list(HorizontalPodAutoscaler, namespace=namespace) if h.metadata
    ] == ["shop-green"]
    # The HPA scales green, and green only: its minReplicas (3) is above the live colour's 2.
    wait_for("green scaled to the HPA's minReplicas", lambda: replicas_of(kube, namespace, "green") == 3)
    assert replicas_of(kube, namespace, "blue") == 2

    assert bg("switch").exit_code == 0  # green live
    assert bg("deploy", "-f", str(v2)).exit_code == 0  # onto blue, with blue's own HPA and PDB
    assert {
        h.metadata.name for h in kube.list(HorizontalPodAutoscaler, namespace=namespace) if h.metadata
    } == {
        "shop-blue",
        "shop-green",
    }
    assert bg("switch").exit_code == 0  # blue live
    retired = bg("retire")
    assert retired.exit_code == 0, retired.error
    assert replicas_of(kube, namespace, "green") == 0

    def disabled() -> bool:
        status = kube.get(HorizontalPodAutoscaler, "shop-green", namespace=namespace).status
        return any(
            c.type == "ScalingActive" and c.reason == "ScalingDisabled"
            for c in (status and status.conditions) or []
        )

    # The controller has looked at the retired colour since, and left it at 0.
    wait_for("the HPA controller to see the retired colour", disabled)
    assert replicas_of(kube, namespace, "green") == 0

    # A release without them removes the idle colour's HPA and PDB; the live colour's stay.
    deployed = bg("deploy", "-f", str(v3))
    assert deployed.exit_code == 0 and deployed.result is not None
    assert "deleted HorizontalPodAutoscaler shop-green" in deployed.result.changes
    assert {
        h.metadata.name for h in kube.list(HorizontalPodAutoscaler, namespace=namespace) if h.metadata
    } == {"shop-blue"}
    assert {p.metadata.name for p in kube.list(PodDisruptionBudget, namespace=namespace) if p.metadata} == {
        "shop-blue"
    }


def test_helm_template_output_deploys_with_the_charts_names_and_labels(
    kube: Client, namespace: str, bg: Bg
) -> None:
    # The chart selects name and instance (as `helm create` makes it), the test app's colours the name
    # only, and a Deployment's selector cannot change: deploy says so, and writes nothing.
    refused = bg("deploy", "-f", str(HELM))
    assert refused.exit_code == 2 and refused.error is not None
    assert "a Deployment's selector cannot change" in refused.error.message
    kube.delete(Deployment, "shop-green", namespace=namespace)  # the idle colour, made anew from the chart
    deployed = bg("deploy", "-f", str(HELM))

    assert deployed.exit_code == 0, deployed.error
    green = kube.get(Deployment, "shop-green", namespace=namespace).to_dict()
    labels = green["metadata"]["labels"]
    assert (labels["helm.sh/chart"], labels["app.kubernetes.io/managed-by"]) == ("shop-0.3.1", "Helm")
    assert green["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shop",
        "app.kubernetes.io/instance": "shop",
        COLOR_LABEL: "green",
    }
    spec = green["spec"]["template"]["spec"]
    env = env_of(spec)
    cm, secret = (
        env["GREETING"]["valueFrom"]["configMapKeyRef"],
        env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"],
    )
    # The chart's names, suffixed by content for this colour; the values as the chart rendered them.
    assert cm["name"].startswith("shop-config-") and greeting_of(kube, namespace, spec) == "hello"
    stored = kube.get(Secret, secret["name"], namespace=namespace)
    assert secret["name"].startswith("shop-db-") and stored.immutable
    assert base64.b64decode((stored.data or {})["DB_PASSWORD"]) == b"s3cr3t-helm"
    wait_available(kube, namespace, "shop-green")
    # The chart's instance label is Helm's, not Argo CD's: status does not take it for a GitOps tool.
    status = bg("status")
    assert status.result is not None and "green" not in status.result.details["gitops"]
