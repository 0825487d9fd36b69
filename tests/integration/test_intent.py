"""Intent, not toggles, on the real cluster: the example release workflow's jobs (deploy -> gate ->
switch -> watch, examples/workflows/deploy.yml) re-run one at a time in any order never move traffic
off the release the last successful switch promoted.

Each job is the CLI phase the Action runs for it, with the candidate passed from deploy to switch as
the example passes its output. After every job the test reads the live Service (where traffic goes)
and the live Deployment's images (what it runs).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen.cli import Outcome, execute
from hack.localcluster import LocalCluster
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster

Job = Callable[[], Outcome]
# The gate judges the idle colour's pods (the kubernetes check); windows cut to nothing.
CONFIG = "version: 1\nchecks:\n  - name: pods\n    kind: kubernetes\n"
QUICK_GATE = ("--min-healthy", "0s", "--interval", "0.2s")
QUICK_WATCH = ("--duration", "0s", "--interval", "0.2s")


class Workflow:
    """One run of the example release workflow: its jobs, and the output deploy hands to switch."""

    def __init__(self, cluster: LocalCluster, namespace: str, config: Path, image: str) -> None:
        self.cluster, self.namespace, self.config, self.image = cluster, namespace, config, image
        self.candidate = ""

    def bg(self, *args: str) -> Outcome:
        return execute(
            [*args, "--app", "shop", "-n", self.namespace, "--kubeconfig", str(self.cluster.kubeconfig)]
        )

    def deploy(self) -> Outcome:
        outcome = self.bg("deploy", "--image", self.image)
        if outcome.result is not None and outcome.result.candidate:
            self.candidate = outcome.result.candidate  # the job's `candidate` output
        return outcome

    def gate(self) -> Outcome:
        return self.bg("gate", "--config", str(self.config), *QUICK_GATE)

    def switch(self) -> Outcome:
        with_candidate = ("--candidate", self.candidate) if self.candidate else ()
        return self.bg("switch", "--config", str(self.config), *with_candidate, "--reason", self.image)

    def watch(self) -> Outcome:
        return self.bg("watch", "--config", str(self.config), *QUICK_WATCH)

    def jobs(self) -> dict[str, Job]:
        return {"deploy": self.deploy, "gate": self.gate, "switch": self.switch, "watch": self.watch}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bluegreen.yaml"
    path.write_text(CONFIG)
    return path


def live(kube: Client, namespace: str) -> tuple[str, list[str]]:
    """(the colour the live Service selects, the images that colour's Deployment runs)."""
    svc = kube.get(Service, "shop", namespace=namespace)
    assert svc.spec is not None and svc.spec.selector is not None
    color = svc.spec.selector["bluegreen.io/color"]
    dep = kube.get(Deployment, f"shop-{color}", namespace=namespace)
    assert dep.spec is not None and dep.spec.template.spec is not None
    return color, [c.image or "" for c in dep.spec.template.spec.containers]


def history(kube: Client, namespace: str) -> list[dict[str, Any]]:
    svc = kube.get(Service, "shop", namespace=namespace)
    assert svc.metadata is not None
    entries: list[dict[str, Any]] = json.loads(
        (svc.metadata.annotations or {}).get("bluegreen.io/history", "[]")
    )
    return entries


def release(run: Workflow) -> None:
    for name, job in run.jobs().items():
        outcome = job()
        assert outcome.exit_code == 0, (name, outcome.error, outcome.result and outcome.result.messages)


def test_re_running_any_job_in_any_order_never_moves_traffic_off_the_promoted_release(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    jobs = run.jobs()
    # The first run, with every job done so far re-run after each job (a re-run before the switch
    # keeps the candidate and its gate stamp; nothing moves until the switch).
    done: list[str] = []
    for name in jobs:
        for again in [name, *done]:
            outcome = jobs[again]()
            assert outcome.exit_code == 0, (again, outcome.error, outcome.result and outcome.result.messages)
            if again == "switch":
                assert outcome.result is not None
                assert outcome.result.result == ("switched" if name == again else "noop"), (name, again)
            expected = "green" if "switch" in (name, *done) else "blue"
            assert live(kube, namespace)[0] == expected, (name, again)
        done.append(name)
    promoted = live(kube, namespace)
    assert promoted == ("green", ["registry.local/shop:2.0"])
    switches = len(history(kube, namespace))
    assert switches == 1

    for order in itertools.permutations(run.jobs()):
        for name in order:
            outcome = run.jobs()[name]()
            assert outcome.exit_code == 0, (order, name, outcome.error)
            if name in ("deploy", "switch"):
                assert outcome.result is not None and outcome.result.result == "noop", (order, name)
            assert live(kube, namespace) == promoted, (order, name)
    # No switch was recorded by any re-run; blue, the rollback target, still runs the old release.
    assert len(history(kube, namespace)) == switches
    blue = kube.get(Deployment, "shop-blue", namespace=namespace)
    assert blue.spec is not None and blue.spec.template.spec is not None
    assert [c.image for c in blue.spec.template.spec.containers] == ["registry.local/shop:1.0"]


def test_a_rolled_back_release_stays_rolled_back_whatever_is_re_run(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    release(run)
    rolled = run.bg("rollback", "--reason", "error rate up")
    assert rolled.exit_code == 0, rolled.error
    back = live(kube, namespace)
    assert back == ("blue", ["registry.local/shop:1.0"])
    green = kube.get(Deployment, "shop-green", namespace=namespace)
    assert green.metadata is not None and "bluegreen.io/rejected" in (green.metadata.annotations or {})
    assert history(kube, namespace)[0]["rejected"]["color"] == "green"

    for order in itertools.permutations(("deploy", "gate", "switch")):
        for name in order:
            outcome = run.jobs()[name]()
            if name == "switch":
                assert outcome.exit_code == 1, (order, outcome.result)
                assert outcome.error is not None and "rejected" in outcome.error.message
                assert "--force" in outcome.error.remedy
            assert live(kube, namespace) == back, (order, name)
    # A second rollback (a re-run of the rollback job) does not flip back onto the rejected release
    # either: it is a noop that says how to go there on purpose.
    again = run.bg("rollback")
    assert again.exit_code == 0 and again.result is not None and again.result.result == "noop", again.error
    assert "already rolled back to blue" in again.result.messages[-1]
    assert live(kube, namespace) == back

    # --force switches to it, and the history says so.
    forced = run.bg("switch", "--to", "green", "--force", "--config", str(config), "--reason", "db was down")
    assert forced.exit_code == 0, forced.error
    assert live(kube, namespace) == ("green", ["registry.local/shop:2.0"])
    assert any(item.startswith("rejected") for item in history(kube, namespace)[0]["forced"])


def test_an_older_runs_switch_re_run_does_not_undo_a_newer_release(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    first = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    release(first)
    second = Workflow(cluster, namespace, config, "registry.local/shop:3.0")
    release(second)
    assert live(kube, namespace) == ("blue", ["registry.local/shop:3.0"])

    # The idle colour (2.0) retired, then the first run's deploy job re-run: 2.0 is scaled up again
    # but keeps its deploy number, so it does not become the newest release.
    assert first.bg("retire").exit_code == 0
    redeployed = first.deploy()
    assert redeployed.exit_code == 0, redeployed.error
    assert redeployed.result is not None and any("older than live" in m for m in redeployed.result.messages)
    old = first.switch()  # the first run's switch job, re-run: its candidate now runs on the idle colour
    assert old.exit_code == 1 and old.error is not None and "older than the live release" in old.error.message
    first.candidate = ""  # a workflow that passes no candidate: the newest one is live, nothing to do
    plain = first.switch()
    assert plain.exit_code == 0 and plain.result is not None and plain.result.result == "noop"
    assert live(kube, namespace) == ("blue", ["registry.local/shop:3.0"])


def test_switch_refuses_a_template_changed_after_its_gate_naming_both_hashes(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    assert run.deploy().exit_code == 0
    assert run.gate().exit_code == 0
    # Someone edits the idle colour between the gate job and the switch job.
    kube.patch(
        Deployment,
        "shop-green",
        {"spec": {"template": {"metadata": {"annotations": {"edited": "by hand"}}}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    refused = run.bg("switch", "--config", str(config))
    assert refused.exit_code == 1 and refused.error is not None
    gated = run.candidate
    assert gated in refused.error.message and "changed after its gate" in refused.error.message
    assert live(kube, namespace)[0] == "blue"

    forced = run.bg("switch", "--config", str(config), "--force")
    assert forced.exit_code == 0, forced.error
    assert forced.result is not None and forced.result.details.get("ungated") is True
    assert history(kube, namespace)[0]["ungated"] is True


def test_a_deploy_never_gated_is_refused_when_the_app_has_a_gate(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    assert run.deploy().exit_code == 0
    refused = run.switch()
    assert refused.exit_code == 1 and refused.error is not None
    assert "never passed a gate" in refused.error.message
    assert live(kube, namespace)[0] == "blue"


def test_switch_runs_started_together_promote_once_and_the_rest_are_noops(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    assert run.deploy().exit_code == 0 and run.gate().exit_code == 0
    outcomes: list[Outcome] = []

    def one() -> None:
        outcomes.append(run.bg("switch", "--config", str(config), "--wait-for-lock", "60s"))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    results = sorted(o.result.result if o.result else f"error {o.error}" for o in outcomes)
    assert results == ["noop", "noop", "noop", "switched"]
    assert live(kube, namespace) == ("green", ["registry.local/shop:2.0"])


def test_status_reports_the_routers_truth_when_the_history_lags_and_rollback_still_works(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    assert run.bg("switch", "--to", "green").exit_code == 0
    # Traffic moved back by hand (kubectl, the runbook's last resort): the history still says green.
    kube.patch(
        Service,
        "shop",
        {"spec": {"selector": {"bluegreen.io/color": "blue"}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    status = run.bg("status")
    assert status.result is not None and status.result.active_color == "blue"
    assert "history says green is live, the router routes to blue" in status.result.details["history_lags"]
    assert any("history lags" in m for m in status.result.messages)

    # The recorded previous colour (blue) is live now: rollback does not refuse, it goes to green.
    rolled = run.bg("rollback", "--reason", "drill")
    assert rolled.exit_code == 0, rolled.error
    assert live(kube, namespace)[0] == "green"
    after = run.bg("status")
    assert after.result is not None and after.result.details["history_lags"] == ""


def test_a_noop_switch_records_what_the_router_shows_when_the_history_lags(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    kube.patch(
        Service,
        "shop",
        {
            "metadata": {
                "annotations": {"bluegreen.io/active-color": "blue", "bluegreen.io/switching-to": "green"}
            },
            "spec": {"selector": {"bluegreen.io/color": "green"}},
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    outcome = run.bg("switch", "--to", "green")
    assert outcome.exit_code == 0 and outcome.result is not None and outcome.result.result == "noop"
    assert any("the history lagged" in m for m in outcome.result.messages)
    entry = history(kube, namespace)[0]
    assert (entry["action"], entry["from"], entry["to"]) == ("reconcile", "blue", "green")
    svc = kube.get(Service, "shop", namespace=namespace)
    assert svc.metadata is not None and svc.metadata.annotations is not None
    assert svc.metadata.annotations["bluegreen.io/active-color"] == "green"
    assert "bluegreen.io/switching-to" not in svc.metadata.annotations


def test_a_huge_reason_is_cut_and_the_history_stays_bounded(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    for i in range(25):
        outcome = run.bg("switch", "--to", ("green", "blue")[i % 2], "--reason", "r" * 100_000)
        assert outcome.exit_code == 0, outcome.error
    svc = kube.get(Service, "shop", namespace=namespace)
    assert svc.metadata is not None and svc.metadata.annotations is not None
    raw = svc.metadata.annotations["bluegreen.io/history"]
    assert len(raw.encode()) <= 64 * 1024
    entries = json.loads(raw)
    assert entries[0]["reason"].endswith("(cut from 100000 characters)")
    assert live(kube, namespace)[0] == "green"  # 25 moves from blue


def test_a_rollback_re_run_after_its_traffic_write_landed_stays_rolled_back(
    kube: Client, cluster: LocalCluster, namespace: str, config: Path
) -> None:
    """The fault suite's case: the rollback's one Service write landed, then the run failed before it
    marked the release it left as rejected (its answer lost, a later write refused). A re-run
    read "previous colour: green" and sent traffic back onto the release it had rolled back from."""
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    run = Workflow(cluster, namespace, config, "registry.local/shop:2.0")
    release(run)
    assert run.bg("rollback").exit_code == 0
    # As if the run had died after its Service write: no rejected mark on green.
    kube.patch(
        Deployment,
        "shop-green",
        {"metadata": {"annotations": {"bluegreen.io/rejected": None}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    again = run.bg("rollback")
    assert again.exit_code == 0 and again.result is not None and again.result.result == "noop", again.error
    assert live(kube, namespace) == ("blue", ["registry.local/shop:1.0"])
