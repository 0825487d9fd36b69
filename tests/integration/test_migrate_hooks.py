"""Migration hooks run for real: a command that hangs is stopped at its timeout with its children, a
passed secret never reaches the output, a Job hook on the local cluster succeeds or fails with its
pod's reason, and a failed post-switch hook rolls the switch back when told to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod, Service
from lightkube.types import PatchType

from bluegreen import hooks
from bluegreen.cli import execute
from bluegreen.config import HookConfig
from bluegreen.history import MIGRATIONS
from bluegreen.model import AppSpec, NullReporter
from hack.localcluster import LocalCluster
from tests.support.apps import create_app

APP = AppSpec(name="shop", namespace="default")


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_hanging_hook_and_its_children_are_stopped_at_its_timeout() -> None:
    # The hook starts a child of its own, prints its pid, and ignores SIGTERM: only SIGKILL to the
    # whole process group ends both.
    script = (
        "import signal, subprocess, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    hook = HookConfig(name="expand", command=(sys.executable, "-c", script), timeout=1.0)
    start = time.monotonic()
    ran = hooks.run(
        hook, app=APP, color="green", release="v2", kube=None, reporter=NullReporter(), environ=os.environ
    )
    took = time.monotonic() - start
    assert ran.outcome == "timed-out" and not ran.ok
    assert "still running after its timeout of 1s: stopped" in ran.reason
    assert took < 1.0 + hooks.KILL_GRACE + 5, f"took {took:.1f}s"
    child = int(ran.output.split("child ")[1].split()[0])
    assert not alive(child), "the hook's child outlived it"


def test_a_child_a_hook_leaves_behind_ends_with_it() -> None:
    script = "import subprocess; print('child', subprocess.Popen(['sleep', '300']).pid, flush=True)"
    hook = HookConfig(name="post-switch", command=(sys.executable, "-c", script), timeout=60.0)
    start = time.monotonic()
    ran = hooks.run(
        hook, app=APP, color="green", release="v2", kube=None, reporter=NullReporter(), environ=os.environ
    )
    assert ran.outcome == "succeeded" and time.monotonic() - start < 30
    child = int(ran.output.split("child ")[1].split()[0])
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "a process the hook started outlived it"


def test_a_secret_passed_to_a_hook_is_masked_in_its_output() -> None:
    hook = HookConfig(
        name="expand",
        command=(
            sys.executable,
            "-c",
            "import os; print('password is', os.environ['PGPASSWORD']); raise SystemExit(2)",
        ),
        pass_env=("PGPASSWORD",),
    )
    ran = hooks.run(
        hook,
        app=APP,
        color="green",
        release="v2",
        kube=None,
        reporter=NullReporter(),
        environ={"PATH": os.environ["PATH"], "PGPASSWORD": "s3cret-value", "KUBECONFIG": "/k"},
    )
    assert ran.outcome == "failed" and ran.exit_code == 2
    assert ran.output == "password is ***"
    assert "s3cret" not in ran.reason


def test_a_hook_that_cannot_start_is_an_error() -> None:
    hook = HookConfig(name="expand", command=("/nonexistent/migrate",))
    ran = hooks.run(
        hook, app=APP, color="green", release="v2", kube=None, reporter=NullReporter(), environ={}
    )
    assert ran.outcome == "error" and "cannot run /nonexistent/migrate" in ran.reason


JOB_HOOK = """
app: shop
migrations:
  expand:
    timeout: {timeout}
    job:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            {node_selector}
            containers: [{{name: migrate, image: "registry.local/migrate:{{{{release}}}}", args: [expand]}}]
