"""The Action's image, each step started exactly as GitHub's runner starts a Docker action.

Every step below goes through tests/action/runner.py: the runner's `docker run` (its variables with
host values, RUNNER_TEMP naming a host directory that is not mounted, the file-command files made by
the runner's user, the four mounts and the Docker socket), given the `kubeconfig` input as users give
it, from a secret. Before issue 15 the image crashed there on every step (a traceback, no outputs, no
summary): it wrote the kubeconfig under $RUNNER_TEMP, which does not exist in the container.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from hack.localcluster import LocalCluster
from tests.action.conftest import run
from tests.action.runner import RUNNER_UID, Runner, StepResult
from tests.support import pushgateway
from tests.support.apps import create_app
from tests.support.github import commands
from tests.support.prism import Recorder


class Steps:
    """The steps of one job on one runner, each given the cluster's kubeconfig as the secret input."""

    def __init__(self, runner: Runner, kubeconfig: str) -> None:
        self.runner, self.kubeconfig = runner, kubeconfig

    def run(self, **with_: str) -> StepResult:
        before = self.runner.files()
        done = self.runner.step(
            {"kubeconfig": self.kubeconfig, **{k.replace("_", "-"): v for k, v in with_.items()}}
        )
        # Nothing of the step stays on the host: no kubeconfig in the runner's temp dir or the checkout.
        assert self.runner.files() - before == set(), done.log[-3000:]
        return done


@pytest.fixture(params=[False], ids=["runner-temp-unmounted"])
def steps(request: pytest.FixtureRequest, image: str, tmp_path: Path, cluster: LocalCluster) -> Steps:
    runner = Runner(tmp_path / "runner", image, mount_runner_temp=request.param)
    return Steps(runner, cluster.kubeconfig.read_text())


def key_of(kubeconfig: str) -> str:
    return next(line.split('"')[3] for line in kubeconfig.splitlines() if "client-key-data" in line)


def test_the_image_runs_as_the_runners_user_not_root(image: str) -> None:
    done = run(["docker", "run", "--rm", "--entrypoint", "id", image, "-u"])
    assert done.stdout.strip() == str(RUNNER_UID)


def test_a_step_is_started_as_the_runner_starts_it(steps: Steps, namespace: str) -> None:
    """The fixture itself: what the container is given, so a change to it is a visible decision."""
    done = steps.run(phase="status", app="shop", namespace=namespace)
    runner, env = steps.runner, done.env
    assert env["RUNNER_TEMP"] == str(runner.temp) and not runner.temp.is_relative_to("/github")
    assert f"{runner.temp}:/github/runner_temp" not in done.argv
    assert env["GITHUB_WORKSPACE"] == "/github/workspace" and env["HOME"] == "/github/home"
    assert env["GITHUB_EVENT_PATH"] == "/github/workflow/event.json"
    assert env["RUNNER_TOOL_CACHE"] == str(runner.tool_cache)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE"):
        assert env[name].startswith("/github/file_commands/"), name
    assert env["INPUT_DRY-RUN"] == "false" and env["BLUEGREEN_DRY_RUN"] == "false"
    assert env["INPUT_KUBECONFIG"] == steps.kubeconfig == env["BLUEGREEN_KUBECONFIG"]
    assert not any(key_of(steps.kubeconfig) in arg for arg in done.argv), "secrets go by name only"
    assert done.argv[done.argv.index("--workdir") + 1] == "/github/workspace" and "--rm" in done.argv
    # The step ran: status of an app that does not exist is a clean usage error, with outputs.
    assert done.exit_code == 2 and done.outputs["result"] == "error", done.log


