"""action.yml, the Dockerfile and every workflow pass the linters GitHub users trust.

Each tool runs as CI runs it (`make lint-action`); one test shows the gate bites: a workflow that
splices an input into a shell command is refused.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.action.conftest import ROOT, run

TOOLS = Path(os.environ.get("BLUEGREEN_CACHE") or Path.home() / ".cache" / "bluegreen") / "tools" / "bin"
WORKFLOWS = sorted(
    str(p) for p in (*ROOT.glob(".github/workflows/*.yml"), *ROOT.glob("examples/workflows/*.yml"))
)


@pytest.fixture(scope="session")
def tools() -> Path:
    done = run(["bash", str(ROOT / "hack" / "install-action-tools.sh")])
    if done.returncode != 0:
        pytest.fail(f"hack/install-action-tools.sh failed:\n{done.stdout}{done.stderr}")
    return TOOLS


def lint(args: list[str]) -> subprocess.CompletedProcess[str]:
    return run(args, cwd=ROOT)


def test_there_are_workflows_to_lint() -> None:
    names = {Path(p).name for p in WORKFLOWS}
    assert {"ci.yml", "rollback.yml", "release.yml", "deploy.yml", "pull-request.yml"} <= names


def test_actionlint(tools: Path) -> None:
    done = lint([str(tools / "actionlint"), *WORKFLOWS])
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint(tools: Path) -> None:
    done = lint([str(tools / "hadolint"), "Dockerfile"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_action_and_workflows_match_githubs_schemas(tools: Path) -> None:
    action = lint(
        [str(tools / "check-jsonschema"), "--builtin-schema", "vendor.github-actions", "action.yml"]
    )
    assert action.returncode == 0, action.stdout + action.stderr
    flows = lint([str(tools / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *WORKFLOWS])
    assert flows.returncode == 0, flows.stdout + flows.stderr


def test_zizmor_finds_nothing(tools: Path) -> None:
    done = lint([str(tools / "zizmor"), "--offline", "--config", ".github/zizmor.yml", *WORKFLOWS])
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_refuses_an_input_spliced_into_a_shell(tools: Path, tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on:\n  workflow_dispatch:\n    inputs: {reason: {type: string}}\npermissions: {}\n"
        "jobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        '      - run: echo "${{ inputs.reason }}"\n'
    )
    done = run([str(tools / "zizmor"), "--offline", str(bad)], cwd=tmp_path)
    assert done.returncode != 0
    assert "template-injection" in done.stdout + done.stderr
