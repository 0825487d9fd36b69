"""Every documented input reaches the engine, for every phase its description names.

The table is generated from action.yml: a description that starts with phase names ("gate, watch and
release: ...") names the phases the input is for; one that names none is for every phase. For each
input and each of its phases, the step is parsed twice, with the input at its default and at another
value, as the entrypoint parses it (a kubeconfig input becomes a private file the options name), and
the options handed to the engine must differ, and so must the call options.run makes into the phase
(its Context, its arguments, and for the gate and watch the settings after bluegreen.yaml is
loaded: where the watch used to lose `p95-tolerance` and `max-error-rate`). The phases themselves
are recorders here; tests/integration/test_entrypoint.py shows the thresholds' effect in a real watch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bluegreen.cli import parse_options
from bluegreen.errors import UsageError
from bluegreen.github.inputs import PHASES, ActionInputs, env_name, parse
from bluegreen.model import NullReporter
from bluegreen.options import PhaseOptions
from bluegreen.options import run as options_run

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
LEADING_PHASES = re.compile(r"(?P<names>[a-z]+(?:, [a-z]+)*(?: and [a-z]+)?): ")
# Inputs for the GitHub API calls around the phase, not for the engine.
GITHUB_SIDE = {"environment", "environment-url", "github-token"}
# Inputs of the traffic probe, which runs around the phase (bluegreen/traffic_probe.py), not inside it:
# they change the options' probe; tests/integration/test_probe.py shows their effect in real runs.
PROBE_SIDE = {"probe-url", "probe-header", "probe-pattern", "probe-fail-on-error"}
# How the run is observed (log lines, pushed metrics), for every phase and outside its options:
# tests/action/test_container.py shows both reaching a real step.
OBSERVED_SIDE = {"log-format", "pushgateway"}
# Inputs of one router only: compared with that router chosen on both sides.
ROUTER_SIDE = {"dns-server": "dns"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t0ken}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""
# A valid value different from the default, for every input but `phase` (a test keeps this complete).
OTHER = {
    "app": "cart",
    "namespace": "shop-prod",
    "image": "registry.local/shop:9.9",
    "set-images": "web=registry.local/web:9.9",
    "manifests": "manifests/*.yaml",
    "copy-cluster-config": "true",
    "kubeconfig": KUBECONFIG,
    "context": "staging",
    "router": "gateway",
    "config": "other.yaml",
    "to": "green",
    "candidate": "68dea25e477fa98b",
    "reason": "hotfix 9.9",
    "dry-run": "true",
    "timeout": "3m",
    "wait-for-lock": "45s",
    "min-healthy": "42s",
    "interval": "7s",
    "p95-tolerance": "33%",
    "max-error-rate": "2%",
    "duration": "11m",
    "auto-rollback": "false",
    "retire-after": "1h",
    "environment": "production",
    "environment-url": "https://shop.example",
    "github-token": "ghs_not_a_real_token",
    "probe-url": "https://shop.example/healthz",
    "probe-header": "X-Slot",
    "probe-pattern": r"colour=(\w+)",
    "probe-fail-on-error": "true",
    "log-format": "json",
    "pushgateway": "http://pushgateway.monitoring:9091",
    "release": "v2-add-full-name",
    "undo": "false",
    "dns-server": "127.0.0.1:5353",
}


def phases_of(name: str) -> tuple[str, ...]:
    """The phases an input's description names at its start; all of them when it names none."""
    found = LEADING_PHASES.match(SPEC[name]["description"])
    if found is None:
        return PHASES
    names = tuple(re.split(r", | and ", found.group("names")))
    assert set(names) <= set(PHASES), f"{name}: {names} are not all phases"
    return names


