"""Cancellation and rollback priority with real processes of the CLI on the real cluster.

A runner cancels a job with SIGTERM (SIGINT at a terminal) and kills it a few seconds later. Each
test starts `bluegreen` as its own process, waits until it is at the moment named (waiting for a
rollout, for the lock, watching, verifying a switch), signals it, and checks what a user would: the
exit code (143 / 130, not a failure's), that it ended promptly, what it said was left, the Lease free,
and that the next run works at once. Then a rollback started during a watch: the rollback completes
at once and the watch ends `preempted`, with no second rollback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import history
from hack.localcluster import LocalCluster
from tests.support.apps import UNREADY_IMAGE, create_app
from tests.support.github import commands, read_outputs

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
SAFE_POINT_S = 5.0  # what a runner leaves between its SIGTERM and its kill


class Cli:
    """`bluegreen ARGS --app shop -n NS --kubeconfig K` as a real process of its own."""

    def __init__(self, cluster: LocalCluster, namespace: str, workdir: Path) -> None:
        self.cluster, self.namespace, self.workdir = cluster, namespace, workdir
        self.started: list[subprocess.Popen[str]] = []

    def argv(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bluegreen.cli",
            *args,
            "--app",
            "shop",
            "-n",
            self.namespace,
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "-o",
            "json",
        ]

    def start(self, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*prefix, *self.argv(*args)],
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.started.append(process)
        return process

    def run(self, *args: str, timeout: float = 120) -> tuple[int, dict[str, Any], str]:
        process = self.start(*args)
        out, err = process.communicate(timeout=timeout)
        return process.returncode, json.loads(out or "{}"), err

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture
def cli(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(cluster, namespace, tmp_path)
    yield runner
    runner.stop_all()


def wait_until(what: str, condition: Callable[[], bool], *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(0.05)


def holder(kube: Client, namespace: str) -> str:
    try:
        lease = kube.get(Lease, "bluegreen-shop", namespace=namespace)
    except Exception:
        return ""
    return (lease.spec.holderIdentity if lease.spec else None) or ""


def held_by(kube: Client, namespace: str, process: subprocess.Popen[str]) -> Callable[[], bool]:
    return lambda: f"pid {process.pid} " in holder(kube, namespace)


def selector(kube: Client, namespace: str) -> str:
    svc = kube.get(Service, "shop", namespace=namespace)
    assert svc.spec is not None and svc.spec.selector is not None
    return str(svc.spec.selector.get("bluegreen.io/color", ""))


def service_annotations(kube: Client, namespace: str) -> dict[str, str]:
    svc = kube.get(Service, "shop", namespace=namespace)
    return dict((svc.metadata.annotations if svc.metadata else None) or {})


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[int, dict[str, Any], float]:
    """Signal `process`; its exit code, JSON report and the seconds it took to end."""
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=SAFE_POINT_S + 5)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running {SAFE_POINT_S + 5}s after the signal: {err[-2000:]}") from None
    took = time.monotonic() - sent
    assert out, err
    return process.returncode, json.loads(out), took


WATCH_CONFIG = """
checks:
  - name: pods
    kind: kubernetes
