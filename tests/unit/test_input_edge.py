"""Issue 18, one regression test per class of bad input: each failed before the validation edge.

Path-like names, nan/inf/huge numbers, impossible measurements, YAML bombs and depth, wrong-typed
YAML values, bad kubeconfigs and conflicting flags, each refused with exit 2 and a message naming the
input, the value and what is allowed (or, for measurements, INCONCLUSIVE naming query and value).
Force onto zero pods needs a cluster: tests/integration/test_input_edge_cluster.py.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from bluegreen import kube, validate
from bluegreen.checks.base import Target
from bluegreen.checks.prometheus import PrometheusCheck
from bluegreen.cli import execute
from bluegreen.config import PrometheusCheckConfig, parse
from bluegreen.errors import ConfigError, UsageError
from bluegreen.github.inputs import parse as parse_inputs
from bluegreen.model import AppSpec, Color
from bluegreen.verdict import Measurement, Phase, Threshold, judge
from tests.unit.test_checks_prometheus import Stub, stub, vector

__all__ = ["stub"]  # the fixture, used by name below

NO_CLUSTER = ["--kubeconfig", "/nonexistent/kubeconfig"]  # any request would fail differently


def refused(argv: list[str], *names: str) -> str:
    """Run argv in-process; assert exit 2, no 'unexpected', and that the message names every name."""
    outcome = execute(argv)
    assert outcome.error is not None, outcome
    message = outcome.error.message
    assert outcome.exit_code == 2, message
    assert "unexpected" not in message and "Traceback" not in message
    for name in names:
        assert name in message, (name, message)
    return message


# -- path-like names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--app", "../x"),
        ("--app", "a/b"),
        ("--app", "shop/../../kube-system"),
        ("--service", "../../other/services/shop"),
        ("--preview-service", "x/y"),
        ("--namespace", "../kube-system"),
        ("--namespace", "a.b"),
        ("--color-label", "a//b"),
    ],
)
def test_path_like_names_are_refused_before_any_request(flag: str, value: str) -> None:
    base = ["switch", "--app", "shop", *NO_CLUSTER]
    if flag == "--app":
        base = ["switch", *NO_CLUSTER]
    refused([*base, flag, value], flag, repr(value))


@pytest.mark.parametrize("flag", ["--app", "--namespace", "--timeout", "--to", "--set-image", "--service"])
def test_a_value_of_double_dash_is_refused_not_an_unexpected_type_error(flag: str) -> None:
    # Found by the cluster fuzz (explore profile): argparse stored [] for `--app=--`, which reached
    # lightkube as a list ("unexpected TypeError", exit 3).
    argv = ["deploy", "--app", "shop", "--image", "r/a:1", *NO_CLUSTER]
    if flag == "--to":
        argv = ["switch", "--app", "shop", *NO_CLUSTER]
    if flag == "--set-image":
        argv = ["deploy", "--app", "shop", *NO_CLUSTER]
    refused([*argv, f"{flag}=--"], f"argument {flag}: '--' is not a value")


def test_an_app_name_leaves_room_for_the_names_derived_from_it() -> None:
    longest = "a" * validate.MAX_APP
    assert validate.app_name(longest) == longest
    assert len(f"{longest}-preview") == 63
    refused(["status", "--app", "a" * (validate.MAX_APP + 1), *NO_CLUSTER], "--app", "-preview")


def test_group_file_names_are_kubernetes_names(tmp_path: Path) -> None:
    text = """
groups:
  - name: g
    namespace: shop
    members:
      - app: ../cart
      - app: web
        namespace: a/b
      - app: api
        object: ../../x