TABLE = [(name, phase) for name in SPEC if name != "phase" for phase in phases_of(name)]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The step's working directory, with a bluegreen.yaml at the default path and another one."""
    hooks = "migrations: {expand: {command: [./expand]}, contract: {command: [./contract]}}\n"
    (tmp_path / "bluegreen.yaml").write_text("checks: [{name: pods, kind: kubernetes}]\n" + hooks)
    (tmp_path / "other.yaml").write_text(
        "checks: [{name: pods, kind: kubernetes}]\n"
        + hooks
        + "gate: {min-healthy: 1m, interval: 2s}\nwatch: {duration: 1m, interval: 3s}\n"
    )
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "app.yaml").write_text(
        (ROOT / "tests" / "fixtures" / "manifests" / "kustomize-v1.yaml").read_text()
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def step(phase: str, **inputs: str) -> ActionInputs:
    env = {env_name("phase"): phase, env_name("app"): "shop"}
    if phase in ("deploy", "release", "patch") and "set-images" not in inputs:  # the two are exclusive
        env[env_name("image")] = "registry.local/shop:1.0"
    env.update({env_name(name): value for name, value in inputs.items()})
    return parse(env)


def handed_to_engine(inputs: ActionInputs) -> PhaseOptions:
    """The options as the entrypoint hands them over: a kubeconfig input is a file by then."""
    return inputs.options("/private/kubeconfig" if inputs.kubeconfig else None)


Call = tuple[str, tuple[Any, ...], dict[str, Any]]


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Callable[[PhaseOptions], list[Call]]:
    """options.run with the phases replaced by recorders, and the cluster by the arguments it was
    reached with: what each phase is called with (the Context, bluegreen.yaml loaded, its arguments)."""
    from bluegreen import kube
    from bluegreen.phases import (
        checked,
        deploy,
        diff,
        init,
        migrate,
        patch,
        release,
        retire,
        rollback,
        status,
        switch,
    )

    calls: list[Call] = []
    monkeypatch.setattr(kube, "connect", lambda **where: ("cluster", sorted(where.items())))
    for module, function in (
        (status, "run"),
        (diff, "run"),
        (init, "run"),
        (deploy, "run"),
        (patch, "run"),
        (checked, "gate"),
        (checked, "watch"),
        (switch, "run"),
        (rollback, "run"),
        (retire, "run"),
        (release, "run"),
        (migrate, "run"),
    ):
        called = f"{module.__name__}.{function}"
        monkeypatch.setattr(module, function, lambda *a, _c=called, **kw: calls.append((_c, a, kw)))
    reporter = NullReporter()

    def run(options: PhaseOptions) -> list[Call]:
        calls.clear()
        options_run(options, reporter)
        return list(calls)

    return run


def test_the_table_covers_every_input_and_every_phase() -> None:
    assert set(OTHER) == set(SPEC) - {"phase"}
    for name, value in OTHER.items():
        assert value != str(SPEC[name].get("default", "")), name
    assert {phase for _, phase in TABLE} == set(PHASES)
    # The inputs documented for the watch include its thresholds (issue 15: they were dropped).
    assert {name for name, phase in TABLE if phase == "watch"} >= {"p95-tolerance", "max-error-rate"}


@pytest.mark.parametrize(("name", "phase"), TABLE, ids=[f"{n}-{p}" for n, p in TABLE])
def test_an_input_changes_what_its_phase_does(
    name: str, phase: str, workspace: Path, engine: Callable[[PhaseOptions], list[Call]]
) -> None:
    base = {"router": ROUTER_SIDE[name]} if name in ROUTER_SIDE else {}
    default, other = step(phase, **base), step(phase, **base, **{name: OTHER[name]})
    if name in GITHUB_SIDE | OBSERVED_SIDE:  # around the engine: the API calls, the log, the metrics
        assert handed_to_engine(default) == handed_to_engine(other)
        field = name.replace("-", "_")
        assert getattr(other, field) == OTHER[name] != getattr(default, field)
        return
    if name in PROBE_SIDE:  # the probe's companions need its URL: compare with the URL alone
        url = {"probe-url": OTHER["probe-url"]}
        default = step(phase, **(url if name != "probe-url" else {}))
        other = step(phase, **{**url, name: OTHER[name]})
        before, after = handed_to_engine(default), handed_to_engine(other)
        assert getattr(before, "probe", None) != getattr(after, "probe", None), (
            f"{name} does not reach the probe"
        )
        return
    before, after = handed_to_engine(default), handed_to_engine(other)
    assert type(before) is type(after) and before.phase == after.phase == phase
    assert before != after, f"input {name} does not reach the {phase} phase's options"
    called, changed = engine(before), engine(after)
    assert len(called) == len(changed) == 1
    assert called != changed, f"input {name} is lost between the options and the {phase} phase"


@pytest.mark.parametrize("phase", PHASES)
def test_the_phase_input_picks_the_phase(phase: str, workspace: Path) -> None:
    assert handed_to_engine(step(phase)).phase == phase


@pytest.mark.parametrize(
    ("phase", "inputs", "argv"),
    [
        (
            "watch",
            {"p95-tolerance": "10%", "max-error-rate": "1%", "interval": "2s", "duration": "1m"},
            ["--p95-tolerance", "10%", "--max-error-rate", "1%", "--interval", "2s", "--duration", "1m"],
        ),
        (
            "gate",
            {"min-healthy": "30s", "p95-tolerance": "10%", "max-error-rate": "1%", "config": "other.yaml"},
            [
                "--min-healthy",
                "30s",
                "--p95-tolerance",
                "10%",
                "--max-error-rate",
                "1%",
                "--config",
                "other.yaml",
            ],
        ),
        (
            "switch",
            {"to": "blue", "reason": "r", "dry-run": "true", "wait-for-lock": "1m", "router": "ingress"},
            ["--to", "blue", "--reason", "r", "--dry-run", "--wait-for-lock", "1m", "--router", "ingress"],
        ),
        (
            "deploy",
            {"manifests": "manifests/*.yaml\nextra.yaml", "set-images": "app=registry.local/shop:2.0"},
            [
                "-f",
                "manifests/*.yaml",
                "--filename",
                "extra.yaml",
                "--set-image",
                "app=registry.local/shop:2.0",
            ],
        ),
        ("diff", {"namespace": "prod"}, ["-n", "prod"]),
        (
            "patch",
            {"set-images": "app=registry.local/shop:1.0-p1", "reason": "CVE-2026-1", "timeout": "2m"},
            ["--set-image", "app=registry.local/shop:1.0-p1", "--reason", "CVE-2026-1", "--timeout", "2m"],
        ),
        (
            "release",
            {"auto-rollback": "false", "timeout": "5m", "namespace": "prod"},
            ["--image", "registry.local/shop:1.0", "--no-auto-rollback", "--timeout", "5m", "-n", "prod"],
        ),
    ],
)
def test_the_cli_and_the_action_build_the_same_options(
    phase: str, inputs: dict[str, str], argv: list[str], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("GITHUB_RUN_ID", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_ACTOR", "USER"):
        monkeypatch.delenv(variable, raising=False)
    assert step(phase, **inputs).options(None) == parse_options([phase, "--app", "shop", *argv])


@pytest.mark.parametrize(
    ("inputs", "said"),
    [
        # No router input: the recorded router decides, and a switch refuses dns-server unless it is dns.
        (
            {"router": "service", "dns-server": "127.0.0.1:5353"},
            "dns-server: for router dns only, not service",
        ),
        ({"router": "dns", "dns-server": "127.0.0.1:99999"}, "dns-server:"),
    ],
)
def test_a_dns_server_input_is_refused_off_the_dns_router_or_malformed(
    inputs: dict[str, str], said: str
) -> None:
    with pytest.raises(UsageError) as refused:
        step("switch", **inputs)
    assert said in str(refused.value)
