"""bluegreen.yaml and flags: typed values, defaults from the seed, and errors that name key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen.config import (
    Config,
    HttpCheckConfig,
    JobCheckConfig,
    Overrides,
    ProbeCheckConfig,
    PrometheusCheckConfig,
    apply,
    format_duration,
    load,
    parse,
    parse_duration,
    parse_ratio,
    parse_tolerance,
)
from bluegreen.errors import ConfigError
from bluegreen.verdict import Threshold

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bluegreen.yaml"


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, source="bluegreen.yaml")
    assert caught.value.exit_code == 2
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("90", 90),
        (2, 2),
        ("1.5s", 1.5),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "m5", "-3s", "5 m", "1h-30m", True])
def test_bad_durations(text: str | bool) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_duration_round_trip_for_promql_windows() -> None:
    assert [format_duration(s) for s in (5, 60, 90, 3600, 0.5)] == ["5s", "1m", "1m30s", "1h", "500ms"]


def test_ratios_and_tolerances() -> None:
    assert parse_ratio("0.5%") == pytest.approx(0.005)
    assert parse_ratio(0.005) == 0.005
    assert parse_tolerance("+20%") == pytest.approx(0.2)
    assert parse_tolerance("150%") == pytest.approx(1.5)
    with pytest.raises(ValueError, match="outside"):
        parse_ratio("120%")


def test_no_file_means_the_seed_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load()
    assert config.path is None
    assert [c.kind for c in config.checks] == ["kubernetes"]
    assert config.gate.min_healthy == 300
    assert config.gate.max_error_rate == 0.005
    assert config.gate.p95_tolerance == 0.2
    assert config.watch.auto_rollback is True


def test_the_shipped_example_is_valid() -> None:
    config = load(EXAMPLE)
    kinds = {c.kind for c in config.checks}
    assert kinds == {"kubernetes", "http", "command", "job", "prometheus", "probe"}
    http = next(c for c in config.checks if isinstance(c, HttpCheckConfig))
    assert Threshold(metric="checks.db", op="==", limit="ok") in http.conditions
    job = next(c for c in config.checks if isinstance(c, JobCheckConfig))
    assert job.template["spec"]["template"]["spec"]["containers"]


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load(tmp_path / "nope.yaml")


def test_every_problem_named_with_key_and_line() -> None:
    text = """\
checks:
  - name: pods
    kind: kubernetes
  - name: errors
    kind: promethues
  - name: rate
    kind: prometheus
    url: http://127.0.0.1:9090
    query: 'sum(rate(x{color="{{colour}}"}[{{window}}]))'
    measure: error-rate
    retries: 3
  - name: health
    kind: http
    conditions: ['checks.db = "ok"']
gate:
  min-healthy: 5x
  checks: [pods, nope]
watch:
  failures: 0
"""
    message = problems(text)
    assert "bluegreen.yaml:5: checks[1].kind: unknown kind 'promethues'; known kinds: kubernetes" in message
    assert "bluegreen.yaml:11: checks[2].retries: unknown key" in message
    assert "bluegreen.yaml:9: checks[2].query: unknown template variable {{colour}}" in message
    assert "bluegreen.yaml:14: checks[3].conditions[0]: no operator" in message
    assert "bluegreen.yaml:16: gate.min-healthy: '5x' is not a duration" in message
    assert "bluegreen.yaml:17: gate.checks: no check named 'nope'" in message
    assert "bluegreen.yaml:19: watch.failures: expected a whole number in 1..1000, got 0" in message
    assert message.startswith("7 problems")
    lines = [int(row.strip().split(":")[1]) for row in message.splitlines()[1:]]
    assert lines == sorted(lines)  # in file order, as a person fixes them


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("checks: [{name: x}]", "bluegreen.yaml:1: checks[0].kind: required key is missing"),
        ("checks:\n  - {name: a, kind: command, command: 'rm -rf /'}", "checks[0].command: expected a list"),
        (
            "checks:\n  - {name: a, kind: prometheus, url: x, query: up}",
            "checks[0].url: 'x' is not an http(s) URL",
        ),
        (
            "checks:\n  - {name: a, kind: prometheus, url: 'http://p', query: up}",
            "a `value` measure needs `min`",
        ),
        ("checks:\n  - {name: a, kind: probe, url: 'http://app/'}", "must contain {{color}}"),
        ("checks:\n  - {name: a, kind: probe, urls: {blue: 'http://b'}}", "give exactly blue and green"),
        ("checks:\n  - {name: a, kind: job, template: {kind: Pod}}", "expected a batch/v1 Job manifest"),
        (
            "checks:\n  - {name: a, kind: kubernetes}\n  - {name: a, kind: kubernetes}",
            "duplicate name 'a' (first on line 2)",
        ),
        ("checks:\n  - {name: Bad_Name, kind: kubernetes}", "use lower-case letters"),
        (
            "gate:\n  min-healthy: 5m\n  timeout: 1m",
            "bluegreen.yaml:3: gate.timeout: shorter than gate.min-healthy",
        ),
        ("gate: {max-error-rate: 5}", "gate.max-error-rate: 5 is outside 0..100%"),
        ("colour: blue", "bluegreen.yaml:1: colour: unknown key"),
        ("version: 2", "unsupported version 2"),
        ("a: [1, 2\n", "bluegreen.yaml:2: (yaml)"),
        ("a: 1\na: 2", "duplicate key 'a'"),
    ],
)
def test_single_problems(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_typed_checks() -> None:
    config = parse(
        """
