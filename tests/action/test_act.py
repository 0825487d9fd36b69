"""Workflows run by act (a local GitHub Actions runner) through `uses: ./`, on the local Docker engine.

act builds this repository's Dockerfile, runs the container for each step with the inputs of the
workflow, and reads back $GITHUB_OUTPUT, so a later step sees the outputs as it would on GitHub.
Nothing can be pulled here: the local base image is tagged as the Dockerfile's default base, and
the job container is a local image too (-P ubuntu-latest=...).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Service

from hack.localcluster import LocalCluster
from tests.action.conftest import HOST_CA, ROOT, run
from tests.support.apps import create_app
from tests.support.prism import Recorder

CHECKOUT = re.compile(
    r"      - uses: actions/checkout@.*\n        with:\n          persist-credentials: false\n"
)
JOB_IMAGE = "bluegreen.local/act-job:1"
ACT = (
    Path(os.environ.get("BLUEGREEN_CACHE") or Path.home() / ".cache" / "bluegreen") / "tools" / "bin" / "act"
)

RELEASE = """
name: release
on: push
jobs:
  release:
    runs-on: ubuntu-latest
    steps:
      - id: deploy
        uses: ./
        with:
          phase: deploy
          app: shop
          namespace: ${{ vars.NAMESPACE }}
          image: registry.local/shop:4.0
          kubeconfig: ${{ secrets.KUBECONFIG }}
      - id: switch
        uses: ./
        with:
          phase: switch
          app: shop
          namespace: ${{ vars.NAMESPACE }}
          reason: released by act
          kubeconfig: ${{ secrets.KUBECONFIG }}
      - env:
          DEPLOYED: ${{ steps.deploy.outputs.result }}
          SWITCHED: ${{ steps.switch.outputs.result }}
          ACTIVE: ${{ steps.switch.outputs.active-color }}
          PREVIOUS: ${{ steps.switch.outputs.previous-color }}
          API_MS: ${{ steps.switch.outputs.api-ms }}
        run: echo "seen by the next step -> deployed=$DEPLOYED switched=$SWITCHED active=$ACTIVE previous=$PREVIOUS api-ms=$API_MS"
"""


@pytest.fixture(scope="session")
def act_repo(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with this checkout's files, the act tools installed, the base image tagged."""
    tools = run(["bash", str(ROOT / "hack" / "install-action-tools.sh")])
    assert tools.returncode == 0, tools.stderr
    # act builds `image: Dockerfile` with no build arguments: its default base must exist locally.
    tagged = run(["docker", "tag", "bluegreen.local/python:3.11-slim", "python:3.11-slim"])
    assert tagged.returncode == 0, tagged.stderr
    repo = tmp_path_factory.mktemp("act-repo")
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    if HOST_CA.exists():  # pip inside the image build reaches PyPI through this machine's network
        shutil.copy2(HOST_CA, repo / "requirements" / "build-ca.crt")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.email=ci@local", "-c", "user.name=ci", "commit", "-qm", "x"],
    ):
        assert run(["git", *args], cwd=repo).returncode == 0
    return repo


def act(
    repo: Path, home: Path, event: str, *args: str, secrets: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), **secrets}
    # `-s NAME` without a value: act reads the secret from the environment, not the command line.
    names = [arg for name in secrets for arg in ("-s", name)]
    return subprocess.run(
        [str(ACT), event, "-P", f"ubuntu-latest={JOB_IMAGE}", "--pull=false", "--bind", *names, *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_a_release_workflow_runs_the_action_and_passes_outputs_on(
    act_repo: Path, tmp_path: Path, cluster: LocalCluster, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    workflows = act_repo / ".github" / "workflows"
    shutil.rmtree(workflows)
    workflows.mkdir()
    (workflows / "release.yml").write_text(RELEASE)
    kubeconfig = cluster.kubeconfig.read_text()
    done = act(
        act_repo, tmp_path, "push", "--var", f"NAMESPACE={namespace}", secrets={"KUBECONFIG": kubeconfig}
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    seen = re.search(r"\| seen by the next step -> (.*?)\s*$", log, re.MULTILINE)  # the step's output
    assert seen is not None, log[-5000:]
    assert re.fullmatch(
        r"deployed=deployed switched=switched active=green previous=blue api-ms=\d+(\.\d+)?", seen[1]
    ), seen[1]
    # act prints each step's job summary as it reads $GITHUB_STEP_SUMMARY back after the step; the
    # entrypoint never prints the Markdown itself, so these lines prove the file was written.
    assert "Summary - ## bluegreen deploy: shop" in log
    assert "Summary - ## bluegreen switch: shop" in log
    assert "| write to verified on the new colour |" in log
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "green"
    key = next(line.split('"')[3] for line in kubeconfig.splitlines() if "client-key-data" in line)
    assert key not in log


def test_the_rollback_workflow_rolls_back_and_marks_the_deployment_inactive(
    act_repo: Path,
    tmp_path: Path,
    cluster: LocalCluster,
    kube: Client,
    namespace: str,
    github_api: Recorder,
) -> None:
    """The repository's own rollback.yml, as a person starts it from the Actions tab."""
    create_app(kube, namespace, "shop", active="green")
    # act binds this repository as the workspace already; the checkout step would fetch from GitHub.
    text, removed = CHECKOUT.subn("", (ROOT / ".github" / "workflows" / "rollback.yml").read_text())
    assert removed == 1
    workflows = act_repo / ".github" / "workflows"
    shutil.rmtree(workflows)
    workflows.mkdir()
    (workflows / "rollback.yml").write_text(text)
    done = act(
        act_repo,
        tmp_path,
        "workflow_dispatch",
        "--input",
        "app=shop",
        "--input",
        f"namespace={namespace}",
        "--input",
        "reason=p95 doubled after 4.0",
        "--input",
        "color=blue",
        "--env",
        f"GITHUB_API_URL={github_api.url}",  # our Prism, never api.github.com
        secrets={"KUBECONFIG": cluster.kubeconfig.read_text(), "GITHUB_TOKEN": "ghs_act_test"},
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    assert "rollback of shop: rolled-back; live colour now blue" in log
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "blue"
    (status,) = github_api.writes("POST", "/statuses")
    assert status.body["state"] == "inactive"
    assert all(e.status < 400 and not e.violations for e in github_api.exchanges)
