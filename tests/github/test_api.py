"""The check run and the GitHub Deployment, sent to Prism serving GitHub's own OpenAPI description.

Every request must pass Prism's validation against GitHub's schema (no 4xx, no `sl-violations`),
and carry what a user then sees on the pull request and the environment page.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from lightkube import Client

import entrypoint
from bluegreen.github.api import Publication, publish
from bluegreen.github.event import GitHubContext
from bluegreen.github.runner import Annotation
from hack.localcluster import LocalCluster
from tests.support.apps import create_app
from tests.support.prism import Recorder

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


def context(api: Recorder) -> GitHubContext:
    return GitHubContext(
        repository="acme/shop",
        sha=SHA,
        api_url=api.url,
        run_id="42",
        workflow_path=".github/workflows/deploy.yml",
    )


def publication(**changes: object) -> Publication:
    base = Publication(
        phase="switch",
        app="shop",
        namespace="shop",
        result="switched",
        failed=False,
        dry_run=False,
        title="shop: switch switched",
        summary="## bluegreen switch: shop\n\nswitched to green",
        annotations=[],
        environment="production",
        environment_url="https://shop.example.com",
        image="ghcr.io/acme/shop:1.1.0",
        active_color="green",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def send(api: Recorder, pub: Publication) -> list[str]:
    warnings: list[str] = []
    publish(pub, context(api), token="ghs_test_token", warn=warnings.append)
    return warnings


def assert_all_valid(api: Recorder) -> None:
    assert api.exchanges, "nothing was sent"
    for exchange in api.exchanges:
        assert exchange.status < 400 and not exchange.violations, exchange


def test_a_switch_reports_a_successful_check_and_a_live_deployment(github_api: Recorder) -> None:
    assert send(github_api, publication()) == []
    assert_all_valid(github_api)
    (check,) = github_api.writes("POST", "/repos/acme/shop/check-runs")
    assert check.body["name"] == "bluegreen switch (shop)"
    assert (check.body["head_sha"], check.body["conclusion"]) == (SHA, "success")
    assert check.body["details_url"] == "https://github.com/acme/shop/actions/runs/42"
    (listed,) = [e for e in github_api.exchanges if e.method == "GET"]
    assert "environment=production" in listed.path and f"sha={SHA}" in listed.path
    (status,) = github_api.writes("POST", "/statuses")
    assert status.body["state"] == "success"
    assert status.body["environment_url"] == "https://shop.example.com"


def test_a_deploy_marks_the_deployment_in_progress(github_api: Recorder) -> None:
    assert send(github_api, publication(phase="deploy", result="deployed", active_color="blue")) == []
    assert_all_valid(github_api)
    (status,) = github_api.writes("POST", "/statuses")
    assert status.body["state"] == "in_progress" and "environment_url" not in status.body


@pytest.mark.parametrize(("phase", "state"), [("rollback", "inactive"), ("watch", "failure")])
def test_a_rollback_marks_the_live_deployment(github_api: Recorder, phase: str, state: str) -> None:
    failed = phase == "watch"  # the watch rolled back: the release failed
    assert send(github_api, publication(phase=phase, result="rolled-back", failed=failed)) == []
    assert_all_valid(github_api)
    (listed,) = [e for e in github_api.exchanges if e.method == "GET"]
    assert "sha=" not in listed.path  # whatever is live in the environment, whichever commit
    (status,) = github_api.writes("POST", "/statuses")
    assert status.body["state"] == state


def test_a_failed_gate_is_a_failed_check_with_its_annotations(github_api: Recorder) -> None:
    notes = [
        Annotation(level="error", title=f"gate check {i} failed", message="error_rate=0.05")
        for i in range(55)
    ]
    pub = publication(phase="gate", result="failed", failed=True, annotations=notes, environment="")
    assert send(github_api, pub) == []
    assert_all_valid(github_api)
    (check,) = github_api.writes("POST", "/check-runs")
    assert check.body["conclusion"] == "failure"
    first = check.body["output"]["annotations"]
    assert len(first) == 50
    assert first[0] | {"title": ""} == {
        "path": ".github/workflows/deploy.yml",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "title": "",
        "message": "error_rate=0.05",
    }
    (rest,) = github_api.writes("PATCH", "/check-runs/4")  # the id in GitHub's example response
    assert len(rest.body["output"]["annotations"]) == 5
    assert github_api.writes("POST", "/statuses") == []  # no environment given: no deployment


def test_a_long_summary_is_cut_to_the_apis_limit(github_api: Recorder) -> None:
    assert send(github_api, publication(summary="x" * 70000, environment="")) == []
    (check,) = github_api.writes("POST", "/check-runs")
    summary = check.body["output"]["summary"]
    assert len(summary) == 65535 and summary.endswith("the job summary has it all.")


def test_a_refusing_api_is_a_warning_that_names_the_permission(github_api: Recorder) -> None:
    github_api.refuse = 403
    warnings = send(github_api, publication())
    assert len(warnings) == 2
    assert "HTTP 403" in warnings[0] and "checks: write" in warnings[0]
    assert "deployments: write" in warnings[1]


def test_an_unreachable_api_is_a_warning_not_a_failure() -> None:
    closed = Recorder(upstream="", url="http://127.0.0.1:9")  # discard port: nothing listens
    warnings = send(closed, publication())
    assert len(warnings) == 2 and all("could not reach the GitHub API" in w for w in warnings)


def test_no_token_means_no_request(github_api: Recorder) -> None:
    warnings: list[str] = []
    publish(publication(), context(github_api), token="", warn=warnings.append)
    assert github_api.exchanges == [] and warnings == []


def test_a_pull_request_event_puts_the_check_on_the_head_commit(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": "abc123"}}}))
    ctx = GitHubContext.from_env(
        {
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_SHA": "merge-commit-sha",
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_WORKFLOW_REF": "acme/shop/.github/workflows/preview.yml@refs/pull/7/merge",
        }
    )
    assert (ctx.sha, ctx.pull_request, ctx.workflow_path) == ("abc123", 7, ".github/workflows/preview.yml")
    assert GitHubContext.from_env({"GITHUB_SHA": "s", "GITHUB_EVENT_PATH": str(tmp_path / "nope")}).sha == "s"


def test_a_switch_step_reports_its_summary_on_the_commit_and_the_environment(
    github_api: Recorder, kube: Client, namespace: str, cluster: LocalCluster, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    output = tmp_path / "output"
    output.touch()
    code = entrypoint.main(
        {
            "GITHUB_OUTPUT": str(output),
            "GITHUB_API_URL": github_api.url,
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_SHA": SHA,
            "BLUEGREEN_KUBECONFIG": cluster.kubeconfig.read_text(),
            "BLUEGREEN_GITHUB_TOKEN": "ghs_test_token",
            "BLUEGREEN_PHASE": "switch",
            "BLUEGREEN_TO": "green",  # no deploy recorded a candidate: an explicit move
            "BLUEGREEN_APP": "shop",
            "BLUEGREEN_NAMESPACE": namespace,
            "BLUEGREEN_ENVIRONMENT": "production",
            "BLUEGREEN_ENVIRONMENT_URL": "https://shop.example.com",
        }
    )
    assert code == 0
    assert_all_valid(github_api)
    (check,) = github_api.writes("POST", "/check-runs")
    assert check.body["conclusion"] == "success"
    assert "### Switch timings" in check.body["output"]["summary"]
    (status,) = github_api.writes("POST", "/statuses")
    assert status.body["state"] == "success" and "live on green" in status.body["description"]