"""
    with pytest.raises(ConfigError) as caught:
        parse(text)
    message = caught.value.message
    assert "bluegreen.yaml:6: groups[0].members[0].app: '../cart' is not an app name" in message
    assert "bluegreen.yaml:8: groups[0].members[1].namespace: 'a/b' is not a namespace name" in message
    assert "bluegreen.yaml:10: groups[0].members[2].object: '../../x' is not a Service name" in message


def test_action_inputs_names(tmp_path: Path) -> None:
    env = {"INPUT_PHASE": "switch", "INPUT_APP": "../x", "INPUT_NAMESPACE": "a/b"}
    with pytest.raises(UsageError) as caught:
        parse_inputs(env)
    assert "app: '../x' is not an app name" in caught.value.message
    assert "namespace: 'a/b' is not a namespace name" in caught.value.message


# -- nan, inf and huge numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["nan", "NaN", "inf", "-inf", "infinity", "1e400", "1e3", "99999999h", "-5s"]
)
@pytest.mark.parametrize(
    ("command", "flag"), [("retire", "--after"), ("switch", "--timeout"), ("switch", "--wait-for-lock")]
)
def test_non_finite_or_huge_durations_are_refused(command: str, flag: str, value: str) -> None:
    refused([command, "--app", "shop", f"{flag}={value}", *NO_CLUSTER], flag, repr(value))


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-1", "20000%"])
def test_gate_p95_tolerance_nan_does_not_pass_the_gate(value: str) -> None:
    # Refused at the edge: before, `nan` disabled the p95 comparison and the gate passed.
    refused(
        ["gate", "--app", "shop", f"--p95-tolerance={value}", *NO_CLUSTER], "--p95-tolerance", repr(value)
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gate:\n  min-healthy", ".nan"),
        ("gate:\n  interval", ".inf"),
        ("gate:\n  p95-tolerance", ".nan"),
        ("gate:\n  max-error-rate", "-.inf"),
        ("watch:\n  duration", "1e400"),
        ("watch:\n  failures", "100000000000000000000000"),
        ("watch:\n  max-p95", ".inf"),
    ],
)
def test_non_finite_numbers_in_bluegreen_yaml_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f"{key}: {value}\n")
    name = key.split(":")[0] + "." + key.split("\n")[1].strip()
    assert f"bluegreen.yaml:2: {name}:" in caught.value.message


def test_a_huge_probe_request_count_is_refused() -> None:
    text = "checks:\n  - name: p\n    kind: probe\n    url: 'http://x/{{color}}'\n    requests: 1000000000\n"
    with pytest.raises(
        ConfigError, match=r"bluegreen.yaml:5: checks\[0\].requests: expected a whole number in 1..1000"
    ):
        parse(text)


def test_verdict_never_passes_on_a_nan_or_infinite_tolerance() -> None:
    for factor in (math.nan, math.inf):
        judged = judge(
            Measurement(
                check="p",
                kind="probe",
                values={"p95": 5.0, "baseline_p95": 0.1},
                thresholds=(Threshold(metric="p95", op="<=", relative_to="baseline_p95", factor=factor),),
            )
        )
        assert judged.phase is not Phase.SUCCESSFUL, (factor, judged)


# -- impossible measurements ------------------------------------------------------------------------

TARGET = Target(
    app=AppSpec(name="shop", namespace="shop"),
    color=Color.GREEN,
    baseline=Color.BLUE,
    service="shop-preview",
    window=30,
    max_error_rate=0.005,
    p95_tolerance=0.2,
)


@pytest.mark.parametrize(
    ("measure", "green", "says"),
    [
        ("error-rate", "-0.5", "returned -0.5, which is not an error rate"),
        ("error-rate", "1.5", "returned 1.5, which is not an error rate"),
        ("error-rate", "+Inf", "returned inf, which is not a finite number"),
        ("p95", "-0.2", "returned -0.2, which is a negative latency"),
        ("value", "-Inf", "returned -inf, which is not a finite number"),
    ],
)
def test_an_impossible_prometheus_value_is_inconclusive_naming_query_and_value(
    stub: Stub, measure: str, green: str, says: str
) -> None:
    stub.answers = {"green": vector(green), "blue": vector("0.1")}
    check = PrometheusCheck(
        PrometheusCheckConfig(
            name="m",
            url=stub.url,
            query='sum(rate(x{color="{{color}}"}[{{window}}]))',
            measure=measure,  # type: ignore[arg-type]
            max=5.0 if measure == "value" else None,
            timeout=2,
        )
    )
    judged = judge(check.measure(TARGET))
    assert judged.phase is Phase.INCONCLUSIVE
    assert any(says in r and 'sum(rate(x{color="green"}[30s]))' in r for r in judged.reasons), judged.reasons


@pytest.mark.parametrize(
    "values",
    [
        {"error_rate": -0.5},
        {"error_rate": 2.0},
        {"p95": -1.0},
        {"value": math.inf},
        {"checks.count": math.inf},
    ],
)
def test_every_provider_s_impossible_value_is_inconclusive(values: dict[str, Any]) -> None:
    metric = next(iter(values))
    judged = judge(
        Measurement(
            check="c",
            kind="http",
            target="green",
            values=values,
            thresholds=(Threshold(metric=metric, op=">=" if metric.endswith("count") else "<", limit=1),),
        )
    )
    assert judged.phase is Phase.INCONCLUSIVE
    assert metric in judged.reasons[0] and "impossible measurement from green" in judged.reasons[0]


# -- YAML bombs, depth, binary, wrong types ---------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9)
)


def test_billion_laughs_is_refused_at_once() -> None:
    with pytest.raises(ConfigError, match=r"bluegreen.yaml:2: \(yaml\): aliases \(\*name\) are not allowed"):
        parse(BOMB)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(ConfigError, match=f"nested more than {validate.MAX_DEPTH} levels deep"):
        parse("a: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ConfigError, match="nested more than"):
        parse("".join(" " * i + "a:\n" for i in range(200)))


def test_binary_or_non_utf8_bluegreen_yaml_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "bluegreen.yaml"
    bad.write_bytes(b"app: shop\n\xff\xfe\x00binary")
    refused(["gate", "--app", "shop", "--config", str(bad), *NO_CLUSTER], str(bad), "not UTF-8")
    bad.write_bytes(b"app: shop\x00\n")
    refused(["gate", "--app", "shop", "--config", str(bad), *NO_CLUSTER], f"{bad}:1", "NUL")


def test_a_huge_bluegreen_yaml_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "bluegreen.yaml"
    big.write_bytes(b"#" * (validate.MAX_YAML_BYTES * 3))
    refused(["gate", "--app", "shop", "--config", str(big), *NO_CLUSTER], str(big), "larger than")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("app: 42\n", "bluegreen.yaml:1: app: 42 is not an app name: expected text, got int"),
        ("namespace: [a, b]\n", "bluegreen.yaml:1: namespace: ['a', 'b'] is not a namespace name"),
        ("app: ../x\n", "bluegreen.yaml:1: app: '../x' is not an app name"),
        ("gate:\n  interval: [1]\n", "bluegreen.yaml:2: gate.interval: [1] is not a duration"),
        ("gate:\n  failure-limit: 1.5\n", "bluegreen.yaml:2: gate.failure-limit: expected a whole number"),
        (
            "checks:\n  - {name: p, kind: probe, url: 'http://a b/{{color}}'}\n",
            "bluegreen.yaml:2: checks[0].url: 'http://a b/{{color}}' is not an http(s) URL",
        ),
    ],
)
def test_wrong_typed_yaml_values_are_named(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert says in caught.value.message


# -- kubeconfigs ------------------------------------------------------------------------------------

PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nbad\n-----END CERTIFICATE-----\n").decode()
BAD_KUBECONFIGS = [
    ("", "the kubeconfig is empty"),
    ("- a\n- b\n", "got a list"),
    ("clusters: 5\ncontexts: []\n", "Expected `array`, got `int` - at `clusters`"),
    (
        "clusters: [{name: a, cluster: {server: 7}}]\ncontexts: []\n",
        "at `clusters[0].cluster.server`",
    ),
    (
        "clusters: [{name: a, cluster: {server: 'not a url'}}]\ncontexts: []\n",
        "clusters[0] ('a').cluster.server: 'not a url' is not a URL",
    ),
    (
        f"clusters: [{{name: a, cluster: {{server: 'https://h:6443', certificate-authority-data: {PEM}}}}}]\ncontexts: []\n",
        "clusters[0] ('a').cluster.certificate-authority-data: not a usable CA certificate",
    ),
    (
        "clusters: [{name: a, cluster: {server: 'https://h:6443'}}]\n"
        "users: [{name: u, user: {client-key-data: '!!notbase64'}}]\ncontexts: []\n",
        "users[0] ('u').user.client-key-data: not base64",
    ),
    (
        "clusters: [{name: a, cluster: {server: 'https://h:6443'}}]\n"
        "contexts: [{name: c, context: {cluster: b}}]\ncurrent-context: c\n",
        "contexts[0] ('c').context.cluster: no cluster named 'b'",
    ),
    ("x: &a [1]\ny: *a\n", "aliases (*name) are not allowed"),
    (
        "clusters: [{name: a, cluster: {server: 'https://h:6443'}}]\n"
        f"users: [{{name: u, user: {{client-certificate-data: {PEM}}}}}]\ncontexts: []\n",
        "users[0] ('u').user: client-certificate(-data) without client-key(-data)",
    ),
]


@pytest.mark.parametrize(("text", "says"), BAD_KUBECONFIGS)
def test_bad_kubeconfigs_name_the_field(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    message = refused(["switch", "--app", "shop", "--kubeconfig", str(path)], says)
    assert "unexpected" not in message
    with pytest.raises(ValueError, match=re.escape(says)):
        kube.kubeconfig_data(text)


def test_a_binary_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    refused(["switch", "--app", "shop", "--kubeconfig", str(path)], "not UTF-8")


def plain_json(cluster: dict[str, Any], **top: Any) -> str:
    """A kubeconfig as `kubectl config view -o json` writes it, with this cluster section."""
    return json.dumps(
        {
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
            **top,
        }
    )


@pytest.mark.parametrize(
    "text",
    [
        *(text for text, _ in BAD_KUBECONFIGS if ":" in text),  # the others are not even YAML to it
        # plain at a glance (JSON, read without PyYAML by the Action's quick check), wrong on a closer look
        plain_json({"server": "https://127.0.0.1:99999"}),
        plain_json({"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": "yes"}),
        plain_json({"server": "https://127.0.0.1:6443"}, **{"current-context": "y"}),
        plain_json({"server": "https://127.0.0.1:6443", "certificate-authority-data": PEM}),
        plain_json({"server": "https://127.0.0.1:6443/path"}),
        plain_json({"server": "https://exa mple:6443"}),
        plain_json({"server": 6443}),
        plain_json({}),
        # and right: both checks accept them
        plain_json({"server": "https://127.0.0.1:6443"}),
        plain_json({"server": "http://[::1]:8080", "insecure-skip-tls-verify": True}),
        "clusters: [{name: c, cluster: {server: 'https://h:6443'}}]\ncontexts: []\n",
    ],
)
def test_the_action_checks_its_kubeconfig_input_as_the_full_check_does(text: str) -> None:
    """The Action accepts a plain kubeconfig without the full check's imports (msgspec, httpx2,
    lightkube's models): whatever it accepts or refuses, and in what words, is the full check's."""
    env = {"INPUT_PHASE": "status", "INPUT_APP": "shop", "INPUT_KUBECONFIG": text}
    full = ""
    try:
        kube.kubeconfig_data(text, source="the kubeconfig input")
    except ValueError as error:
        full = str(error)
    if full:
        with pytest.raises(UsageError) as raised:
            parse_inputs(env)
        assert raised.value.message == f"invalid input: kubeconfig: {full}"
    else:
        assert parse_inputs(env).kubeconfig.strip() == text.strip()


def test_the_kubeconfig_input_of_the_action_is_checked_too() -> None:
    env = {"INPUT_PHASE": "status", "INPUT_APP": "shop", "INPUT_KUBECONFIG": "clusters: 5\ncontexts: []\n"}
    with pytest.raises(UsageError, match=r"kubeconfig: the kubeconfig input: Expected `array`"):
        parse_inputs(env)


# -- conflicting flags ------------------------------------------------------------------------------


def test_image_and_set_image_together_are_refused() -> None:
    refused(
        ["deploy", "--app", "shop", "--image", "r/a:1", "--set-image", "web=r/b:2", *NO_CLUSTER],
        "--image 'r/a:1'",
        "--set-image web=r/b:2",
    )
    env = {
        "INPUT_PHASE": "deploy",
        "INPUT_APP": "shop",
        "INPUT_IMAGE": "r/a:1",
        "INPUT_SET-IMAGES": "web=r/b:2",
    }
    with pytest.raises(UsageError, match="image: 'r/a:1' and set-images are both given"):
        parse_inputs(env)


def test_allow_no_endpoints_needs_force() -> None:
    refused(
        ["switch", "--app", "shop", "--allow-no-endpoints", *NO_CLUSTER], "--allow-no-endpoints", "--force"
    )


def test_a_kubeconfig_yaml_error_never_quotes_the_line_holding_a_token(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("users:\n- name: u\n  user: {token: s3cr3t-token-value\n")
    message = refused(["switch", "--app", "shop", "--kubeconfig", str(path)], f"{path}:", "not valid YAML")
    assert "s3cr3t" not in message


def test_masking_an_alias_bomb_kubeconfig_masks_it_whole_at_once() -> None:
    from bluegreen.github.inputs import kubeconfig_secrets

    assert kubeconfig_secrets(BOMB) == [BOMB]  # before: a walk over 9 * 4**9 nodes
