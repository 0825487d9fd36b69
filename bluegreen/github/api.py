"""A check run on the commit (shown on its pull request) and a GitHub Deployment with statuses.

Through PyGithub's requester, imported only when a token is given, with URLs built from the API
base (so GitHub Enterprise and a local mock work the same) and GitHub's current media type. A
refusal (no `checks: write`, a bad token, an outage) is one warning: it never fails a release.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bluegreen.github.event import GitHubContext
from bluegreen.github.runner import Annotation

if TYPE_CHECKING:
    from github.Requester import Requester

MAX_SUMMARY = 65535  # the checks API's limit on output.summary
ANNOTATIONS_PER_REQUEST = 50
# Plain JSON: GitHub answers it like its own media type, and mocks built from its OpenAPI serve only this.
MEDIA_TYPE = "application/json"
LEVELS = {"error": "failure", "warning": "warning", "notice": "notice"}


@dataclass(frozen=True, kw_only=True)
class Publication:
    phase: str
    app: str
    namespace: str
    result: str
    failed: bool  # the step fails
    dry_run: bool
    title: str
    summary: str  # Markdown
    annotations: Sequence[Annotation]
    environment: str  # "" = no GitHub Deployment
    environment_url: str
    image: str
    active_color: str | None


def conclusion(pub: Publication) -> str:
    if pub.failed:
        return "failure"
    if pub.dry_run or pub.phase == "status" or pub.result in ("noop", "planned", "status"):
        return "neutral"
    return "success"


def deployment_state(pub: Publication) -> str | None:
    """The GitHub Deployment status this phase reports, or None when it has nothing to say."""
    if pub.dry_run:
        return None
    if pub.result == "rolled-back":
        # Asked for by a person: the release is no longer live. Done by the watch: the release failed.
        return "inactive" if pub.phase == "rollback" else "failure"
    if pub.failed and pub.phase in ("deploy", "gate", "switch", "watch", "release", "expand"):
        return "failure"
    if pub.result == "switched":
        return "success"
    if pub.result == "deployed":
        return "in_progress"
    return None


def truncated(markdown: str) -> str:
    if len(markdown) <= MAX_SUMMARY:
        return markdown
    note = "\n\n… cut to the checks API's limit: the job summary has it all."
    return markdown[: MAX_SUMMARY - len(note)] + note


def check_annotations(notes: Sequence[Annotation], fallback_path: str) -> list[dict[str, Any]]:
    """Check-run annotations need a file: those without one point at the workflow file's first line."""
    found = []
    for note in notes:
        path = note.file or fallback_path
        if not path:
            continue
        found.append(
            {
                "path": path,
                "start_line": note.line or 1,
                "end_line": note.line or 1,
                "annotation_level": LEVELS[note.level],
                "title": note.title[:255],
                "message": note.message[: 64 * 1024] or note.title,
            }
        )
    return found


def publish(pub: Publication, ctx: GitHubContext, *, token: str, warn: Callable[[str], None]) -> None:
    if not token:
        return
    if not (ctx.repository and ctx.sha):
        warn("no GITHUB_REPOSITORY or GITHUB_SHA: no check run or deployment was created")
        return
    from github import Auth, Github, GithubException
    from github.GithubRetry import GithubRetry

    # A step reports once: no write throttling, few retries, a short timeout.
    client = Github(
        auth=Auth.Token(token),
        base_url=ctx.api_url,
        timeout=10,
        retry=GithubRetry(total=2),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    requester = client.requester
    steps: list[tuple[str, Callable[[], None], str]] = [
        ("check run", lambda: _check_run(requester, pub, ctx), "give the job `permissions: checks: write`"),
        ("deployment status", lambda: _deployment(requester, pub, ctx), "give the job `deployments: write`"),
    ]
    for what, send, remedy in steps:
        try:
            send()
        except GithubException as error:
            message = (error.data or {}).get("message", "") if isinstance(error.data, dict) else ""
            warn(
                f"the GitHub API refused the {what} (HTTP {error.status}{': ' + message if message else ''}): {remedy}"
            )
        except Exception as error:  # network errors of any kind: the release itself is done
            warn(f"could not reach the GitHub API for the {what} ({type(error).__name__}: {error})")


def _check_run(requester: Requester, pub: Publication, ctx: GitHubContext) -> None:
    notes = check_annotations(pub.annotations, ctx.workflow_path)
    output = {"title": pub.title[:255], "summary": truncated(pub.summary)}
    body: dict[str, Any] = {
        "name": f"bluegreen {pub.phase} ({pub.app})",
        "head_sha": ctx.sha,
        "status": "completed",
        "conclusion": conclusion(pub),
        "external_id": f"{pub.namespace}/{pub.app}",
        "output": {**output, "annotations": notes[:ANNOTATIONS_PER_REQUEST]},
    }
    if ctx.run_url:
        body["details_url"] = ctx.run_url
    _, created = requester.requestJsonAndCheck(
        "POST", f"/repos/{ctx.repository}/check-runs", input=body, headers={"Accept": MEDIA_TYPE}
    )
    # The API takes 50 annotations a request; the rest are added to the same run.
    for start in range(ANNOTATIONS_PER_REQUEST, len(notes), ANNOTATIONS_PER_REQUEST):
        requester.requestJsonAndCheck(
            "PATCH",
            f"/repos/{ctx.repository}/check-runs/{created['id']}",
            input={"output": {**output, "annotations": notes[start : start + ANNOTATIONS_PER_REQUEST]}},
            headers={"Accept": MEDIA_TYPE},
        )


def _deployment(requester: Requester, pub: Publication, ctx: GitHubContext) -> None:
    state = deployment_state(pub)
    if not pub.environment or state is None:
        return
    repo = f"/repos/{ctx.repository}"
    headers = {"Accept": MEDIA_TYPE}
    if pub.result == "rolled-back":
        # Rolled back from whatever was live in this environment: the newest deployment there.
        _, found = requester.requestJsonAndCheck(
            "GET",
            f"{repo}/deployments",
            parameters={"environment": pub.environment, "per_page": 1},
            headers=headers,
        )
    else:
        _, found = requester.requestJsonAndCheck(
            "GET",
            f"{repo}/deployments",
            parameters={"environment": pub.environment, "sha": ctx.sha, "per_page": 1},
            headers=headers,
        )
    if found:
        deployment_id = found[0]["id"]
    elif pub.result == "rolled-back":
        return  # nothing was ever deployed to this environment through GitHub: nothing to mark
    else:
        _, created = requester.requestJsonAndCheck(
            "POST",
            f"{repo}/deployments",
            input={
                "ref": ctx.sha,
                "environment": pub.environment,
                "auto_merge": False,
                "required_contexts": [],
                "description": f"{pub.app} {pub.image}".strip()[:140],
                "payload": {"app": pub.app, "namespace": pub.namespace, "image": pub.image},
                "production_environment": pub.environment == "production",
            },
            headers=headers,
        )
        deployment_id = created["id"]
    status: dict[str, Any] = {
        "state": state,
        "description": f"{pub.app}: {pub.phase} {pub.result}"
        + (f", live on {pub.active_color}" if pub.active_color else ""),
    }
    if ctx.run_url:
        status["log_url"] = ctx.run_url
    if state == "success" and pub.environment_url:
        status["environment_url"] = pub.environment_url
    requester.requestJsonAndCheck(
        "POST", f"{repo}/deployments/{deployment_id}/statuses", input=status, headers=headers
    )
