"""The Action's image run as the runner runs a Docker action: host network, the runner's files mounted.

The runner mounts its file-command files and the event payload into the container, sets the
workspace as the working directory, and reads $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY afterwards.
Those files belong to the runner's user (uid 1001 on GitHub's runners), and so do they here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from hack.localcluster import LocalCluster
from tests.action.conftest import run
from tests.support.apps import create_app
from tests.support.github import commands, read_outputs

RUNNER_UID = 1001


class Container:
    """One step of the Action in its container; the runner's folders live under a temp dir."""

    def __init__(self, image: str, home: Path, kubeconfig: str) -> None:
        self.image, self.home, self.kubeconfig = image, home, kubeconfig
        for folder in ("workspace", "file_commands", "workflow"):
            (home / folder).mkdir()
            os.chown(home / folder, RUNNER_UID, RUNNER_UID)
        (home / "workflow" / "event.json").write_text(json.dumps({"ref": "refs/heads/main"}))
        self.count = 0

    def run(self, **inputs: str) -> tuple[int, dict[str, str], str, str]:
        """(exit code, outputs, summary, stdout) of one step."""
        self.count += 1
        output, summary = f"output_{self.count}", f"summary_{self.count}"
        for name in (output, summary):
            path = self.home / "file_commands" / name
            path.touch()
            os.chown(path, RUNNER_UID, RUNNER_UID)
            path.chmod(0o644)  # as the runner leaves them: its own, not writable by other users
        env = {
            "GITHUB_OUTPUT": f"/github/file_commands/{output}",
            "GITHUB_STEP_SUMMARY": f"/github/file_commands/{summary}",
            "GITHUB_EVENT_PATH": "/github/workflow/event.json",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_REPOSITORY": "acme/shop",
            "GITHUB_RUN_ID": "42",
            "BLUEGREEN_KUBECONFIG": self.kubeconfig,
            **{"BLUEGREEN_" + key.upper(): value for key, value in inputs.items()},
        }
        # `-e NAME` without a value: the secret goes through the environment, never the command line.
        names = [arg for name in env for arg in ("-e", name)]
        mounts = [
            arg
            for folder in ("workspace", "file_commands", "workflow")
            for arg in ("-v", f"{self.home / folder}:/github/{folder}")
        ]
        done = subprocess.run(
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "host",
                "--workdir",
                "/github/workspace",
                *names,
                *mounts,
                self.image,
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        files = self.home / "file_commands"
        return (
            done.returncode,
            read_outputs(files / output),
            (files / summary).read_text(),
            done.stdout + done.stderr,
        )


@pytest.fixture
def step(image: str, tmp_path: Path, cluster: LocalCluster) -> Container:
    return Container(image, tmp_path, cluster.kubeconfig.read_text())


def test_the_image_runs_as_the_runners_user_not_root(image: str) -> None:
    done = run(["docker", "run", "--rm", "--entrypoint", "id", image, "-u"])
    assert done.stdout.strip() == str(RUNNER_UID)


def test_deploy_then_switch_from_the_container(step: Container, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", active="blue")
    code, out, summary, log = step.run(
        phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:3.0"
    )
    assert code == 0, log
    assert out["result"] == "deployed"
    assert "shop deploy: deployed to the idle colour" in summary

    code, out, summary, log = step.run(phase="switch", app="shop", namespace=namespace, reason="3.0")
    assert code == 0, log
    assert (out["result"], out["active-color"], out["previous-color"]) == ("switched", "green", "blue")
    assert float(out["api-ms"]) > 0 and float(out["converged-ms"]) > 0
    assert "**shop switch: switched** to **green**" in summary
    assert "### Switch timings" in summary and "```mermaid" in summary
    history = json.loads(out["report"])["phase"]["details"]["history"]
    assert history[0]["run_id"] == "42" and history[0]["reason"] == "3.0"
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "green"
    key = next(line.split('"')[3] for line in step.kubeconfig.splitlines() if "client-key-data" in line)
    assert log.count(key) == 1 and f"::add-mask::{key}" in log


def test_a_gate_reads_bluegreen_yaml_from_the_workspace(
    step: Container, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    (step.home / "workspace" / "bluegreen.yaml").write_text("checks: [{name: pods, kind: kubernetes}]\n")
    code, out, summary, log = step.run(
        phase="gate",
        app="shop",
        namespace=namespace,
        config="bluegreen.yaml",
        min_healthy="2s",
        interval="1s",
    )
    assert code == 0, log
    assert out["result"] == "passed"
    assert "| pods | kubernetes | successful |" in summary


def test_a_missing_app_fails_the_step_with_an_annotation_and_creates_nothing(
    step: Container, kube: Client, namespace: str
) -> None:
    code, out, summary, log = step.run(
        phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:3.0"
    )
    assert code == 2, log
    assert out["result"] == "error"
    ((props, message),) = commands(log, "error")
    assert props["title"].startswith("bluegreen deploy (shop)") and "What to do:" in message
    assert "> [!CAUTION]" in summary
    assert list(kube.list(Deployment, namespace=namespace)) == []
