"""Migration hooks without a cluster: the contract ordering rule, the hooks' configuration, and what a
hook is given (its environment, its Job) and shows (masked output, pod reasons)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bluegreen import hooks, ordering
from bluegreen.config import HookConfig, parse
from bluegreen.errors import ConfigError
from bluegreen.model import AppSpec

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
RETIRED = ordering.ContractState(
    app="shop",
    live="green",
    previous_deployment="shop-blue",
    previous_replicas=0,
    previous_pods=0,
    switching=None,
    last_action="switch",
    last_switch=NOW - timedelta(hours=2),
    window=3600.0,
    now=NOW,
)


def test_contract_is_allowed_once_the_old_colour_is_retired_and_the_window_passed() -> None:
    assert ordering.contract(RETIRED) == ordering.Decision(True)
    assert ordering.contract(RETIRED._replace(previous_replicas=None)).allowed  # never had one


@pytest.mark.parametrize(
    ("change", "why", "remedy"),
    [
        ({"previous_replicas": 3}, "shop-blue has 3 replicas", "bluegreen retire --app shop"),
        ({"previous_pods": 2}, "still draining: 2 pods of shop-blue", "Wait for `bluegreen retire`"),
        ({"last_action": "rollback"}, "put back by a rollback", "Contract only after"),
        ({"switching": "blue"}, "a switch to blue was started", "bluegreen status"),
        ({"live": None}, "not on one colour", "bluegreen switch --to"),
    ],
)
def test_contract_is_refused_while_the_old_release_can_come_back(
    change: dict[str, object], why: str, remedy: str
) -> None:
    decision = ordering.contract(RETIRED._replace(**change))  # type: ignore[arg-type]
    assert not decision.allowed
    assert why in decision.why and remedy in decision.remedy


def test_inside_the_rollback_window_contract_names_when_it_becomes_allowed() -> None:
    decision = ordering.contract(RETIRED._replace(last_switch=NOW - timedelta(minutes=20)))
    assert not decision.allowed
    assert decision.not_before == NOW + timedelta(minutes=40)
    assert "contract-after is 1h" in decision.why
    assert "2026-12-02T01:40:00+00:00 (in 40m)" in decision.remedy
    assert ordering.contract(RETIRED._replace(last_switch=NOW - timedelta(minutes=20), window=0)).allowed


def test_the_first_reason_is_the_one_to_act_on() -> None:
    # Still running beats the window: retiring is the next step, waiting alone would not help.
    both = RETIRED._replace(previous_replicas=2, last_switch=NOW)
    assert "replicas" in ordering.contract(both).why


HOOKS = """
migrations:
  contract-after: 30m
  expand:
    command: [psql, -f, "migrations/{{release}}/expand.sql", 7]
    timeout: 2m
    env: {PGHOST: db.internal}
    pass-env: [PGPASSWORD]
  post-switch:
    command: [./flags, enable, new-checkout]
    on-failure: rollback
  contract:
    job:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: migrate, image: "registry.local/migrate:{{release}}", args: [contract]}]