checks:
  - name: errors
    kind: prometheus
    url: http://127.0.0.1:9090
    query: 'sum(rate(x{color="{{color}}"}[{{window}}]))'
    measure: error-rate
    timeout: 3s
  - name: probe
    kind: probe
    urls: {blue: 'http://127.0.0.1:1/', green: 'http://127.0.0.1:2/'}
    requests: 50
gate: {min-healthy: 10s, interval: 1s, window: 5s, failure-limit: 1, consecutive-error-limit: 0}
watch: {checks: [errors], failures: 3, max-p95: 250ms, auto-rollback: false}
"""
    )
    errors, probe = config.checks
    assert (
        isinstance(errors, PrometheusCheckConfig) and errors.timeout == 3 and errors.measure == "error-rate"
    )
    assert errors.line == 3
    assert isinstance(probe, ProbeCheckConfig) and probe.url_for("green") == "http://127.0.0.1:2/"
    assert config.gate.min_healthy == 10 and config.gate.interval == 1 and config.gate.window == 5
    assert config.gate.limits.failure_limit == 1 and config.gate.limits.consecutive_error_limit == 0
    assert config.gate.deadline == 610  # min-healthy + 10 minutes unless gate.timeout says
    assert config.watch.max_p95 == 0.25 and config.watch.failures == 3 and not config.watch.auto_rollback
    assert [c.name for c in config.watch_checks()] == ["errors"]
    assert [c.name for c in config.gate_checks()] == ["errors", "probe"]


def test_watch_leaves_one_shot_checks_to_the_gate() -> None:
    config = parse(
        """
checks:
  - {name: pods, kind: kubernetes}
  - {name: smoke, kind: command, command: [true]}
"""
    )
    assert [c.name for c in config.watch_checks()] == ["pods"]
    assert [c.name for c in config.gate_checks()] == ["pods", "smoke"]


def test_flags_override_the_file() -> None:
    config = apply(
        parse("gate: {min-healthy: 5m, timeout: 6m}\nwatch: {duration: 10m}"),
        Overrides(
            min_healthy="10m",
            interval="2s",
            p95_tolerance="50%",
            max_error_rate="1%",
            duration="30s",
            auto_rollback=False,
        ),
    )
    assert config.gate.min_healthy == 600 and config.gate.interval == 2
    assert config.gate.deadline == 1200  # a file timeout shorter than the flag's min-healthy gives way
    assert config.gate.p95_tolerance == 0.5 and config.watch.p95_tolerance == 0.5
    assert config.gate.max_error_rate == 0.01 and config.watch.max_error_rate == 0.01
    assert config.watch.duration == 30 and config.watch.interval == 2
    assert config.watch.auto_rollback is False


def test_bad_flags_name_the_flag() -> None:
    with pytest.raises(ConfigError) as caught:
        apply(Config(), Overrides(min_healthy="five minutes", interval="0s"))
    assert "command line: --min-healthy: 'five minutes' is not a duration" in caught.value.message
    assert "command line: --interval: '0s': must be more than zero" in caught.value.message


def test_job_template_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "smoke-job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n"
        "      containers: [{name: smoke, image: 'smoke:1', args: ['{{color}}']}]\n"
    )
    (tmp_path / "bluegreen.yaml").write_text(
        "checks:\n  - {name: smoke, kind: job, template-file: smoke-job.yaml, timeout: 2m}\n"
    )
    job = load(tmp_path / "bluegreen.yaml").checks[0]
    assert isinstance(job, JobCheckConfig) and job.timeout == 120
    assert job.template["spec"]["template"]["spec"]["containers"][0]["args"] == ["{{color}}"]


def test_the_documented_example_is_valid_and_matches_the_shipped_one() -> None:
    import yaml

    doc = (EXAMPLE.parents[1] / "docs" / "configuration.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    parse(block)
    assert yaml.safe_load(block) == yaml.safe_load(EXAMPLE.read_text())


def test_a_file_for_another_app_or_namespace_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bluegreen.yaml"
    path.write_text("app: shop\nnamespace: shop\n")
    assert load(path, Overrides(app="shop", namespace="shop")).app == "shop"
    with pytest.raises(ConfigError) as caught:
        load(path, Overrides(app="cart", namespace="payments"))
    message = caught.value.message
    assert f"--app: 'cart', but {path} is for app 'shop'" in message
    assert f"--namespace: 'payments', but {path} is for namespace 'shop'" in message
    # A file that names no app serves any app.
    path.write_text("gate: {min-healthy: 1m}\n")
    assert load(path, Overrides(app="cart", namespace="payments")).gate.min_healthy == 60
