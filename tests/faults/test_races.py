"""Races: ten runs started together on one app, and another writer changing an object mid-run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from tests.faults.harness import LEDGER, Cli, Row, Scene, drop, next_run, observe, run_cli, set_up, verdict
from tests.faults.httpfaults import FaultProxy, Request, Rule

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("wait", ["0s", "60s"], ids=["no-wait", "wait-for-lock"])
def test_ten_switch_runs_started_together(
    wait: str, kube: Client, cluster_kubeconfig: Path, tmp_path: Path
) -> None:
    """Ten `switch` jobs (re-runs, double clicks, queued releases) at once: the candidate ends live."""
    scene = set_up(kube, "switch", cluster_kubeconfig, tmp_path, "ten")
    row = Row(
        fault=f"10 `switch` runs started together (--wait-for-lock {wait})",
        phase="switch",
        moment="all at once",
    )
    clis = [Cli(scene.args("--wait-for-lock", wait), cluster_kubeconfig) for _ in range(10)]
    runs = [cli.wait(bound=120) for cli in clis]
    observed = observe(kube, scene)
    codes = sorted(r.exit_code if r.exit_code is not None else -1 for r in runs)
    row.exit_code = max(codes)
    row.elapsed = max(r.elapsed for r in runs)
    row.outcome = f"exits {codes}, traffic {observed.color}, lease {observed.lease}"
    row.problems += observed.problems
    row.problems += [f"a run: {r.describe()}" for r in runs if r.exit_code not in (0, 1) or r.crashed]
    if observed.color != scene.goal:
        row.problems.append(f"traffic ended on {observed.color}, not the candidate {scene.goal}")
    next_run(kube, scene, LEDGER.add(row))
    drop(kube, scene)
    assert row.consistent, row.problems


def writer_at(
    kube: Client,
    scene: Scene,
    proxied: Path,
    fault_proxy: FaultProxy,
    *,
    step: str,
    occurrence: int,
    what: str,
    write: dict[str, object],
    kind: type[Service] | type[Deployment] = Service,
    name: str = "shop",
) -> Row:
    """Run the command; when `step` arrives, another client merge-patches `name` first, then it goes on."""
    nth = {1: "1st", 2: "2nd"}.get(occurrence, f"{occurrence}th")
    row = Row(
        fault=f"another writer: {what}",
        phase=scene.command,
        moment=f"before the {nth} {step.split('/NS/')[-1]} write",
    )

    def other_writer(_: Request) -> None:
        kube.patch(kind, name, write, namespace=scene.namespace, patch_type=PatchType.MERGE)
        time.sleep(0.2)  # let EndpointSlices follow a selector the other writer changed

    rule = fault_proxy.add(Rule(scene.namespace, step, "hook", occurrence=occurrence, hook=other_writer))
    run = run_cli(scene.args(), proxied)
    if not rule.fired.is_set():
        row.problems.append("the other writer never ran: the run did not send that request")
    verdict(row, run, observe(kube, scene), scene, expect={0, 1, 3})
    return LEDGER.add(row)


SERVICE = "PATCH /api/v1/namespaces/NS/services/{app}"
CASES = [
    # (command, step, occurrence, what, patch, kind, object)
    (
        "switch",
        SERVICE.format(app="shop"),
        1,
        "labels the Service",
        {"metadata": {"labels": {"team": "shop"}}},
        Service,
        "shop",
    ),
    (
        "switch",
        SERVICE.format(app="shop"),
        1,
        "moves the selector to green itself",
        {"spec": {"selector": {"bluegreen.io/color": "green"}}},
        Service,
        "shop",
    ),
    (
        "switch",
        SERVICE.format(app="shop"),
        2,
        "annotates the Service",
        {"metadata": {"annotations": {"note": "x"}}},
        Service,
        "shop",
    ),
    (
        "rollback",
        SERVICE.format(app="shop"),
        1,
        "labels the Service",
        {"metadata": {"labels": {"team": "shop"}}},
        Service,
        "shop",
    ),
    (
        "deploy",
        "PUT /apis/apps/v1/namespaces/NS/deployments/shop-green",
        1,
        "annotates the idle Deployment",
        {"metadata": {"annotations": {"note": "x"}}},
        Deployment,
        "shop-green",
    ),
    (
        "group switch",
        SERVICE.format(app="cart"),
        1,
        "labels a member's Service",
        {"metadata": {"labels": {"team": "cart"}}},
        Service,
        "cart",
    ),
]


@pytest.mark.parametrize(
    ("command", "step", "occurrence", "what", "write", "kind", "name"),
    CASES,
    ids=[f"{c[0]}-{c[3]}".replace(" ", "-") for c in CASES],
)
def test_another_writer_between_read_and_write(
    command: str,
    step: str,
    occurrence: int,
    what: str,
    write: dict[str, object],
    kind: type[Service] | type[Deployment],
    name: str,
    kube: Client,
    cluster_kubeconfig: Path,
    proxied: Path,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    scene = set_up(kube, command, cluster_kubeconfig, tmp_path, "writer")
    row = writer_at(
        kube,
        scene,
        proxied,
        fault_proxy,
        step=step,
        occurrence=occurrence,
        what=what,
        write=write,
        kind=kind,
        name=name,
    )
    next_run(kube, scene, row)
    drop(kube, scene)
    assert row.consistent, row.problems