def test_deploy_then_switch_from_the_container(steps: Steps, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", active="blue")
    done = steps.run(phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:3.0")
    assert done.exit_code == 0, done.log
    assert done.outputs["result"] == "deployed"
    assert "shop deploy: deployed to the idle colour" in done.summary

    done = steps.run(phase="switch", app="shop", namespace=namespace, reason="3.0")
    assert done.exit_code == 0, done.log
    out = done.outputs
    assert (out["result"], out["active-color"], out["previous-color"]) == ("switched", "green", "blue")
    assert float(out["api-ms"]) > 0 and float(out["converged-ms"]) > 0
    assert "**shop switch: switched** to **green**" in done.summary
    assert "### Switch timings" in done.summary and "```mermaid" in done.summary
    history = json.loads(out["report"])["phase"]["details"]["history"]
    assert history[0]["run_id"] == "42" and history[0]["reason"] == "3.0"
    assert history[0]["run_url"] == "https://github.com/acme/shop/actions/runs/42"
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "green"
    key = key_of(steps.kubeconfig)
    assert done.log.count(key) == 1 and f"::add-mask::{key}" in done.log


def test_the_log_format_and_pushgateway_inputs_reach_the_engine(
    steps: Steps, kube: Client, namespace: str, tmp_path: Path
) -> None:
    """Issue 13 in a workflow: `log-format: json` makes the step's progress JSON lines carrying the
    run's correlation ID, and `pushgateway` sends the release metrics to a real Pushgateway (Debian's,
    on the host's loopback, which the step reaches over its host network)."""
    create_app(kube, namespace, "shop", active="blue")
    with pushgateway.running(tmp_path) as port:
        done = steps.run(
            phase="switch",
            app="shop",
            namespace=namespace,
            to="green",
            log_format="json",
            pushgateway=f"http://127.0.0.1:{port}",
        )
        pushed = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert done.exit_code == 0, done.log
    assert done.env["INPUT_LOG-FORMAT"] == "json" == done.env["BLUEGREEN_LOG_FORMAT"]
    correlation_id = json.loads(done.outputs["report"])["correlation_id"]
    lines = [json.loads(line) for line in done.log.splitlines() if line.startswith("{")]
    assert lines, f"no JSON log line in the step's log:\n{done.log[-3000:]}"
    for line in lines:
        assert (line["app"], line["namespace"]) == ("shop", namespace), line
        assert line["correlation_id"] == correlation_id, line
    last = lines[-1]
    assert (last["result"], last["exit_code"], last["colour"]) == ("switched", 0, "green"), last

    ours = [line for line in pushed.splitlines() if f'namespace="{namespace}"' in line]
    switched = [line for line in ours if line.startswith("bluegreen_releases_total{")]
    assert switched and 'result="switched"' in switched[0] and switched[0].endswith(" 1"), ours
    live = [line for line in ours if line.startswith("bluegreen_live_color{") and 'color="green"' in line]
    assert live and live[0].endswith(" 1"), ours


def test_a_gate_reads_bluegreen_yaml_from_the_workspace(steps: Steps, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", active="blue")
    (steps.runner.workspace / "bluegreen.yaml").write_text("checks: [{name: pods, kind: kubernetes}]\n")
    done = steps.run(
        phase="gate",
        app="shop",
        namespace=namespace,
        config="bluegreen.yaml",
        min_healthy="2s",
        interval="1s",
    )
    assert done.exit_code == 0, done.log
    assert done.outputs["result"] == "passed"
    assert "| pods | kubernetes | successful |" in done.summary


def test_a_missing_app_fails_the_step_with_an_annotation_and_creates_nothing(
    steps: Steps, kube: Client, namespace: str
) -> None:
    done = steps.run(phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:3.0")
    assert done.exit_code == 2, done.log
    assert done.outputs["result"] == "error"
    ((props, message),) = commands(done.log, "error")
    assert props["title"].startswith("bluegreen deploy (shop)") and "What to do:" in message
    assert "> [!CAUTION]" in done.summary
    assert list(kube.list(Deployment, namespace=namespace)) == []


def test_a_release_step_by_step_with_a_kubeconfig_input(steps: Steps, kube: Client, namespace: str) -> None:
    """Issue 15's "done when": deploy, gate, switch, watch and rollback, each its own step."""
    create_app(kube, namespace, "shop", active="blue")
    (steps.runner.workspace / "bluegreen.yaml").write_text("checks: [{name: pods, kind: kubernetes}]\n")
    app = {"app": "shop", "namespace": namespace}
    checks = {"config": "bluegreen.yaml", "interval": "1s", "p95_tolerance": "25%", "max_error_rate": "1%"}

    done = steps.run(phase="deploy", image="registry.local/shop:4.0", **app)
    assert (done.exit_code, done.outputs["result"]) == (0, "deployed"), done.log
    done = steps.run(phase="gate", min_healthy="1s", **checks, **app)
    assert (done.exit_code, done.outputs["result"]) == (0, "passed"), done.log
    done = steps.run(phase="switch", reason="release 4.0", **app)
    assert (done.exit_code, done.outputs["result"], done.outputs["active-color"]) == (0, "switched", "green")
    done = steps.run(phase="watch", duration="2s", **checks, **app)
    assert (done.exit_code, done.outputs["result"], done.outputs["active-color"]) == (0, "passed", "green")
    assert "### Watch: healthy" in done.summary, done.log
    done = steps.run(phase="rollback", reason="customers say no", **app)
    assert (done.exit_code, done.outputs["result"]) == (0, "rolled-back"), done.log
    assert (done.outputs["active-color"], done.outputs["previous-color"]) == ("blue", "green")
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "blue"
    history = json.loads(done.outputs["report"])["phase"]["details"]["history"]
    assert history[0]["reason"] == "customers say no"


def test_a_release_from_the_manifests_in_the_checkout(steps: Steps, kube: Client, namespace: str) -> None:
    """Issue 11 in a workflow: `manifests` names files of the checkout by glob, relative to the
    workspace as a step's working directory is; the idle colour gets their env and a per-colour copy of
    their ConfigMap, the live colour keeps its own, and no Secret value reaches the step's log."""
    from tests.integration.test_manifests import SECRETS, V2

    create_app(kube, namespace, "shop", active="blue")
    rendered = steps.runner.workspace / "deploy" / "rendered"
    rendered.mkdir(parents=True)
    (rendered / "shop.yaml").write_text(V2.read_text())
    done = steps.run(phase="deploy", app="shop", namespace=namespace, manifests="deploy/**/*.yaml")
    assert (done.exit_code, done.outputs["result"]) == (0, "deployed"), done.log[-3000:]
    assert not [secret for secret in SECRETS if secret in done.log + done.summary], done.log
    assert "LOG_LEVEL" in done.summary, done.summary  # what the release changed beyond images

    def template(color: str) -> dict[str, Any]:
        spec: dict[str, Any] = kube.get(Deployment, f"shop-{color}", namespace=namespace).to_dict()["spec"]
        return dict(spec["template"]["spec"]["containers"][0])

    green, blue = template("green"), template("blue")
    env = {e["name"]: e for e in green.get("env") or []}
    assert env["LOG_LEVEL"]["value"] == "debug"
    copy = env["GREETING"]["valueFrom"]["configMapKeyRef"]["name"]
    assert copy.startswith("shop-config-") and copy not in json.dumps(blue)


@pytest.mark.parametrize("steps", [True], ids=["runner-temp-mounted"], indirect=True)
def test_a_newer_runner_mounting_runner_temp_gets_no_secret_there(
    steps: Steps, kube: Client, namespace: str
) -> None:
    """Runners from v2.331.0 mount RUNNER_TEMP at /github/runner_temp: the kubeconfig still stays in the
    container (Steps.run checks that nothing is left on the host)."""
    create_app(kube, namespace, "shop", active="blue")
    done = steps.run(phase="switch", app="shop", namespace=namespace, to="green")  # no deploy: explicit
    assert done.env["RUNNER_TEMP"] == "/github/runner_temp"
    assert (done.exit_code, done.outputs["result"]) == (0, "switched"), done.log


def test_the_job_token_default_reaches_the_api_the_runner_names(
    image: str, tmp_path: Path, cluster: LocalCluster, kube: Client, namespace: str, github_api: Recorder
) -> None:
    """`github-token` defaults to `${{ github.token }}`, evaluated by the runner; the API is the one in
    GITHUB_API_URL (here GitHub's own description served by Prism, on loopback)."""
    token = "ghs_job_token_for_this_run"
    runner = Runner(tmp_path / "runner", image, github={"token": token, "api_url": github_api.url})
    create_app(kube, namespace, "shop", active="blue")
    done = Steps(runner, cluster.kubeconfig.read_text()).run(
        phase="switch", app="shop", namespace=namespace, environment="production", to="green"
    )
    assert (done.exit_code, done.outputs["result"]) == (0, "switched"), done.log
    assert done.env["INPUT_GITHUB-TOKEN"] == token and not any(token in arg for arg in done.argv)
    assert done.log.count(token) == 1 and f"::add-mask::{token}" in done.log
    assert all(e.status < 400 and not e.violations for e in github_api.exchanges), github_api.exchanges
    (check,) = github_api.writes("POST", "/repos/acme/shop/check-runs")
    assert (check.body["name"], check.body["conclusion"]) == ("bluegreen switch (shop)", "success")
    (status,) = github_api.writes("POST", "/statuses")
    assert status.body["state"] == "success"


def test_a_cancelled_step_stops_at_a_safe_point_as_pid_1(steps: Steps, kube: Client, namespace: str) -> None:
    """A cancelled job: the runner's `docker run` has no --init, so the engine is PID 1 in the container,
    where the kernel drops a signal without a handler. SIGTERM reaches it (`docker kill`, which is what
    `docker run`'s signal proxy does too), and the step ends 143 with its outputs and summary, the Lease
    given back."""
    import subprocess
    import threading
    import time

    from lightkube.resources.coordination_v1 import Lease

    from tests.support.apps import UNREADY_IMAGE

    create_app(kube, namespace, "shop", replicas=1)
    done: list[StepResult] = []
    step = threading.Thread(
        target=lambda: done.append(
            steps.run(phase="deploy", app="shop", namespace=namespace, image=UNREADY_IMAGE)
        )
    )
    step.start()

    def holder() -> str:
        try:
            spec = kube.get(Lease, "bluegreen-shop", namespace=namespace).spec
        except Exception:
            return ""
        return (spec.holderIdentity if spec else None) or ""

    deadline = time.monotonic() + 120
    while " pid 1 " not in holder():  # the engine, PID 1 of its container, holds the lock
        assert time.monotonic() < deadline and step.is_alive(), done and done[0].log[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)  # waiting for the rollout that never completes
    containers = run(["docker", "ps", "-q", "--filter", f"label={steps.runner.label}"]).stdout.split()
    assert len(containers) == 1, containers
    sent = time.monotonic()
    subprocess.run(["docker", "kill", "--signal", "SIGTERM", containers[0]], check=True, capture_output=True)
    step.join(timeout=30)
    took = time.monotonic() - sent
    if step.is_alive():  # the signal was dropped: end the step the hard way, as the runner would
        subprocess.run(["docker", "kill", containers[0]], check=False, capture_output=True)
        step.join()
    (result,) = done
    assert result.exit_code == 143, result.log[-3000:]
    assert took < 10, took  # a runner kills a few seconds after its SIGTERM
    assert result.outputs["result"] == "cancelled"
    assert "stopped: Cancelled" in result.summary
    assert holder() == ""