watch: {duration: 10m, interval: 1s, failures: 3}
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_deploy_cancelled_while_waiting_for_its_rollout(
    cli: Cli, kube: Client, namespace: str, signum: int
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    process = cli.start("deploy", "--image", UNREADY_IMAGE)  # its pods never become Ready
    wait_until("deploy waiting for the rollout", lambda: rolling_out(kube, namespace, process))
    code, report, took = stop(process, signum)

    assert code == (143 if signum == signal.SIGTERM else 130)
    assert took < SAFE_POINT_S
    error = report["error"]
    assert error["title"] in ("Cancelled", "Interrupted")
    assert f"deploy cancelled by {signal.Signals(signum).name}" in error["message"]
    assert f"updating Deployment {namespace}/shop-green" in error["message"]  # the state it left
    assert holder(kube, namespace) == ""  # released on the way out
    assert selector(kube, namespace) == "blue"  # traffic never touched

    again, report, err = cli.run("deploy", "--image", "registry.local/shop:2.0")  # at once: no lock left
    assert again == 0, err


def rolling_out(kube: Client, namespace: str, process: subprocess.Popen[str]) -> bool:
    """The deploy process holds the Lease and green's template has the new image: it is waiting."""
    from lightkube.resources.apps_v1 import Deployment

    if not held_by(kube, namespace, process)():
        return False
    dep = kube.get(Deployment, "shop-green", namespace=namespace)
    assert dep.spec is not None and dep.spec.template.spec is not None
    return UNREADY_IMAGE in [c.image for c in dep.spec.template.spec.containers]


def test_a_run_cancelled_while_waiting_for_the_lock_leaves_the_holders_lease_alone(
    cli: Cli, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    now = datetime.now(UTC)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-shop"),
            spec=LeaseSpec(holderIdentity="run 77 by bob", renewTime=now, leaseDurationSeconds=60),
        ),
        namespace=namespace,
    )
    process = cli.start("switch", "--to", "green", "--wait-for-lock", "10m")
    time.sleep(2)  # it is waiting: nothing else it could be doing
    assert process.poll() is None
    code, report, took = stop(process)

    assert code == 143 and took < SAFE_POINT_S
    assert "Nothing had been written" in report["error"]["message"]
    assert holder(kube, namespace) == "run 77 by bob"  # not ours: untouched
    assert selector(kube, namespace) == "blue"
    kube.patch(
        Lease,
        "bluegreen-shop",
        {"spec": {"holderIdentity": None}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    again, report, err = cli.run("switch", "--to", "green")
    assert again == 0, err and report["result"]["result"] == "switched"


def test_a_watch_cancelled_between_rounds_frees_the_lock_for_the_next_run(
    cli: Cli, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    (tmp_path / "bluegreen.yaml").write_text(WATCH_CONFIG)
    process = cli.start("watch")
    wait_until("watching", held_by(kube, namespace, process))
    time.sleep(1.5)
    code, report, took = stop(process)

    assert code == 143 and took < SAFE_POINT_S
    assert "watch cancelled by SIGTERM" in report["error"]["message"]
    assert holder(kube, namespace) == ""
    assert selector(kube, namespace) == "blue"  # a cancelled watch never rolls back
    # The Lease is free for the next run (--force: green never passed the gate this bluegreen.yaml has).
    again, report, err = cli.run("switch", "--to", "green", "--force")
    assert again == 0, (err, report)


def test_a_switch_cancelled_while_verifying_is_recorded_as_written(
    cli: Cli, kube: Client, namespace: str
) -> None:
    # Green's pods never become Ready, so a forced switch verifies until its timeout: time to cancel it.
    create_app(kube, namespace, "shop", replicas=1, idle_image=UNREADY_IMAGE, wait=False)
    process = cli.start("switch", "--to", "green", "--force", "--allow-no-endpoints")
    wait_until("switched and verifying", lambda: selector(kube, namespace) == "green")
    time.sleep(0.5)
    code, report, took = stop(process)

    assert code == 143 and took < SAFE_POINT_S
    message = report["error"]["message"]
    assert "switch cancelled by SIGTERM" in message and "patching Service" in message
    # The write that was sent is recorded: the history agrees with traffic.
    recorded = service_annotations(kube, namespace)
    assert recorded[history.ACTIVE] == "green" and recorded[history.PREVIOUS] == "blue"
    assert history.parse(recorded)[0]["to"] == "green"
    assert holder(kube, namespace) == ""
    again, report, err = cli.run("switch", "--to", "blue")
    assert again == 0, err
    assert selector(kube, namespace) == "blue"


def test_as_pid_1_sigterm_still_stops_the_run(cli: Cli, kube: Client, namespace: str, tmp_path: Path) -> None:
    """In the Action's container the engine is PID 1, where a signal without a handler is dropped.
    A new PID namespace makes it PID 1 here too (as `docker run` without --init does)."""
    if subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a PID namespace here (needs root or user namespaces)")
    create_app(kube, namespace, "shop", replicas=1)
    (tmp_path / "bluegreen.yaml").write_text(WATCH_CONFIG)
    wrapper = cli.start("watch", prefix=("unshare", "--pid", "--fork", "--kill-child"))
    wait_until("watching", lambda: "pid 1 " in holder(kube, namespace))
    engine = pid_1_of(wrapper.pid)
    sent = time.monotonic()
    os.kill(engine, signal.SIGTERM)
    out, err = wrapper.communicate(timeout=SAFE_POINT_S + 5)
    assert time.monotonic() - sent < SAFE_POINT_S, err
    assert json.loads(out)["exit_code"] == 143
    assert holder(kube, namespace) == ""


def pid_1_of(unshare_pid: int) -> int:
    """The host's pid of the process that is PID 1 in the namespace `unshare --fork` made."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_rollback_preempts_a_running_watch(cli: Cli, kube: Client, namespace: str, tmp_path: Path) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    assert cli.run("switch", "--to", "green")[0] == 0  # green live, blue the rollback target
    (tmp_path / "bluegreen.yaml").write_text(WATCH_CONFIG)
    watch = cli.start("watch")
    wait_until("watching", held_by(kube, namespace, watch))

    started = time.monotonic()
    code, report, err = cli.run("rollback", "--reason", "bad release", timeout=60)
    rollback_s = time.monotonic() - started
    assert code == 0, err
    assert report["result"]["result"] == "rolled-back"
    assert rollback_s < 15  # it did not wait for the watch's 10 minutes
    assert selector(kube, namespace) == "blue"

    out, err = watch.communicate(timeout=10)  # seen within one interval (1s)
    ended = json.loads(out)
    assert watch.returncode == 0, (out, err)
    assert ended["result"]["result"] == "preempted"
    rollbacks = [e for e in history.parse(service_annotations(kube, namespace)) if e["action"] == "rollback"]
    assert len(rollbacks) == 1  # the watch did not roll back a second time
    assert holder(kube, namespace) == ""


def test_a_signal_just_as_the_lock_is_taken_still_frees_it(cli: Cli, kube: Client, namespace: str) -> None:
    """The moment a Lease names the run: a signal there must not leave it held (found by bench/cancel.py:
    the acquisition ended in Cancelled before the block whose exit releases the Lease was entered)."""
    create_app(kube, namespace, "shop", replicas=1)
    # Each attempt a new image, so none is a no-op that ends before the poll can see it hold the Lease.
    for attempt, image in enumerate(["registry.local/shop:2", UNREADY_IMAGE, "registry.local/shop:3"]):
        process = cli.start("deploy", "--image", image)
        held = held_by(kube, namespace, process)
        wait_until("holding the lock or ended", lambda: held() or process.poll() is not None)
        if process.poll() is not None:  # it finished before the poll saw it hold: fine, if it succeeded
            _out, err = process.communicate()
            assert process.returncode == 0, err[-2000:]
        else:
            code, report, _ = stop(process)
            assert code in (143, 0), report  # 0: it finished first, which is fine too
        assert holder(kube, namespace) == "", f"attempt {attempt}: Lease left held"


def test_the_action_cancelled_reports_it_in_its_outputs_and_summary(
    cluster: LocalCluster, kube: Client, namespace: str, tmp_path: Path
) -> None:
    """The entrypoint as the runner starts it (its own process, inputs in the environment): a cancelled
    job's step says `cancelled` in its outputs, summary and annotation, and exits 143."""
    create_app(kube, namespace, "shop", replicas=1)
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.touch()
    summary.touch()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "BLUEGREEN_KUBECONFIG": cluster.kubeconfig.read_text(),
        "BLUEGREEN_PHASE": "deploy",
        "BLUEGREEN_APP": "shop",
        "BLUEGREEN_NAMESPACE": namespace,
        "BLUEGREEN_IMAGE": UNREADY_IMAGE,
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "entrypoint.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until("deploy waiting for the rollout", lambda: rolling_out(kube, namespace, process))
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=SAFE_POINT_S + 5)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stdout
    outputs = read_outputs(output)
    assert outputs["result"] == "cancelled"
    assert json.loads(outputs["report"])["error"]["title"] == "Cancelled"
    written = summary.read_text()
    assert "stopped: Cancelled" in written and f"updating Deployment {namespace}/shop-green" in written
    assert any(note[0]["title"] for note in commands(stdout, "error"))
    assert holder(kube, namespace) == ""


def test_readiness_is_checked_again_once_the_lock_is_taken(cli: Cli, kube: Client, namespace: str) -> None:
    """While a switch waits for the lock, its target starts a new rollout (another release's deploy, a
    failed deploy's restore): the switch must refuse once it has the lock, not move traffic onto it."""
    from lightkube.resources.apps_v1 import Deployment

    create_app(kube, namespace, "shop", replicas=1)
    now = datetime.now(UTC)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-shop"),
            spec=LeaseSpec(holderIdentity="a deploy", renewTime=now, leaseDurationSeconds=60),
        ),
        namespace=namespace,
    )
    process = cli.start("switch", "--to", "green", "--wait-for-lock", "1m")
    assert process.stderr is not None
    while "waiting for the lock" not in process.stderr.readline():  # it found green ready, and waits
        assert process.poll() is None
    image = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": UNREADY_IMAGE}]}}}}
    kube.patch(Deployment, "shop-green", image, namespace=namespace, patch_type=PatchType.STRATEGIC)
    kube.patch(
        Lease,
        "bluegreen-shop",
        {"spec": {"holderIdentity": None}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert "green is not ready" in json.loads(out)["error"]["message"]
    assert selector(kube, namespace) == "blue"


def test_a_running_watch_keeps_its_rollback_target_from_being_redeployed(
    cli: Cli, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    assert cli.run("switch", "--to", "green")[0] == 0  # green live; blue is what the watch would roll back to
    (tmp_path / "bluegreen.yaml").write_text(WATCH_CONFIG)
    watch = cli.start("watch")
    wait_until("watching", held_by(kube, namespace, watch))
    code, report, _ = cli.run("deploy", "--image", "registry.local/shop:3.0")
    assert code == 1
    assert "a watch: a rollback takes it over" in report["error"]["message"]
    code, _, _ = stop(watch)
    assert code == 143


def test_a_watch_rolls_back_by_itself_under_its_own_lease_and_once_only(
    cli: Cli, kube: Client, namespace: str, tmp_path: Path
) -> None:
    """The watch's own rollback is a nested use of its Lease, made exclusive first (a manual rollback
    meanwhile waits instead of preempting it half-way); a manual rollback afterwards finds nothing to
    do: one rollback in the history."""
    create_app(kube, namespace, "shop", replicas=1)
    assert cli.run("switch", "--to", "green")[0] == 0  # green live
    (tmp_path / "bluegreen.yaml").write_text(
        "checks: [{name: smoke, kind: command, command: [sh, -c, 'exit 1']}]\n"
        "watch: {duration: 10m, interval: 1s, failures: 1, checks: [smoke]}\n"
    )
    code, report, err = cli.run("watch")
    assert code == 1, err
    assert report["result"]["result"] == "rolled-back" and selector(kube, namespace) == "blue"
    code, report, err = cli.run("rollback", "--to", "blue")
    assert code == 1 and "traffic already goes to blue" in report["error"]["message"]
    rollbacks = [e for e in history.parse(service_annotations(kube, namespace)) if e["action"] == "rollback"]
    assert len(rollbacks) == 1
    assert holder(kube, namespace) == ""
