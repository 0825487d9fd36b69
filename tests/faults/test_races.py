"""Races: ten runs started together on one app, and another writer changing an object mid-run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from tests.faults.harness import (
    LEDGER,
    Cli,
    Row,
    Scene,
    concurrently,
    guarded,
    kubeconfig_via,
    needs,
    next_run_now_or_later,
    observe,
    run_cli,
    run_later,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Request, Rule
from tests.faults.test_requests import ordinal

pytestmark = pytest.mark.cluster


def ten_at_once(kube: Client, scene: Scene, wait: str, row: Row) -> None:
    """Ten `switch` jobs (re-runs, double clicks, queued releases) at once: the candidate ends live."""
    clis = [Cli(scene.args("--wait-for-lock", wait), scene.kubeconfig) for _ in range(10)]
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
    row: Row,
) -> None:
    """Run the command; when `step` arrives, another client merge-patches `name` first, then it goes on."""

    def other_writer(_: Request) -> None:
        kube.patch(kind, name, write, namespace=scene.namespace, patch_type=PatchType.MERGE)
        time.sleep(0.2)  # let EndpointSlices follow a selector the other writer changed

    rule = fault_proxy.add(Rule(scene.namespace, step, "hook", occurrence=occurrence, hook=other_writer))
    run = run_cli(scene.args(), proxied)
    if not rule.fired.is_set():
        row.problems.append("the other writer never ran: the run did not send that request")
    verdict(row, run, observe(kube, scene), scene, expect={0, 1, 3})


SERVICE = "PATCH /api/v1/namespaces/NS/services/{app}"
PREVIEW_READ = "GET /api/v1/namespaces/NS/services/shop-preview"
Case = tuple[str, str, int, str, dict[str, object], type[Service] | type[Deployment], str]
CASES: list[Case] = [
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
        # Deploy reads the preview (it follows the candidate) to point it at the colour it deploys to.
        "deploy",
        PREVIEW_READ,
        1,
        "moves the preview Service's selector to the live colour",
        {"spec": {"selector": {"bluegreen.io/color": "blue"}}},
        Service,
        "shop-preview",
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


IDS = [f"{c[0]}-{c[3]}".replace(" ", "-") for c in CASES]
TEN = {"ten-switch-runs-no-wait": "0s", "ten-switch-runs-wait-for-lock": "60s"}


@pytest.fixture(scope="module")
def races(
    kube: Client,
    cluster_kubeconfig: Path,
    fault_proxy: FaultProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Row]:
    """Every race at once, each in its own namespace; the rows by id."""
    tmp = tmp_path_factory.mktemp("races")
    proxied = kubeconfig_via(cluster_kubeconfig, fault_proxy.port, tmp / "kubeconfig-proxied")
    rows = {
        key: LEDGER.add(
            Row(
                fault=f"10 `switch` runs started together (--wait-for-lock {wait})",
                phase="switch",
                moment="all at once",
            )
        )
        for key, wait in TEN.items()
    }
    for key, (command, step, n, what, *_) in zip(IDS, CASES, strict=True):
        rows[key] = LEDGER.add(
            Row(
                fault=f"another writer: {what}",
                phase=command,
                moment=f"before the {ordinal(n)} {step.split('/NS/')[-1]} {'read' if step.startswith('GET') else 'write'}",
            )
        )
    later: list[tuple[Scene, Row]] = []

    def one(key: str) -> None:
        if key in TEN:
            scene = set_up(kube, "switch", cluster_kubeconfig, tmp, "ten")
            ten_at_once(kube, scene, TEN[key], rows[key])
        else:
            command, step, occurrence, what, write, kind, name = CASES[IDS.index(key)]
            scene = set_up(kube, command, cluster_kubeconfig, tmp, "writer")
            writer_at(
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
                row=rows[key],
            )
            if name == "shop-preview":  # whatever the other writer did, deploy's candidate is previewed
                preview = kube.get(Service, name, namespace=scene.namespace).to_dict()["spec"]["selector"]
                if preview.get("bluegreen.io/color") != "green":
                    rows[key].problems.append(f"the preview Service selects {preview}, not green (deployed)")
        next_run_now_or_later(kube, scene, rows[key], later)

    concurrently(list(rows), lambda key: guarded(rows[key], lambda: one(key)))
    run_later(kube, later)
    return rows


@pytest.mark.parametrize("key", [pytest.param(k, marks=needs("intent")) for k in TEN])
def test_ten_switch_runs_started_together(key: str, races: dict[str, Row]) -> None:
    assert races[key].consistent, " | ".join(races[key].cells())


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(k, marks=needs("intent") if c[0] != "deploy" else ())
        for k, c in zip(IDS, CASES, strict=True)
    ],
)
def test_another_writer_between_read_and_write(key: str, races: dict[str, Row]) -> None:
    assert races[key].consistent, " | ".join(races[key].cells())
