"""The Action's pure parts: inputs, the runner protocol, the job summary and annotations."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from bluegreen.errors import NotFoundError, UsageError
from bluegreen.github import summary
from bluegreen.github.inputs import DEFAULTS, decode_kubeconfig, kubeconfig_secrets, parse
from bluegreen.github.runner import Annotation, Runner, command
from bluegreen.model import Color, Result
from bluegreen.options import DeployOptions, GateOptions, RollbackOptions, WatchOptions
from tests.support.github import commands, read_outputs

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: s3cr3t-token-value, client-key-data: S0VZS0VZS0VZ}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def env(**values: str) -> dict[str, str]:
    return {"BLUEGREEN_PHASE": "switch", "BLUEGREEN_APP": "shop", **values}


def test_action_yml_declares_exactly_the_inputs_parsed_with_the_same_defaults() -> None:
    declared = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    assert set(declared) == set(DEFAULTS)
    for name, spec in declared.items():
        if name != "github-token":  # its default is the job token expression
            assert str(spec.get("default", "")) == DEFAULTS[name], name


@pytest.mark.parametrize("key", ["BLUEGREEN_DRY_RUN", "INPUT_DRY-RUN", "INPUT_DRY_RUN"])
def test_a_hyphenated_input_is_read_in_every_spelling(key: str) -> None:
    assert parse(env(**{key: "true"})).dry_run is True


def test_every_bad_input_is_reported_at_once_with_its_name() -> None:
    with pytest.raises(UsageError) as raised:
        parse(
            env(
                BLUEGREEN_PHASE="shift",
                BLUEGREEN_APP="Shop_1",
                BLUEGREEN_TO="purple",
                BLUEGREEN_TIMEOUT="soon",
                BLUEGREEN_DRY_RUN="maybe",
                BLUEGREEN_LOG_FORMAT="xml",
                BLUEGREEN_PUSHGATEWAY="pushgateway:9091",
            )
        )
    text = str(raised.value)
    for expected in (
        "phase: 'shift'",
        "app: 'Shop_1'",
        "to: unknown colour 'purple'",
        "timeout:",
        "dry-run:",
        "log-format: 'xml': use one of text, json",
        "pushgateway: 'pushgateway:9091' is not an http(s) URL",
    ):
        assert expected in text
    assert "with:" in raised.value.remedy


def test_deploy_needs_an_image_and_rejects_a_malformed_one() -> None:
    with pytest.raises(UsageError, match="needs `image`, `set-images` or `manifests`"):
        parse(env(BLUEGREEN_PHASE="deploy"))
    with pytest.raises(UsageError, match=re.escape("image: 'shop:1.0 ; rm -rf /'")):
        parse(env(BLUEGREEN_PHASE="deploy", BLUEGREEN_IMAGE="shop:1.0 ; rm -rf /"))


def test_user_text_reaches_the_engine_as_given_never_through_a_shell() -> None:
    reason = 'bad release $(curl evil) "; rm -rf /'
    options = parse(env(BLUEGREEN_PHASE="rollback", BLUEGREEN_REASON=reason, BLUEGREEN_TO="Blue")).options(
        "/tmp/kc"
    )
    assert isinstance(options, RollbackOptions)
    assert (options.reason, options.to, options.target.kubeconfig) == (reason, Color.BLUE, "/tmp/kc")


def test_each_phase_gets_only_its_own_inputs() -> None:
    deploy = parse(
        env(
            BLUEGREEN_PHASE="deploy",
            BLUEGREEN_SET_IMAGES="web=registry.local/web:2\nsidecar=registry.local/proxy:1.1\n",
            BLUEGREEN_DRY_RUN="yes",
        )
    ).options(None)
    assert isinstance(deploy, DeployOptions) and deploy.writes.dry_run
    assert deploy.images.set_images == (
        ("web", "registry.local/web:2"),
        ("sidecar", "registry.local/proxy:1.1"),
    )
    gate = parse(env(BLUEGREEN_PHASE="gate", BLUEGREEN_MIN_HEALTHY="30s", BLUEGREEN_DRY_RUN="true")).options(
        None
    )
    assert isinstance(gate, GateOptions) and gate.checks.min_healthy == "30s"
    assert not hasattr(gate, "writes")  # the gate writes nothing: no lock, no dry run
    watch = parse(
        env(BLUEGREEN_PHASE="watch", BLUEGREEN_AUTO_ROLLBACK="false", BLUEGREEN_DURATION="2m")
    ).options(None)
    assert isinstance(watch, WatchOptions)
    assert (watch.checks.auto_rollback, watch.checks.duration, watch.checks.min_healthy) == (
        False,
        "2m",
        None,
    )


def test_switch_gets_the_candidate_and_the_config_that_decides_whether_a_gate_is_required() -> None:
    from pathlib import Path

    from bluegreen.options import RollbackOptions, SwitchOptions

    switch = parse(
        env(
            BLUEGREEN_PHASE="switch",
            BLUEGREEN_CANDIDATE="68dea25e477fa98b",
            BLUEGREEN_CONFIG="bluegreen.yaml",
        )
    ).options(None)
    assert isinstance(switch, SwitchOptions)
    assert (switch.candidate, switch.checks.config) == ("68dea25e477fa98b", Path("bluegreen.yaml"))
    rollback = parse(env(BLUEGREEN_PHASE="rollback", BLUEGREEN_CANDIDATE="68dea25e477fa98b")).options(None)
    assert isinstance(rollback, RollbackOptions) and not hasattr(rollback, "candidate")


def test_a_base64_kubeconfig_is_decoded_and_garbage_is_refused() -> None:
    encoded = base64.b64encode(KUBECONFIG.encode()).decode()
    assert decode_kubeconfig(encoded) == KUBECONFIG
    assert decode_kubeconfig(KUBECONFIG) == KUBECONFIG
    with pytest.raises(UsageError, match="kubeconfig: neither kubeconfig YAML nor base64"):
        parse(env(BLUEGREEN_KUBECONFIG="not-a-kubeconfig!!"))


def test_the_kubeconfig_secrets_are_found_for_masking() -> None:
    assert sorted(kubeconfig_secrets(KUBECONFIG)) == ["S0VZS0VZS0VZ", "s3cr3t-token-value"]
    as_json = json.dumps(yaml.safe_load(KUBECONFIG))  # read without PyYAML: the same secrets
    assert sorted(kubeconfig_secrets(as_json)) == ["S0VZS0VZS0VZ", "s3cr3t-token-value"]
    assert kubeconfig_secrets("token: [unclosed") == ["token: [unclosed"]  # unreadable: all of it


def test_outputs_survive_any_value_and_annotations_escape_their_separators(tmp_path: Path) -> None:
    output = tmp_path / "output"
    out = io.StringIO()
    runner = Runner({"GITHUB_OUTPUT": str(output)}, out)
    runner.set_outputs({"report": '{"a": "line one\nline two"}', "result": "switched"})
    assert read_outputs(output) == {"report": '{"a": "line one\nline two"}', "result": "switched"}
    runner.annotate(Annotation(level="error", title="gate: p95, error-rate", message="50% over\nsee summary"))
    assert out.getvalue() == "::error title=gate%3A p95%2C error-rate::50%25 over%0Asee summary\n"
    assert commands(out.getvalue(), "error") == [
        ({"title": "gate: p95, error-rate"}, "50% over\nsee summary")
    ]
    assert command("endgroup", "") == "::endgroup::"


def switched() -> Result:
    result = Result(phase="switch", result="switched", app="shop", namespace="shop")
    result.active_color, result.previous_color = "green", "blue"
    result.api_ms, result.converged_ms = 6.2, 18.4
    result.images = {"blue": ["registry.local/shop:1.0"], "green": ["registry.local/shop:1.1"]}
    result.timeline = [
        ("2026-11-22T10:00:00.000+00:00", "read service: selector color=blue"),
        ("2026-11-22T10:00:00.010+00:00", "switched: blue -> green"),
        ("2026-11-22T10:00:00.030+00:00", "verified: 2 endpoints"),
    ]
    result.details["history"] = [
        {
            "time": "2026-11-22T10:00:00+00:00",
            "action": "switch",
            "from": "blue",
            "to": "green",
            "actor": "ana",
        }
    ]
    return result


def test_the_summary_of_a_switch_has_banner_timings_timeline_and_history() -> None:
    text = summary.markdown(switched(), None, phase="switch", app="shop")
    assert "> [!TIP]\n> **shop switch: switched** to **green**" in text
    assert "| write to verified on the new colour | 18 | < 1000: met |" in text
    assert (
        "```mermaid\ntimeline\n    title shop: switch\n    +0 ms : read service - selector color=blue" in text
    )
    assert "    +30 ms : verified - 2 endpoints" in text
    assert "| 2026-11-22T10:00:00+00:00 | switch | blue | green | ana |" in text
    notes = summary.notes(switched(), None, phase="switch", app="shop")
    assert [(n.level, n.title) for n in notes] == [("notice", "bluegreen switch (shop): switched to green")]


def test_a_failed_gate_lists_each_check_and_annotates_the_failures() -> None:
    result = Result(phase="gate", result="failed", app="shop", namespace="shop")
    checks = [
        {"check": "pods", "kind": "kubernetes", "phase": "successful", "reasons": ["ready=2"], "values": {}},
        {
            "check": "errors",
            "kind": "prometheus",
            "phase": "failed",
            "reasons": ["error_rate=0.05 (broken: error_rate < 0.005)"],
            "values": {"error_rate": 0.05},
        },
    ]
    result.details["gate"] = {"result": "failed", "reason": "errors failed", "rounds": [{"checks": checks}]}
    text = summary.markdown(result, None, phase="gate", app="shop")
    assert "> [!CAUTION]" in text
    assert (
        "| errors | prometheus | failed | error_rate=0.05 | error_rate=0.05 (broken: error_rate < 0.005) |"
        in text
    )
    levels = [(n.level, n.title) for n in summary.notes(result, None, phase="gate", app="shop")]
    assert levels == [
        ("error", "bluegreen gate (shop): gate check errors failed"),
        ("error", "bluegreen gate (shop): failed"),
    ]


def test_an_error_says_what_to_do_in_the_summary_and_the_annotation() -> None:
    error = NotFoundError("Deployment shop/shop-green not found", remedy="Run `bluegreen init`.")
    text = summary.markdown(None, error, phase="deploy", app="shop")
    assert "Deployment shop/shop-green not found" in text and "What to do: Run `bluegreen init`." in text
    (note,) = summary.notes(None, error, phase="deploy", app="shop")
    assert note.level == "error" and note.title.startswith("bluegreen deploy (shop): ")
    assert "What to do: Run `bluegreen init`." in note.message
