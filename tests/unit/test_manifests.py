"""The pure side of `deploy -f` and `diff`: manifests checked and turned into the idle colour, drift judged."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen import drift, manifests
from bluegreen.manifests import ManifestError
from bluegreen.model import Color
from bluegreen.phases.retire import unreferenced

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "manifests"
LABEL = "bluegreen.io/color"


def parsed(*texts: str) -> manifests.Manifests:
    return manifests.parse([(f"f{i}.yaml", t) for i, t in enumerate(texts)], app="shop", namespace="shop")


def fixture(name: str) -> manifests.Manifests:
    return manifests.parse(manifests.read([str(FIXTURES / name)]), app="shop", namespace="shop")


def green(found: manifests.Manifests) -> dict[str, Any]:
    return manifests.colored(found, name="shop-green", namespace="shop", color_label=LABEL, color="green")


def test_the_deployment_becomes_the_colour_and_every_config_reference_points_at_the_copies() -> None:
    found = fixture("kustomize-v1.yaml")
    dep = green(found)
    cm = manifests.copy_name(found.configs[0].obj)
    secret = manifests.copy_name(found.configs[1].obj)
    assert dep["metadata"]["name"] == "shop-green" and dep["metadata"]["namespace"] == "shop"
    assert dep["metadata"]["labels"] == {"app.kubernetes.io/name": "shop", LABEL: "green"}
    assert dep["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "shop", LABEL: "green"}
    assert dep["spec"]["template"]["metadata"]["labels"][LABEL] == "green"
    assert manifests.references(dep["spec"]["template"]) == {("ConfigMap", cm), ("Secret", secret)}
    spec = dep["spec"]["template"]["spec"]
    assert spec["volumes"][1]["projected"]["sources"] == [
        {"configMap": {"name": cm}},
        {"secret": {"name": secret}},
    ]
    assert spec["containers"][0]["envFrom"] == [{"secretRef": {"name": secret}}]
    # The rest as written; the manifests themselves are not changed.
    assert (
        dep["spec"]["progressDeadlineSeconds"] == 30
        and spec["containers"][0]["image"] == "registry.local/shop:1.0"
    )
    assert found.deployment.obj["metadata"]["name"] == "shop"


def test_a_copy_is_named_by_its_content_immutable_and_labelled_for_cleanup() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"PW": "x"}}
    same = {**secret, "stringData": None, "data": {"PW": base64.b64encode(b"x").decode()}}
    other = {**secret, "stringData": {"PW": "y"}}
    assert manifests.copy_name(secret) == manifests.copy_name(same) != manifests.copy_name(other)
    assert (
        manifests.copy_name(secret).startswith("db-") and len(manifests.copy_name(secret)) == len("db-") + 10
    )
    made = manifests.config_copy(secret, app="shop", namespace="shop")
    assert made["immutable"] is True and made["data"] == same["data"] and "stringData" not in made
    assert made["metadata"]["labels"][manifests.APP_LABEL] == "shop"
    assert made["metadata"]["annotations"][manifests.COPY_OF] == "db"


def test_helm_output_parses_with_its_labels_kept() -> None:
    found = fixture(
        "helm.yaml"
    )  # `helm template` prints Secrets before ConfigMaps, each with its `# Source:`
    assert [(d.kind, d.obj["metadata"]["name"]) for d in found.configs] == [
        ("Secret", "shop-db"),
        ("ConfigMap", "shop-config"),
    ]
    dep = green(found)
    assert dep["metadata"]["labels"]["helm.sh/chart"] == "shop-0.3.1"
    assert dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    # The chart's selector (name and instance) kept, the colour beside it; references to the copies.
    assert dep["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shop",
        "app.kubernetes.io/instance": "shop",
        LABEL: "green",
    }
    assert manifests.references(dep["spec"]["template"]) == {
        ("ConfigMap", manifests.copy_name(found.configs[1].obj)),
        ("Secret", manifests.copy_name(found.configs[0].obj)),
    }


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        ((), "hold no object"),
        (("kind: [",), "f0.yaml:1: invalid YAML"),
        (("- a\n- b\n",), "f0.yaml#1: not a Kubernetes object"),
        (("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n",), "without metadata.name"),
        (("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",), "exactly one Deployment"),
        (
            ("apiVersion: v2\nkind: Widget\nmetadata: {name: w}\n",),
            "kinds bluegreen does not release: v2 Widget w (f0.yaml#1)",
        ),
        (("a: &x 1\nb: *x\n",), "aliases"),
        (
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {selector: {matchLabels: {x: y}}, "
                "template: {metadata: {labels: {x: z}}, spec: {containers: []}}}\n",
            ),
            "do not match spec.template.metadata.labels",
        ),
        (
            ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {K: '%%%'}\n",),
            "data.K is not base64 (its value is not shown)",
        ),
    ],
)
def test_bad_manifests_are_refused_naming_the_file_and_document(texts: tuple[str, ...], says: str) -> None:
    with pytest.raises(ManifestError, match=None) as refused:
        parsed(*texts)
    assert says in str(refused.value)
    assert "%%%" not in str(refused.value)


def test_every_problem_is_named_at_once() -> None:
    deployment = (FIXTURES / "kustomize-v1.yaml").read_text()
    with pytest.raises(ManifestError) as refused:
        parsed(
            deployment,
            deployment.replace("name: shop\n", "name: worker\n"),
            "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n",
        )
    message = str(refused.value)
    assert "exactly one Deployment" in message and "batch/v1 Job j" in message and "repeats" in message


def test_services_that_would_fight_bluegreen_are_named() -> None:
    found = parsed(
        (FIXTURES / "kustomize-v1.yaml").read_text(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: shop}\nspec: {selector: {a: b}}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: both}\nspec: {selector: {app.kubernetes.io/name: shop}}\n",
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: green-only}}\nspec: {{selector: {{{LABEL}: green}}}}\n",
    )
    problems = manifests.service_problems(
        found, service="shop", preview_service="shop-preview", color_label=LABEL
    )
    assert len(problems) == 2
    assert "Service shop" in problems[0] and "bluegreen's own Service" in problems[0]
    assert "Service both" in problems[1] and "both colours" in problems[1]


def test_read_takes_files_directories_globs_and_stdin(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x: 1\n")
    (tmp_path / "b.yml").write_text("x: 2\n")
    (tmp_path / "notes.txt").write_text("not read\n")
    assert [s for s, _ in manifests.read([str(tmp_path)])] == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yml"),
    ]
    assert manifests.expand([f"{tmp_path}/*.y*ml", "-"]) == [
        str(tmp_path / "a.yaml"),
        str(tmp_path / "b.yml"),
        "-",
    ]
    assert manifests.read(["-"], stdin=io.BytesIO(b"x: 3\n")) == [("<stdin>", "x: 3\n")]
    with pytest.raises(ManifestError, match="matches no file"):
        manifests.expand([f"{tmp_path}/*.json"])
    with pytest.raises(ManifestError, match="cannot read"):
        manifests.read([str(tmp_path / "missing.yaml")])


def test_differences_match_named_items_by_name() -> None:
    a = {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}
    b = {"containers": [{"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "A", "value": "1"}]}]}
    assert manifests.differences(a, b) == {"containers[app].env[B].value": ("2", "3")}
    assert manifests.differences(a, {"containers": [{"name": "app"}]}) == {
        "containers[app].env[A].name": ("A", None),
        "containers[app].env[A].value": ("1", None),
        "containers[app].env[B].name": ("B", None),
        "containers[app].env[B].value": ("2", None),
    }


def views(found: manifests.Manifests, color: str) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    template = manifests.colored(
        found, name=f"shop-{color}", namespace="shop", color_label=LABEL, color=color
    )["spec"]["template"]
    copies = {(d.kind, manifests.copy_name(d.obj)): d.name for d in found.configs}
    view = manifests.normalized(template, color_label=LABEL, originals=copies, mask_images=True)
    refs = {(k, copies.get((k, n), n)): n for k, n in manifests.references(template)}
    return view, refs


def judge(
    blue: tuple[Any, Any],
    green_: tuple[Any, Any],
    *,
    declared: dict[str, Any] | None,
    contents: dict[str, Any] | None = None,
) -> list[drift.Finding]:
    return drift.compare(
        templates={Color.BLUE: blue[0], Color.GREEN: green_[0]},
        refs={Color.BLUE: blue[1], Color.GREEN: green_[1]},
        contents=contents or {},
        newest=Color.GREEN,
        declared=declared,
        edited={},
    )


def test_a_declared_release_is_not_drift_and_an_edit_after_it_is() -> None:
    v1, v2 = views(fixture("kustomize-v1.yaml"), "blue"), views(fixture("kustomize-v2.yaml"), "green")
    record = drift.record(v1[0], v2[0], v1[1], v2[1])
    # kustomize renames a changed ConfigMap (its own hash suffix): the references change with the value.
    assert "spec.containers[app].env[LOG_LEVEL].value" in record["template"]
    assert {p.rsplit(".", 1)[1] for p in record["template"]} == {"value", "name"}
    assert "ConfigMap shop-config-4956fb4f4b" in record["config"]
    # The record describes the release: nothing is drift, though the colours differ.
    findings = judge(v1, v2, declared=record)
    assert findings and not [f for f in findings if f.drift]
    # Without a record the same difference is drift.
    assert "spec.containers[app].env[LOG_LEVEL].value" in [
        f.where for f in judge(v1, v2, declared=None) if f.drift
    ]
    # An edit of the released value after the deploy is drift, naming what was released.
    edited = yaml.safe_load(yaml.safe_dump(v2[0]))
    edited["spec"]["containers"][0]["env"][1]["value"] = "trace"
    (finding,) = [f for f in judge(v1, (edited, v2[1]), declared=record) if f.drift]
    assert finding.line() == (
        'drift: spec.containers[app].env[LOG_LEVEL].value: blue "info", green "trace" (released as blue "info", green "debug")'
    )


def test_config_content_is_compared_and_a_secret_value_never_shown() -> None:
    v1, v2 = views(fixture("kustomize-v1.yaml"), "blue"), views(fixture("kustomize-v2.yaml"), "green")
    contents = {}
    for found in (fixture("kustomize-v1.yaml"), fixture("kustomize-v2.yaml")):
        for doc in found.configs:
            contents[manifests.copy_name(doc.obj)] = {
                "kind": doc.kind,
                **manifests.content(doc.obj),
                "hash": manifests.content_hash(doc.obj),
            }
    findings = judge(v1, v2, declared=None, contents=contents)
    lines = [f.line() for f in findings]
    assert (
        "drift: ConfigMap shop-config-g48668m5c4 / shop-config-4956fb4f4b: GREETING: "
        'blue "hello", green "hola" (config not part of any release bluegreen deployed)' in lines
    )
    assert (
        'drift: Secret shop-db-m69k67c89g / shop-db-fcbt6hh57d: DB_PASSWORD: blue "(value hidden)", green "(value hidden)" (config not part of any release bluegreen deployed)'
        in lines
    )
    assert not [line for line in lines if "czNjcjN0" in line or "s3cr3t" in line]
    # With the deploy's record the same content differences are the release, listed but not drift.
    record = drift.record(v1[0], v2[0], v1[1], v2[1])
    released = judge(v1, v2, declared=record, contents=contents)
    assert not [f for f in released if f.drift]
    assert (
        'release: ConfigMap shop-config-g48668m5c4 / shop-config-4956fb4f4b: GREETING: blue "hello", green "hola"'
        in [f.line() for f in released]
    )
    # A copy whose content no longer matches its name was changed after bluegreen made it.
    name = next(iter(contents))
    contents[name] = {**contents[name], "hash": "0000000000"}
    assert any(
        f.drift and "changed after bluegreen made it" in f.why
        for f in judge(v1, v2, declared=None, contents=contents)
    )


def test_retire_deletes_only_copies_no_colour_references() -> None:
    found = fixture("kustomize-v1.yaml")
    template = green(found)["spec"]["template"]
    referenced = dict.fromkeys(manifests.references(template), "x")
    stale = {("ConfigMap", "shop-config-old-0123456789"): "shop-config"}
    assert unreferenced({**referenced, **stale}, [template, {"spec": {}}]) == list(stale)
    assert unreferenced({**referenced, **stale}, []) == sorted({**referenced, **stale})


SCALING = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: shop, labels: {team: a}}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  minReplicas: 2
  maxReplicas: 5
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app.kubernetes.io/name: shop}}
"""