"""


def test_hooks_are_read_typed() -> None:
    config = parse(HOOKS)
    m = config.migrations
    assert m.contract_after == 1800
    assert m.expand == HookConfig(
        name="expand",
        line=m.expand.line if m.expand else 0,
        command=("psql", "-f", "migrations/{{release}}/expand.sql", "7"),
        timeout=120.0,
        env={"PGHOST": "db.internal"},
        pass_env=("PGPASSWORD",),
    )
    assert m.post_switch is not None and m.post_switch.on_failure == "rollback"
    assert m.contract is not None and m.contract.kind == "job" and m.contract.timeout == 600
    assert parse("checks: [{name: pods, kind: kubernetes}]").migrations.hook("expand") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("migrations: {expand: {command: 'psql -f x.sql'}}", "migrations.expand.command: expected a list"),
        ("migrations: {expand: {}}", "give exactly one of `command`"),
        ("migrations: {expand: {command: [a], job: {spec: {}}}}", "give exactly one of"),
        (
            "migrations: {expand: {command: [a], on-failure: rollback}}",
            "migrations.expand.on-failure: unknown key",
        ),
        ("migrations: {post-switch: {command: [a], on-failure: retry}}", "expected one of rollback, nothing"),
        ("migrations: {expand: {command: [a], env: {'BAD NAME': x}}}", "is not an environment variable name"),
        ("migrations: {expand: {command: [a], pass-env: PGPASSWORD}}", "expected a list of environment"),
        ("migrations: {expand: {command: ['{{colour}}']}}", "unknown template variable {{colour}}"),
        ("migrations: {expand: {command: [a], timeout: 0s}}", "migrations.expand.timeout"),
        ("migrations: {contract: {job: {kind: Pod, spec: {}}}}", "expected kind Job"),
        ("migrations: {contract: {job: {spec: {}}, env: {A: b}}}", "a Job hook takes its environment"),
        ("migrations: {shrink: {command: [a]}}", "migrations.shrink: unknown key"),
        ("migrations: {contract-after: forever}", "migrations.contract-after"),
    ],
)
def test_a_bad_hook_is_one_clear_problem_with_its_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert problem in caught.value.message
    assert "bluegreen.yaml:1:" in caught.value.message


def test_a_command_hook_gets_only_what_it_is_given() -> None:
    hook = parse(HOOKS).migrations.expand
    assert hook is not None
    found = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "KUBECONFIG": "/private/kubeconfig",
        "BLUEGREEN_GITHUB_TOKEN": "ghs_secret",
        "GITHUB_TOKEN": "ghs_secret",
        "PGPASSWORD": "hunter2-long",
        "AWS_SECRET_ACCESS_KEY": "nope",
    }
    values = hooks.variables(AppSpec(name="shop", namespace="prod"), "green", "v2", "expand")
    assert hooks.command_env(hook, found, values) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "PGHOST": "db.internal",
        "PGPASSWORD": "hunter2-long",
        "BLUEGREEN_APP": "shop",
        "BLUEGREEN_NAMESPACE": "prod",
        "BLUEGREEN_COLOR": "green",
        "BLUEGREEN_RELEASE": "v2",
        "BLUEGREEN_HOOK": "expand",
    }


def test_passed_secrets_are_masked_in_what_is_shown() -> None:
    shown = hooks.masked("connecting with hunter2-long as hunter2\n", ["hunter2", "hunter2-long", ""])
    assert shown == "connecting with *** as ***\n"


def test_a_job_hook_is_named_labelled_and_bounded_by_its_timeout() -> None:
    hook = parse(HOOKS).migrations.contract
    assert hook is not None
    values = hooks.variables(AppSpec(name="shop", namespace="prod"), "green", "v2", "contract")
    job = hooks.job_manifest(
        replace(hook, timeout=90), AppSpec(name="shop", namespace="prod"), values, "abc123"
    )
    assert job["metadata"]["name"] == "shop-contract-abc123"
    assert job["metadata"]["namespace"] == "prod"
    assert job["metadata"]["labels"][hooks.HOOK_LABEL] == "contract"
    assert job["spec"]["activeDeadlineSeconds"] == 90 and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/migrate:v2"


def test_a_failed_job_pod_says_why() -> None:
    pods = [
        {
            "metadata": {"name": "shop-contract-abc-x1"},
            "status": {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": "migrate",
                        "state": {
                            "terminated": {"exitCode": 3, "reason": "Error", "message": "relation missing"}
                        },
                    }
                ],
            },
        },
        {
            "metadata": {"name": "shop-contract-abc-x2"},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes",
                    }
                ],
            },
        },
    ]
    assert hooks.pod_reasons(pods) == [
        "pod shop-contract-abc-x1: container migrate exited with code 3 (Error: relation missing)",
        "1 pod: Unschedulable: 0/1 nodes",
    ]
    assert hooks.job_outcome(
        {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    ) == ("Failed", "BackoffLimitExceeded")


def test_a_rollback_to_a_release_older_than_a_contract_is_named() -> None:
    switches = [
        {"time": "2026-12-02T01:00:00+00:00", "from": "blue", "to": "green", "action": "switch"},
        {"time": "2026-12-01T12:00:00+00:00", "from": "green", "to": "blue", "action": "switch"},
    ]
    contract = {
        "hook": "contract",
        "outcome": "succeeded",
        "time": "2026-12-02T02:30:00+00:00",
        "release": "v2",
    }
    why = ordering.rollback_after_contract("blue", switches, [contract])
    assert why == (
        "contract ran for release v2 at 2026-12-02T02:30:00+00:00, after traffic left blue at "
        "2026-12-02T01:00:00+00:00: the release on blue may need what it removed"
    )
    # A refused or failed contract removed nothing; one before traffic left blue was blue's own.
    assert ordering.rollback_after_contract("blue", switches, [{**contract, "outcome": "refused"}]) == ""
    earlier = {**contract, "time": "2026-12-01T18:00:00+00:00"}
    assert ordering.rollback_after_contract("blue", switches, [earlier]) == ""
    assert ordering.rollback_after_contract("blue", [], [contract]) == ""