"""


@pytest.mark.cluster
def test_a_job_hook_runs_on_the_cluster_and_is_recorded(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(JOB_HOOK.format(timeout="60s", node_selector=""))
    outcome = execute(
        [
            *("migrate", "expand", "--config", str(config), "--release", "v2"),
            *("--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)),
        ]
    )
    assert outcome.exit_code == 0, outcome.error
    assert outcome.result is not None and outcome.result.result == "migrated"
    (job,) = kube.list(Job, namespace=namespace, labels={hooks.HOOK_LABEL: "expand"})
    assert job.spec is not None and job.spec.template.spec is not None
    assert job.spec.template.spec.containers[0].image == "registry.local/migrate:v2"
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.metadata is not None and service.metadata.annotations is not None
    (run,) = json.loads(service.metadata.annotations[MIGRATIONS])
    assert run["hook"] == "expand" and run["outcome"] == "succeeded" and run["release"] == "v2"
    assert run["kind"] == "job" and run["target"].startswith(f"job {namespace}/shop-expand-")


@pytest.mark.cluster
def test_a_failed_job_hook_names_its_pods_reason(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop")
    config = tmp_path / "bluegreen.yaml"
    # No node accepts the pod: the Job's deadline (the hook's timeout) fails it.
    config.write_text(
        JOB_HOOK.format(timeout="3s", node_selector="nodeSelector: {bluegreen.test/none: 'true'}")
    )
    outcome = execute(
        [
            *("migrate", "expand", "--config", str(config)),
            *("--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)),
        ]
    )
    assert outcome.exit_code == 1 and outcome.result is not None
    text = "\n".join(outcome.result.messages)
    assert "expand hook timed-out" in text
    assert "DeadlineExceeded" in text
    assert "Unschedulable" in text and "node affinity/selector" in text


@pytest.mark.cluster
def test_a_failed_post_switch_hook_rolls_the_switch_back_when_told_to(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        json.dumps(
            {
                "app": "shop",
                "checks": [{"name": "pods", "kind": "kubernetes"}],
                "gate": {"min-healthy": "0s", "interval": "0.2s"},
                "migrations": {
                    "post-switch": {
                        "command": [sys.executable, "-c", "raise SystemExit(4)"],
                        "on-failure": "rollback",
                    }
                },
            }
        )
    )
    where = ["--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    assert execute(["deploy", "--image", "registry.local/shop:2.0", *where]).exit_code == 0
    assert execute(["gate", "--config", str(config), *where]).exit_code == 0
    outcome = execute(["switch", "--config", str(config), *where])
    assert outcome.exit_code == 1 and outcome.result is not None
    assert outcome.result.result == "rolled-back"
    assert outcome.result.active_color == "blue"
    assert "post-switch hook failed" in outcome.result.messages[0]
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "blue"


def test_a_missing_hook_is_refused_before_the_cluster_is_asked(tmp_path: Path) -> None:
    config = tmp_path / "bluegreen.yaml"
    config.write_text("checks: [{name: pods, kind: kubernetes}]\n")
    outcome = execute(
        [
            "migrate",
            "contract",
            "--config",
            str(config),
            "--app",
            "shop",
            "--kubeconfig",
            str(tmp_path / "none"),
        ]
    )
    assert outcome.exit_code == 2 and outcome.error is not None
    assert "has no migrations.contract hook" in outcome.error.message


@pytest.mark.cluster
def test_the_actions_contract_phase_is_refused_and_says_why_in_its_summary(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    import entrypoint
    from tests.support.github import read_outputs

    create_app(kube, namespace, "shop")  # both colours run: contract must wait for retire
    config = tmp_path / "bluegreen.yaml"
    marker = tmp_path / "contracted"
    config.write_text(
        json.dumps(
            {"migrations": {"contract": {"command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]}}}
        )
    )
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    output.touch()
    env = {
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_SHA": "abc123",
        "BLUEGREEN_KUBECONFIG": cluster.kubeconfig.read_text(),
        "BLUEGREEN_PHASE": "contract",
        "BLUEGREEN_APP": "shop",
        "BLUEGREEN_NAMESPACE": namespace,
        "BLUEGREEN_CONFIG": str(config),
    }
    assert entrypoint.main(dict(env)) == 1
    assert read_outputs(output)["result"] == "refused"
    text = summary.read_text()
    assert "contract refused: the other colour still runs: shop-green has 2 replicas" in text
    assert not marker.exists(), "the refused contract ran its hook"
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.metadata is not None and service.metadata.annotations is not None
    (run,) = json.loads(service.metadata.annotations[MIGRATIONS])
    assert (run["hook"], run["outcome"], run["release"]) == ("contract", "refused", "abc123")

    kube.patch(
        Deployment, "shop-green", {"spec": {"replicas": 0}}, namespace=namespace, patch_type=PatchType.MERGE
    )
    wait_until_gone(kube, namespace, "green")
    output.write_text("")
    assert entrypoint.main(dict(env)) == 0
    assert read_outputs(output)["result"] == "migrated"
    assert marker.exists()
    assert "### Migration" in summary.read_text() and "| contract | succeeded |" in summary.read_text()


def wait_until_gone(kube: Client, namespace: str, color: str) -> None:
    deadline = time.monotonic() + 60
    while list(kube.list(Pod, namespace=namespace, labels={"bluegreen.io/color": color})):
        assert time.monotonic() < deadline, f"the {color} pods did not go"
        time.sleep(0.2)


@pytest.mark.cluster
def test_a_release_whose_expand_fails_deploys_nothing(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        json.dumps(
            {
                "migrations": {
                    "expand": {"command": [sys.executable, "-c", "print('no such column'); exit(1)"]}
                }
            }
        )
    )
    before = kube.get(Deployment, "shop-green", namespace=namespace)
    outcome = execute(
        [
            *("release", "--image", "registry.local/shop:2.0", "--config", str(config)),
            *("--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)),
        ]
    )
    assert outcome.exit_code == 1 and outcome.result is not None
    assert outcome.result.result == "failed"
    assert outcome.result.details["phases"] == [{"phase": "expand", "result": "failed"}]
    assert "nothing was deployed" in "\n".join(outcome.result.messages)
    after = kube.get(Deployment, "shop-green", namespace=namespace)
    assert before.metadata is not None and after.metadata is not None
    assert after.metadata.resourceVersion == before.metadata.resourceVersion


@pytest.mark.cluster
def test_sigterm_during_a_hook_stops_the_hook_and_the_run(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop")
    pidfile = tmp_path / "hook.pid"
    script = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    config = tmp_path / "bluegreen.yaml"
    config.write_text(json.dumps({"migrations": {"expand": {"command": [sys.executable, "-c", script]}}}))
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "bluegreen.cli", "migrate", "expand", "--config", str(config)),
            *("--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the hook never started"
            time.sleep(0.1)
        hook_pid = int(pidfile.read_text())
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err[-2000:]
    assert time.monotonic() - sent < hooks.KILL_GRACE + 5
    assert not alive(hook_pid), "the hook outlived the cancelled run"


@pytest.mark.cluster
def test_a_dry_run_neither_runs_the_hook_nor_records_anything(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop")
    marker = tmp_path / "contracted"
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        json.dumps(
            {"migrations": {"contract": {"command": [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]}}}
        )
    )
    where = [
        "--config",
        str(config),
        "--app",
        "shop",
        "-n",
        namespace,
        "--kubeconfig",
        str(cluster.kubeconfig),
    ]
    refused = execute(["migrate", "contract", "--dry-run", *where])
    assert (
        refused.exit_code == 1 and refused.error is not None and "contract refused" in refused.error.message
    )
    kube.patch(
        Deployment, "shop-green", {"spec": {"replicas": 0}}, namespace=namespace, patch_type=PatchType.MERGE
    )
    wait_until_gone(kube, namespace, "green")
    planned = execute(["migrate", "contract", "--dry-run", *where])
    assert planned.exit_code == 0 and planned.result is not None and planned.result.result == "planned"
    assert not marker.exists()
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.metadata is not None
    assert MIGRATIONS not in (service.metadata.annotations or {})


@pytest.mark.cluster
def test_job_hooks_and_the_ordering_run_under_the_shipped_role(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    from tests.integration.test_rbac import install_rbac
    from tests.support.apps import service_account_kubeconfig

    create_app(kube, namespace, "shop")
    install_rbac(kube, namespace)
    account = service_account_kubeconfig(kube, cluster.kubeconfig, namespace, "bluegreen", tmp_path / "sa")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(JOB_HOOK.format(timeout="60s", node_selector="").replace("expand:", "contract:"))
    where = ["--config", str(config), "--app", "shop", "-n", namespace, "--kubeconfig", str(account)]
    refused = execute(["migrate", "contract", *where])
    assert refused.exit_code == 1 and refused.error is not None, refused.error
    assert "contract refused" in refused.error.message
    assert execute(["retire", *where[2:]]).exit_code == 0
    done = execute(["migrate", "contract", *where])
    assert done.exit_code == 0, done.error