def test_an_hpa_and_a_pdb_are_made_per_colour_targeting_that_colour_only() -> None:
    found = parsed((FIXTURES / "kustomize-v1.yaml").read_text() + "\n---\n" + SCALING)
    hpa, pdb = (
        manifests.per_color(
            d.obj,
            app="shop",
            namespace="ns",
            deployment="shop-green",
            color_label="bluegreen.io/color",
            color="green",
        )
        for d in found.scaling
    )
    assert hpa["metadata"]["name"] == "shop-green" and hpa["spec"]["scaleTargetRef"]["name"] == "shop-green"
    assert hpa["metadata"]["labels"] == {
        "team": "a",
        manifests.APP_LABEL: "shop",
        manifests.COLOR_OF: "green",
    }
    assert hpa["spec"]["minReplicas"] == 2  # the rest as written
    assert pdb["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "shop",
        "bluegreen.io/color": "green",
    }
    assert found.scaling[0].obj["spec"]["scaleTargetRef"]["name"] == "shop"  # the parsed files untouched


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            ("name: shop}\n  minReplicas", "name: worker}\n  minReplicas"),
            "spec.scaleTargetRef must be the app's Deployment",
        ),
        (
            ("{matchLabels: {app.kubernetes.io/name: shop}}", "{matchLabels: {tier: db}}"),
            "do not select the Deployment's pods",
        ),
        (("{matchLabels: {app.kubernetes.io/name: shop}}", "{matchExpressions: []}"), "no matchExpressions"),
    ],
)
def test_an_hpa_or_pdb_that_is_not_the_apps_is_refused(change: tuple[str, str], says: str) -> None:
    text = (FIXTURES / "kustomize-v1.yaml").read_text() + "\n---\n" + SCALING.replace(*change)
    with pytest.raises(ManifestError, match=says):
        parsed(text)


def test_copy_cluster_config_copies_each_named_object_or_the_original_of_a_copy() -> None:
    template = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "envFrom": [{"configMapRef": {"name": "shop-config-81e47dec67"}}],
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "p"}}}],
                }
            ],
            "volumes": [{"name": "v", "secret": {"secretName": "tls"}}],
        }
    }
    copies = {("ConfigMap", "shop-config-81e47dec67"): "shop-config"}
    assert manifests.cluster_sources(template, copies) == {
        ("ConfigMap", "shop-config-81e47dec67"): "shop-config",  # back to its original, as it is now
        ("Secret", "shop-db"): "shop-db",
        ("Secret", "tls"): "tls",
    }
