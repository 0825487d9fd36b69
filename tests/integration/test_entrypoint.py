"""The Action's entrypoint, in-process, against the real local cluster: what a workflow run shows.

The same entrypoint runs inside the Docker image in tests/action/; here it runs in the test process,
so each phase's outputs, summary, annotations and masks are checked in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

import entrypoint
from hack.localcluster import LocalCluster
from tests.support.apps import CRASHLOOP_IMAGE, create_app, wait_available
from tests.support.github import commands, read_outputs


class Step:
    """One action step: the runner's files in a temp dir, the kubeconfig content as the secret input."""

    def __init__(self, tmp_path: Path, cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
        self.dir = tmp_path
        self.kubeconfig = cluster.kubeconfig.read_text()
        self.capsys = capsys
        self.count = 0
        self.env: dict[str, str] = {}  # the last step's environment, as the entrypoint left it
        self.runner_env: dict[str, str] = {}  # variables the runner sets besides the inputs

    def run(self, **inputs: str) -> tuple[int, dict[str, str], str, str]:
        """(exit code, outputs, summary, stdout) of one step with these inputs."""
        self.count += 1
        output, summary = self.dir / f"output-{self.count}", self.dir / f"summary-{self.count}"
        output.touch()
        summary.touch()
        env = {
            **self.runner_env,
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "BLUEGREEN_KUBECONFIG": self.kubeconfig,
            **{"BLUEGREEN_" + key.upper(): value for key, value in inputs.items()},
        }
        code = entrypoint.main(env)
        self.env = env
        stdout = self.capsys.readouterr().out
        assert "BLUEGREEN_KUBECONFIG" not in env, "the secret stays out of what check commands inherit"
        return code, read_outputs(output), summary.read_text(), stdout


@pytest.fixture
def step(tmp_path: Path, cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> Step:
    return Step(tmp_path, cluster, capsys)


def test_deploy_then_switch_as_two_steps(step: Step, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", active="blue")
    code, out, summary, stdout = step.run(
        phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:2.0"
    )
    assert code == 0, stdout
    assert out["result"] == "deployed" and out["active-color"] == "blue"
    assert "> **shop deploy: deployed to the idle colour**" in summary
    assert "| green images | `registry.local/shop:2.0` |" in summary
    assert stdout.count("::group::") == stdout.count("::endgroup::") >= 1

    code, out, summary, stdout = step.run(
        phase="switch", app="shop", namespace=namespace, reason="release 2.0"
    )
    assert code == 0, stdout
    assert (out["result"], out["active-color"], out["previous-color"]) == ("switched", "green", "blue")
    assert float(out["api-ms"]) > 0 and float(out["converged-ms"]) > 0
    report = json.loads(out["report"])
    assert report["exit_code"] == 0 and report["phase"]["images"]["green"] == ["registry.local/shop:2.0"]
    assert "### Switch timings" in summary and "```mermaid" in summary
    assert "| switch | blue | green |" in summary and "release 2.0" in summary
    (notice,) = commands(stdout, "notice")
    assert notice[0]["title"] == "bluegreen switch (shop): switched to green"
    service = kube.get(Service, "shop", namespace=namespace)
    assert service.spec is not None and service.spec.selector is not None
    assert service.spec.selector["bluegreen.io/color"] == "green"


def test_a_rollback_step_returns_traffic_with_its_reason(step: Step, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", active="green")
    code, out, summary, stdout = step.run(
        phase="rollback", app="shop", namespace=namespace, to="blue", reason="p95 doubled"
    )
    assert code == 0, stdout
    assert (out["result"], out["active-color"]) == ("rolled-back", "blue")
    assert "p95 doubled" in summary


def test_a_missing_app_fails_the_step_with_one_error_and_changes_nothing(
    step: Step, kube: Client, namespace: str
) -> None:
    code, out, summary, stdout = step.run(
        phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:2.0"
    )
    assert code == 2
    assert out["result"] == "error" and out["active-color"] == ""
    (error,) = commands(stdout, "error")
    assert error[0]["title"].startswith("bluegreen deploy (shop): ")
    assert "What to do:" in error[1]
    assert "> [!CAUTION]" in summary and "What to do:" in summary
    assert list(kube.list(Deployment, namespace=namespace)) == []


def test_bad_inputs_are_refused_before_the_cluster_is_touched(step: Step) -> None:
    step.kubeconfig = step.kubeconfig.replace("https://127.0.0.1", "https://127.0.0.2")  # nothing listens
    code, out, summary, stdout = step.run(phase="switch", app="shop", namespace="shop", to="purple")
    assert code == 2
    assert out["result"] == "error"
    (error,) = commands(stdout, "error")
    assert "to: unknown colour 'purple'" in error[1]
    assert "unreachable" not in stdout.lower()
    assert "to: unknown colour 'purple'" in summary


def test_the_kubeconfig_secrets_are_masked_before_anything_is_printed(
    step: Step, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    key = next(line.split('"')[3] for line in step.kubeconfig.splitlines() if "client-key-data" in line)
    code, _, summary, stdout = step.run(phase="status", app="shop", namespace=namespace)
    assert code == 0, stdout
    masks = [message for _, message in commands(stdout, "add-mask")]
    # The client key and certificate, not every line of the kubeconfig ("kind: Config" masked garbles logs).
    assert len(masks) == 2 and key in masks
    assert stdout.count(key) == 1  # printed only inside its own mask command
    assert key not in summary


def test_a_gate_on_a_crash_looping_colour_fails_the_step_and_names_the_check(
    step: Step, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", active="blue", idle_image=CRASHLOOP_IMAGE, wait=False)
    wait_available(kube, namespace, "shop-blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text("checks: [{name: pods, kind: kubernetes}]\n")
    code, out, summary, stdout = step.run(
        phase="gate", app="shop", namespace=namespace, config=str(config), min_healthy="3s", interval="1s"
    )
    assert code == 1, stdout
    assert out["result"] == "failed"
    titles = [props["title"] for props, _ in commands(stdout, "error")]
    assert "bluegreen gate (shop): gate check pods failed" in titles
    assert "| pods | kubernetes | failed |" in summary


def test_a_release_step_logs_each_stage_in_its_own_group(
    step: Step, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text("checks: [{name: pods, kind: kubernetes}]\n")
    code, out, summary, stdout = step.run(
        phase="release",
        app="shop",
        namespace=namespace,
        image="registry.local/shop:5.0",
        config=str(config),
        min_healthy="1s",
        interval="1s",
        duration="2s",
    )
    assert code == 0, stdout
    assert (out["result"], out["active-color"]) == ("switched", "green")
    groups = [line.removeprefix("::group::") for line in stdout.splitlines() if line.startswith("::group::")]
    prefix = f"bluegreen release (shop): {namespace}"
    assert groups[:4] == [f"{prefix}: {s}" for s in ("deploy", "gate", "switch", "watch")]
    assert stdout.count("::group::") == stdout.count("::endgroup::")  # groups never nest
    assert "### Gate: successful" in summary and "### Watch: healthy" in summary


def test_the_kubeconfig_is_written_to_a_private_directory_never_under_runner_temp(
    step: Step, kube: Client, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Docker action gets RUNNER_TEMP with the host's path, not mounted (actions/runner#1984); a
    step's env may point TMPDIR there too. Before issue 15 this step ended in a FileNotFoundError."""
    unmounted = str(tmp_path / "home" / "runner" / "work" / "_temp")
    for name in ("RUNNER_TEMP", "TMPDIR"):  # the process's environment, as in the container
        monkeypatch.setenv(name, unmounted)
    step.runner_env = {"RUNNER_TEMP": unmounted, "TMPDIR": unmounted}
    create_app(kube, namespace, "shop", active="blue")
    code, out, _, stdout = step.run(phase="status", app="shop", namespace=namespace)
    assert code == 0, stdout
    assert out["active-color"] == "blue"
    used = Path(step.env["KUBECONFIG"])
    assert used.parent.parent == Path(entrypoint.PRIVATE_ROOT) and not used.is_relative_to(unmounted)
    assert not used.parent.exists(), "the file and its directory are removed when the step ends"


def test_a_kubeconfig_that_cannot_be_written_is_one_clean_error(
    step: Step, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(entrypoint, "PRIVATE_ROOT", str(tmp_path / "no-such-dir"))
    code, out, summary, stdout = step.run(phase="switch", app="shop", namespace=namespace)
    assert code == 3 and out["result"] == "error"
    ((props, message),) = commands(stdout, "error")
    assert props["title"].startswith("bluegreen switch (shop)")
    assert "cannot write the kubeconfig input to a private file" in message and "What to do:" in message
    assert "> [!CAUTION]" in summary and "Traceback" not in stdout


@pytest.mark.parametrize(
    ("name", "loose", "live_state", "other"),
    [
        # 1 request in 4 fails: each round of 4 probes sees exactly 25% errors (default limit 0.5%);
        # latency left out of the verdict: 4 requests' p95 on a loaded machine is noise, not the input
        ("max-error-rate", "50%", {"error_rate": 0.25}, {"p95_tolerance": "10000%"}),
        ("p95-tolerance", "2000%", {"latency": 0.25}, {}),  # default 20%: 5x the previous colour's p95
    ],
)
def test_the_watch_judges_by_its_threshold_inputs(
    step: Step,
    kube: Client,
    namespace: str,
    tmp_path: Path,
    name: str,
    loose: str,
    live_state: dict[str, float],
    other: dict[str, str],
) -> None:
    """Issue 15: the watch's `p95-tolerance` and `max-error-rate` inputs were dropped. The same watch of
    a degraded live colour passes with the input set loose and spends the budget without it."""
    from tests.support import sampleapp

    create_app(kube, namespace, "shop", active="green")  # just switched: green live, blue the baseline
    with sampleapp.running("blue", "green") as apps:
        apps["green"].set(**live_state)
        config = tmp_path / "bluegreen.yaml"
        config.write_text(
            "checks:\n"
            "  - {name: probe, kind: probe, requests: 4, urls: "
            f'{{blue: "{apps["blue"].url}/api/orders", green: "{apps["green"].url}/api/orders"}}}}\n'
            "watch: {interval: 1s, failures: 2}\n"
        )
        watch = {"phase": "watch", "app": "shop", "namespace": namespace, "config": str(config)}
        watch |= {"duration": "4s", "auto_rollback": "false", **other}
        code, out, summary, stdout = step.run(**watch, **{name.replace("-", "_"): loose})
        assert (code, out["result"]) == (0, "passed"), stdout
        code, out, summary, stdout = step.run(**watch)
        assert (code, out["result"]) == (1, "failed"), stdout
        assert "error budget spent" in summary


def test_json_logs_and_the_summary_name_the_runs_correlation_id(
    step: Step, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    step.runner_env = {"GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "3"}
    code, out, summary, stdout = step.run(
        phase="deploy", app="shop", namespace=namespace, image="registry.local/shop:2.0", log_format="json"
    )
    assert code == 0, stdout
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert records, stdout  # the rollout's progress, as JSON lines
    assert {(r["correlation_id"], r["app"], r["namespace"], r["phase"]) for r in records} == {
        ("77-3", "shop", namespace, "deploy")
    }
    assert json.loads(out["report"])["correlation_id"] == "77-3"
    assert "Correlation ID: `77-3`" in summary


def test_an_unknown_log_format_is_refused(step: Step) -> None:
    code, out, summary, _ = step.run(phase="status", app="shop", namespace="shop", log_format="yaml")
    assert code == 2 and out["result"] == "error"
    assert "use one of text, json" in summary


def test_patch_as_a_step_patches_the_rollback_target_and_says_traffic_stayed(
    step: Step, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", active="blue")
    code, out, _, stdout = step.run(phase="switch", app="shop", namespace=namespace, to="green")
    assert code == 0, stdout

    code, out, summary, stdout = step.run(
        phase="patch", app="shop", namespace=namespace, image="registry.local/shop:1.0-p1", reason="CVE-1"
    )

    assert code == 0, stdout
    assert (out["result"], out["active-color"]) == ("patched", "green")
    assert "> **shop patch: rollback target patched, traffic not moved**" in summary
    assert "### Patch of blue (the rollback target)" in summary
    assert "| app | `registry.local/shop:1.0` | `registry.local/shop:1.0-p1` |" in summary
    assert "| patch | blue | blue |" in summary and "CVE-1" in summary  # the patch history
    report = json.loads(out["report"])
    assert report["phase"]["details"]["patch"]["color"] == "blue"
    svc = kube.get(Service, "shop", namespace=namespace)
    assert svc.spec is not None and svc.spec.selector is not None
    assert svc.spec.selector["bluegreen.io/color"] == "green"

    code, out, summary, stdout = step.run(
        phase="patch", app="shop", namespace=namespace, image="registry.local/shop:1.0-p1"
    )
    assert code == 0, stdout
    assert out["result"] == "noop"
    assert "Nothing to patch: it already runs these images." in summary
