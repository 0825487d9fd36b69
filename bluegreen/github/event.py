"""What the workflow run is about, from the runner's environment and event payload. Pure, no network."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class GitHubContext:
    repository: str = ""  # owner/name
    sha: str = ""  # the commit checks attach to: a pull request's head, else GITHUB_SHA
    ref: str = ""
    event_name: str = ""
    pull_request: int | None = None
    api_url: str = "https://api.github.com"
    server_url: str = "https://github.com"
    run_id: str = ""
    actor: str = ""
    job: str = ""
    workflow_path: str = ""  # .github/workflows/x.yml: where check annotations without a file point

    @property
    def run_url(self) -> str:
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubContext:
        payload = _payload(env.get("GITHUB_EVENT_PATH", ""))
        pull = payload.get("pull_request") if isinstance(payload.get("pull_request"), dict) else None
        head = (pull or {}).get("head") or {}
        number = (pull or {}).get("number")
        workflow_ref = env.get("GITHUB_WORKFLOW_REF", "")  # owner/repo/.github/workflows/x.yml@refs/...
        path = workflow_ref.split("@", 1)[0]
        repository = env.get("GITHUB_REPOSITORY", "")
        if repository and path.startswith(repository + "/"):
            path = path[len(repository) + 1 :]
        return cls(
            repository=repository,
            sha=str(head.get("sha") or env.get("GITHUB_SHA", "")),
            ref=env.get("GITHUB_REF", ""),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            pull_request=number if isinstance(number, int) else None,
            api_url=(env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/"),
            server_url=(env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/"),
            run_id=env.get("GITHUB_RUN_ID", ""),
            actor=env.get("GITHUB_ACTOR", ""),
            job=env.get("GITHUB_JOB", ""),
            workflow_path=path if path.startswith(".github/") else "",
        )


def _payload(path: str) -> dict[str, Any]:
    """The event payload; missing or unreadable is an empty payload, never an error."""
    if not path:
        return {}
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
