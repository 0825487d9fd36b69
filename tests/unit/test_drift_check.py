"""The gate's `drift` check decides as `diff` does: the colours judged by drift.judge, failed on any
difference beyond the release the newest deploy declared (pure: Deployments as dicts, no cluster)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bluegreen import drift, intent, manifests
from bluegreen.checks.drift import SHOWN, measurement
from bluegreen.config import DriftCheckConfig, load
from bluegreen.errors import ConfigError
from bluegreen.github import summary
from bluegreen.model import Color, Result
from bluegreen.phases.gate import judged_dict
from bluegreen.verdict import Phase, judge

LABEL = "bluegreen.io/color"


def deployment(color: str, *, image: str = "shop:1", log_level: str = "info") -> dict[str, Any]:
    return {
        "metadata": {"name": f"shop-{color}", "annotations": {}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "shop", LABEL: color}},
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "env": [{"name": "LOG_LEVEL", "value": log_level}]}
                    ]
                },
            }
        },
    }


def deployed(live: dict[str, Any], idle: dict[str, Any], *, seq: int = 1) -> dict[str, Any]:
    """`idle` as deploy leaves it: the candidate (its template hash) and what it declared against live."""
    out = copy.deepcopy(idle)

    def view(dep: dict[str, Any]) -> dict[str, Any]:
        return manifests.normalized(
            dep["spec"]["template"], color_label=LABEL, originals={}, mask_images=True
        )

    template_hash = intent.template_hash(out["spec"]["template"], LABEL)
    out["metadata"]["annotations"] = {
        intent.CANDIDATE: intent.encode({"hash": template_hash, "seq": seq}),
        drift.DECLARED: drift.encode(drift.record(view(live), view(out), {}, {})),
    }
    return out


def verdict(blue: dict[str, Any], green: dict[str, Any]) -> tuple[Phase, str]:
    def no_config(kind: str, name: str) -> None:
        raise AssertionError(f"no config is referenced, yet {kind} {name} was read")

    judgement = drift.judge({Color.BLUE: blue, Color.GREEN: green}, {}, no_config, color_label=LABEL)
    judged = judge(measurement("drift", judgement, target="shop", at=0.0))
    return judged.phase, judged.measurement.detail


def test_only_a_new_image_is_no_drift() -> None:
    phase, detail = verdict(deployment("blue"), deployment("green", image="shop:2"))
    assert phase is Phase.SUCCESSFUL
    assert "no drift" in detail


def test_an_env_change_no_deploy_declared_fails_the_check_naming_the_field() -> None:
    phase, detail = verdict(deployment("blue"), deployment("green", log_level="trace"))
    assert phase is Phase.FAILED
    assert 'spec.containers[app].env[LOG_LEVEL].value: blue "info", green "trace"' in detail


def test_the_declared_release_passes_and_an_edit_after_the_deploy_fails() -> None:
    blue = deployment("blue")
    green = deployed(blue, deployment("green", image="shop:2", log_level="debug"))
    assert verdict(blue, green)[0] is Phase.SUCCESSFUL

    edited = copy.deepcopy(green)  # `kubectl set env deploy/shop-green LOG_LEVEL=trace`
    edited["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "trace"
    phase, detail = verdict(blue, edited)
    assert phase is Phase.FAILED
    assert 'released as blue "info", green "debug"' in detail
    assert "changed after deploy #1 wrote it" in detail

    live_edited = deployment("blue", log_level="warn")  # an edit of the live colour is drift too
    assert verdict(live_edited, green)[0] is Phase.FAILED


def test_a_long_drift_is_cut_in_the_detail_but_counted_whole() -> None:
    findings = [drift.Finding(f"spec.x{i}", 1, 2, drift=True) for i in range(SHOWN + 5)]
    judged = judge(measurement("drift", drift.Judgement(findings, None, 0), target="shop", at=0.0))
    assert judged.phase is Phase.FAILED
    assert judged.measurement.values["drift"] == SHOWN + 5
    assert "5 more" in judged.measurement.detail


def test_the_kind_is_configured_and_takes_no_keys(tmp_path: Any) -> None:
    path = tmp_path / "bluegreen.yaml"
    path.write_text("checks:\n  - name: same-env\n    kind: drift\n")
    assert load(path).checks == (DriftCheckConfig(name="same-env", line=2),)
    path.write_text("checks:\n  - name: same-env\n    kind: drift\n    max: 1\n")
    with pytest.raises(ConfigError, match=r"bluegreen.yaml:4: checks\[0\]\.max: unknown key"):
        load(path)


def test_the_job_summary_shows_drift_field_by_field_and_what_a_deploy_changed_beyond_images() -> None:
    blue, green = deployment("blue"), deployment("green", log_level="trace")
    judgement = drift.judge({Color.BLUE: blue, Color.GREEN: green}, {}, lambda k, n: None, color_label=LABEL)
    diffed = Result(phase="diff", result="drift", app="shop", namespace="shop")
    diffed.details = {"drift": [f.to_dict() for f in judgement.drifted]}
    shown = summary.markdown(diffed, None, phase="diff", app="shop")
    assert '| spec.containers[app].env[LOG_LEVEL].value | "info" | "trace" |' in shown

    gated = Result(phase="gate", result="failed", app="shop", namespace="shop")
    judged = judge(measurement("same-env", judgement, target="shop", at=0.0))
    gated.details = {"gate": {"result": "failed", "rounds": [{"checks": [judged_dict(judged)]}]}}
    assert "### Drift (gate check same-env: failed)" in summary.markdown(
        gated, None, phase="gate", app="shop"
    )
    (note,) = [n for n in summary.notes(gated, None, phase="gate", app="shop") if "same-env" in n.title]
    assert "LOG_LEVEL" in note.message and "trace" in note.message

    deployed = Result(phase="deploy", result="deployed", app="shop", namespace="shop")
    deployed.details = {"beyond_images": ["spec.containers[app].env[LOG_LEVEL]", "ConfigMap shop-config"]}
    shown = summary.markdown(deployed, None, phase="deploy", app="shop")
    assert (
        "### Changed beyond images\n\n- `spec.containers[app].env[LOG_LEVEL]`\n- `ConfigMap shop-config`"
        in shown
    )
    deployed.details = {"beyond_images": []}
    assert "Nothing: this release changes only images." in summary.markdown(
        deployed, None, phase="deploy", app="shop"
    )
    deployed.details = {}  # an --image deploy: no section
    assert "Changed beyond images" not in summary.markdown(deployed, None, phase="deploy", app="shop")
