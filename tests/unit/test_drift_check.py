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
from bluegreen.model import Color
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
