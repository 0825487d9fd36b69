"""A check run on the commit (shown on its pull request) and a GitHub Deployment with statuses.

Through GitHub's REST API on httpx2, the engine's own HTTP client, with URLs built from the API base
(so GitHub Enterprise and a local mock work the same). A refusal (no `checks: write`, a bad token, an
outage) is one warning: it never fails a release. PyGithub did this before; it was used only as a
requester here, and `import github` (cryptography, PyNaCl, requests) cost every Action step about
0.3 s of CPU and the image 43 MB.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx2

from bluegreen.github.event import GitHubContext
from bluegreen.github.runner import Annotation

MAX_SUMMARY = 65535  # the checks API's limit on output.summary
ANNOTATIONS_PER_REQUEST = 50
# Plain JSON: GitHub answers it like its own media type, and mocks built from its OpenAPI serve only this.
MEDIA_TYPE = "application/json"
LEVELS = {"error": "failure", "warning": "warning", "notice": "notice"}
API_VERSION = "2022-11-28"  # the REST API version whose bodies these are
TIMEOUT = 10.0  # seconds a request may take: a step reports once, after its work is done
RETRIES = 2  # more attempts for a request that never reached GitHub, or a GET it answered 502-504
BACKOFF = 0.25  # seconds before the first retry, doubled after each
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class Refused(Exception):
    """GitHub answered with an error status: `message` is its own explanation, when it gave one."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}{': ' + message if message else ''}")
        self.status, self.message = status, message


class Requester:
    """JSON to and from GitHub's REST API, authenticated with the job's token (sent in a header only)."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base = base_url.rstrip("/")
        self.client = httpx2.Client(
            timeout=TIMEOUT,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": MEDIA_TYPE,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "bluegreen-action",
            },
            transport=_transport(),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            try:
                response = self.client.request(method, self.base + path, json=body, params=params)
            except httpx2.ConnectError:  # never reached GitHub: safe to send again, even a POST
                if last:
                    raise
                time.sleep(BACKOFF * 2**attempt)
                continue
            # A POST GitHub may have acted on is never sent twice: two check runs would show.
            if response.status_code in (502, 503, 504) and method == "GET" and not last:
                time.sleep(BACKOFF * 2**attempt)
                continue
            if response.status_code >= 400:
                raise Refused(response.status_code, _message(response))
            return response.json() if response.content else None
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt


def _message(response: httpx2.Response) -> str:
    try:
        found = response.json()
    except ValueError:
        return ""
    return str(found.get("message", "")) if isinstance(found, dict) else ""


def _transport() -> httpx2.BaseTransport | None:
    """The standard library's HTTP/1.1 (bluegreen/transport.py), as for the apiserver; behind a proxy
    (a self-hosted runner's HTTPS_PROXY), httpx2's own transport, which honours it."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    import ssl

    from bluegreen.transport import StdlibTransport

    return StdlibTransport(ssl.create_default_context())


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
    requester = Requester(ctx.api_url, token)
    steps: list[tuple[str, Callable[[], None], str]] = [
        ("check run", lambda: _check_run(requester, pub, ctx), "give the job `permissions: checks: write`"),
        ("deployment status", lambda: _deployment(requester, pub, ctx), "give the job `deployments: write`"),
    ]
    for what, send, remedy in steps:
        try:
            send()
        except Refused as error:
            warn(f"the GitHub API refused the {what} ({error}): {remedy}")
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
    created = requester.request("POST", f"/repos/{ctx.repository}/check-runs", body=body)
    # The API takes 50 annotations a request; the rest are added to the same run.
    for start in range(ANNOTATIONS_PER_REQUEST, len(notes), ANNOTATIONS_PER_REQUEST):
        requester.request(
            "PATCH",
            f"/repos/{ctx.repository}/check-runs/{created['id']}",
            body={"output": {**output, "annotations": notes[start : start + ANNOTATIONS_PER_REQUEST]}},
        )


def _deployment(requester: Requester, pub: Publication, ctx: GitHubContext) -> None:
    state = deployment_state(pub)
    if not pub.environment or state is None:
        return
    repo = f"/repos/{ctx.repository}"
    if pub.result == "rolled-back":
        # Rolled back from whatever was live in this environment: the newest deployment there.
        found = requester.request(
            "GET", f"{repo}/deployments", params={"environment": pub.environment, "per_page": 1}
        )
    else:
        found = requester.request(
            "GET",
            f"{repo}/deployments",
            params={"environment": pub.environment, "sha": ctx.sha, "per_page": 1},
        )
    if found:
        deployment_id = found[0]["id"]
    elif pub.result == "rolled-back":
        return  # nothing was ever deployed to this environment through GitHub: nothing to mark
    else:
        created = requester.request(
            "POST",
            f"{repo}/deployments",
            body={
                "ref": ctx.sha,
                "environment": pub.environment,
                "auto_merge": False,
                "required_contexts": [],
                "description": f"{pub.app} {pub.image}".strip()[:140],
                "payload": {"app": pub.app, "namespace": pub.namespace, "image": pub.image},
                "production_environment": pub.environment == "production",
            },
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
    requester.request("POST", f"{repo}/deployments/{deployment_id}/statuses", body=status)
