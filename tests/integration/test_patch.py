"""`bluegreen patch` on the real cluster: the rollback target gets patched images, traffic stays.

A release makes green live and leaves blue, the previous release, as the rollback target. Patching
blue must change blue's images alone: the live Service's selector and spec, its EndpointSlices and the
live Deployment keep their resourceVersions (the Service's own changes, as its annotations carry the
history). The patch is in the history and in `status`, and a rollback then serves the patched pods.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Event, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

from bluegreen.cli import Outcome, execute
from bluegreen.report import text
from hack.localcluster import LocalCluster
from tests.integration.test_cancel import Cli, catches, holder, stop, wait_until
from tests.integration.test_engine import (
    QUICK,
    Bg,
    deployment_dict,
    selector_color,
    service_annotations,
    versions,
)
from tests.support.apps import create_app, endpoint_ips, ready_pod_ips, wait_available

pytestmark = pytest.mark.cluster

PATCHED = "registry.local/shop:1.0-p1"


@pytest.fixture
def bg(cluster: LocalCluster, namespace: str) -> Bg:
    def run(*args: str) -> Outcome:
        return execute([*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)])

    return run


@pytest.fixture
def cli(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(cluster, namespace, tmp_path)
    yield runner
    runner.stop_all()


def live_route(kube: Client, namespace: str) -> dict[str, Any]:
    """What decides where traffic goes, with the resourceVersions of the EndpointSlices."""
    svc = kube.get(Service, "shop", namespace=namespace).to_dict()
    slices = kube.list(EndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": "shop"})
    return {
        "spec": svc["spec"],
        "slices": sorted((s.metadata.name, s.metadata.resourceVersion) for s in slices if s.metadata),
        "green": deployment_dict(kube, namespace, "shop-green")["metadata"]["resourceVersion"],
    }


def pod_images(kube: Client, namespace: str, color: str) -> set[str]:
    pods = kube.list(Pod, namespace=namespace, labels={"bluegreen.io/color": color})
    return {
        c.image or ""
        for p in pods
        if p.spec and not (p.metadata and p.metadata.deletionTimestamp)
        for c in p.spec.containers
    }


def released(bg: Bg, kube: Client, namespace: str) -> None:
    """blue 1.0 (the rollback target) and green 2.0 (live), through a real release."""
    create_app(kube, namespace, "shop", replicas=2, image="registry.local/shop:1.0")
    outcome = bg("release", "--image", "registry.local/shop:2.0", *QUICK)
    assert outcome.exit_code == 0, outcome.error
    assert selector_color(kube, namespace) == "green"


def test_patch_updates_the_rollback_target_alone_and_a_rollback_then_serves_it(
    bg: Bg, kube: Client, namespace: str
) -> None:
    released(bg, kube, namespace)
    route = live_route(kube, namespace)
    switches = json.loads(service_annotations(kube, namespace)["bluegreen.io/history"])

    outcome = bg("patch", "--image", PATCHED, "--reason", "CVE-2026-0001")

    assert outcome.exit_code == 0, outcome.error
    result = outcome.result
    assert result is not None
    assert (result.result, result.active_color) == ("patched", "green")
    assert result.details["patch"]["changed"] == {"app": {"from": "registry.local/shop:1.0", "to": PATCHED}}
    # Traffic did not move: the router's spec, the live EndpointSlices and the live Deployment as they were.
    assert live_route(kube, namespace) == route
    blue = deployment_dict(kube, namespace, "shop-blue")
    assert [c["image"] for c in blue["spec"]["template"]["spec"]["containers"]] == [PATCHED]
    assert pod_images(kube, namespace, "blue") == {PATCHED}
    # Recorded: a patch entry, the switch history untouched, an Event.
    annotations = service_annotations(kube, namespace)
    (entry,) = json.loads(annotations["bluegreen.io/patches"])
    assert (entry["action"], entry["to"], entry["reason"]) == ("patch", "blue", "CVE-2026-0001")
    assert entry["changed"] == {"app": ["registry.local/shop:1.0", PATCHED]}
    assert json.loads(annotations["bluegreen.io/history"]) == switches
    notes = [e.message or "" for e in kube.list(Event, namespace=namespace) if e.reason == "Patched"]
    assert any("shop-blue, the rollback target" in n and "traffic stays on green" in n for n in notes)

    status = bg("status")
    assert status.exit_code == 0 and status.result is not None
    colors = status.result.details["colors"]
    assert colors["blue"]["last_patched"] == entry["time"]
    assert colors["green"]["last_patched"] is None
    assert f"patched {entry['time']}" in text(status.result)
    assert "last patch: blue" in text(status.result)
    assert bg("diff").exit_code == 0  # the patch is the release's own record: no drift

    rolled = bg("rollback", "--reason", "drill")
    assert rolled.exit_code == 0, rolled.error
    assert selector_color(kube, namespace) == "blue"
    serving = endpoint_ips(kube, namespace, "shop")
    blue_ips = ready_pod_ips(
        kube, namespace, {"app.kubernetes.io/name": "shop", "bluegreen.io/color": "blue"}
    )
    assert serving == blue_ips and serving
    assert pod_images(kube, namespace, "blue") == {PATCHED}


def written(kube: Client, namespace: str) -> dict[str, Any]:
    """What a write of ours would change: each Service's resourceVersion, and each Deployment's
    generation, which any change to its spec or annotations raises. Not a Deployment's resourceVersion:
    its controller keeps writing its status after the rollout is available (a CI run saw one between
    the two reads)."""
    from lightkube.resources.apps_v1 import Deployment

    out: dict[str, Any] = {
        k: v for k, v in versions(kube, namespace).items() if not k.startswith(("Deployment/", "Lease/"))
    }
    for color in ("blue", "green"):
        meta = kube.get(Deployment, f"shop-{color}", namespace=namespace).metadata
        out[f"Deployment/shop-{color}"] = meta.generation if meta else None
    return out


def test_patch_run_again_with_the_same_images_is_a_noop(bg: Bg, kube: Client, namespace: str) -> None:
    released(bg, kube, namespace)
    assert bg("patch", "--image", PATCHED).exit_code == 0
    # Its rollout done to the last old pod: the controller's own status writes are over (a CI run saw
    # one land between the two reads), so a changed resourceVersion below is a write of the re-run.
    wait_available(kube, namespace, "shop-blue")
    before = written(kube, namespace)

    again = bg("patch", "--image", PATCHED)

    assert again.exit_code == 0, again.error
    assert again.result is not None and again.result.result == "noop"
    assert written(kube, namespace) == before
    assert len(json.loads(service_annotations(kube, namespace)["bluegreen.io/patches"])) == 1


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("--image", "Registry.local/SHOP:!"), 2, "not a valid image reference"),
        (("--set-image", "app=no spaces:1"), 2, "is not an image reference"),
        (("--set-image", "web=registry.local/shop:1.0-p1"), 2, "no container named web"),
        (("--image", "registry.local/other:1.0"), 1, "keeps each image's repository"),
    ],
)
def test_a_bad_patch_is_refused_with_nothing_written(
    bg: Bg, kube: Client, namespace: str, args: tuple[str, ...], code: int, said: str
) -> None:
    released(bg, kube, namespace)
    before = versions(kube, namespace)

    outcome = bg("patch", *args)

    assert outcome.exit_code == code
    assert outcome.error is not None and said in outcome.error.message
    assert versions(kube, namespace) == before  # the Lease included: refused before it was taken


def test_patch_refuses_a_candidate_that_was_never_promoted(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1, image="registry.local/shop:1.0")
    assert bg("deploy", "--image", "registry.local/shop:2.0").exit_code == 0  # green: a candidate
    before = versions(kube, namespace)

    outcome = bg("patch", "--image", "registry.local/shop:2.0-p1")

    assert outcome.exit_code == 1
    assert outcome.error is not None and "never promoted" in outcome.error.message
    assert "bluegreen deploy" in outcome.error.remedy
    assert versions(kube, namespace) == before


def test_patch_waits_for_another_runs_lock_and_writes_nothing_while_it_is_held(
    bg: Bg, kube: Client, namespace: str
) -> None:
    released(bg, kube, namespace)
    # The release left the Lease free; another run holds it now.
    kube.patch(
        Lease,
        "bluegreen-shop",
        {
            "spec": {
                "holderIdentity": "run 77 by bob",
                "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "leaseDurationSeconds": 60,
            }
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    before = versions(kube, namespace)

    outcome = bg("patch", "--image", PATCHED)

    assert outcome.exit_code == 1
    assert outcome.error is not None and "run 77 by bob" in outcome.error.message
    assert versions(kube, namespace) == before


def test_a_patch_cancelled_while_waiting_for_its_rollout(cli: Cli, kube: Client, namespace: str) -> None:
    # fault.local/unready:1 never becomes Ready (hack/kwok-stages.yaml); :0 of the same repository does.
    create_app(kube, namespace, "shop", replicas=1, image="fault.local/unready:0")
    code, _, err = cli.run("switch", "--to", "green")
    assert code == 0, err
    process = cli.start("patch", "--image", "fault.local/unready:1")
    wait_until("catching SIGTERM", lambda: catches(process.pid, signal.SIGTERM))
    wait_until(
        "patch waiting for the rollout",
        lambda: (
            f"pid {process.pid} " in holder(kube, namespace)
            and "fault.local/unready:1" in json.dumps(deployment_dict(kube, namespace, "shop-blue")["spec"])
        ),
    )
    code, report, _ = stop(process)

    assert code == 143
    assert f"updating Deployment {namespace}/shop-blue" in report["error"]["message"]
    assert holder(kube, namespace) == ""  # the Lease was freed
    assert selector_color(kube, namespace) == "green"
    again, report, err = cli.run("patch", "--image", "fault.local/unready:0", "--reason", "back")
    assert again == 0, err
    assert report["result"]["result"] == "patched"


def test_a_retired_rollback_target_is_patched_and_the_rollback_scales_up_patched_pods(
    bg: Bg, kube: Client, namespace: str
) -> None:
    released(bg, kube, namespace)
    assert bg("retire").exit_code == 0  # blue scaled to zero

    outcome = bg("patch", "--image", PATCHED)

    assert outcome.exit_code == 0, outcome.error
    assert outcome.result is not None and outcome.result.result == "patched"
    assert deployment_dict(kube, namespace, "shop-blue")["spec"]["replicas"] == 0  # still retired
    assert bg("rollback").exit_code == 0
    assert selector_color(kube, namespace) == "blue"
    assert pod_images(kube, namespace, "blue") == {PATCHED}


def test_a_patch_whose_history_entry_was_lost_is_recorded_by_the_next_run_once(
    bg: Bg, kube: Client, namespace: str
) -> None:
    released(bg, kube, namespace)
    assert bg("patch", "--image", PATCHED).exit_code == 0
    (entry,) = json.loads(service_annotations(kube, namespace)["bluegreen.io/patches"])
    # As a SIGTERM between the Deployment's write and the history's leaves it: the stamp, no entry.
    kube.patch(
        Service,
        "shop",
        {"metadata": {"annotations": {"bluegreen.io/patches": None}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    blue = deployment_dict(kube, namespace, "shop-blue")["metadata"]["resourceVersion"]

    again = bg("patch", "--image", PATCHED)

    assert again.exit_code == 0, again.error
    assert again.result is not None and again.result.result == "noop"
    assert deployment_dict(kube, namespace, "shop-blue")["metadata"]["resourceVersion"] == blue
    (recorded,) = json.loads(service_annotations(kube, namespace)["bluegreen.io/patches"])
    assert recorded == entry
    assert bg("patch", "--image", PATCHED).exit_code == 0
    assert len(json.loads(service_annotations(kube, namespace)["bluegreen.io/patches"])) == 1


def test_a_dry_run_patch_is_validated_by_the_apiserver_and_changes_nothing(
    bg: Bg, kube: Client, namespace: str
) -> None:
    released(bg, kube, namespace)
    before = versions(kube, namespace)

    outcome = bg("patch", "--image", PATCHED, "--dry-run")

    assert outcome.exit_code == 0, outcome.error
    assert outcome.result is not None and outcome.result.result == "planned"
    assert outcome.result.changes == [
        f"update Deployment shop-blue: app registry.local/shop:1.0 -> {PATCHED}"
    ]
    assert versions(kube, namespace) == before


def test_a_patch_whose_pods_fail_puts_the_rollback_target_back_and_records_nothing(
    bg: Bg, kube: Client, namespace: str
) -> None:
    # fault.local/crashloop:1 crash-loops (hack/kwok-stages.yaml); :0 of the same repository runs.
    create_app(kube, namespace, "shop", replicas=1, image="fault.local/crashloop:0")
    assert bg("switch", "--to", "green").exit_code == 0
    route = live_route(kube, namespace)

    outcome = bg("patch", "--image", "fault.local/crashloop:1", "--timeout", "5s")

    assert outcome.exit_code == 1
    assert outcome.error is not None and "rollout of shop-blue" in outcome.error.message
    assert "put back" in outcome.error.remedy
    blue = deployment_dict(kube, namespace, "shop-blue")
    assert [c["image"] for c in blue["spec"]["template"]["spec"]["containers"]] == ["fault.local/crashloop:0"]
    assert "bluegreen.io/patched" not in blue["metadata"].get("annotations", {})
    assert "bluegreen.io/patches" not in service_annotations(kube, namespace)
    assert live_route(kube, namespace) == route


def test_a_rerun_of_the_patched_releases_own_deploy_does_not_undo_the_patch(
    bg: Bg, kube: Client, namespace: str
) -> None:
    released(bg, kube, namespace)  # green: 2.0, deploy #1
    assert bg("release", "--image", "registry.local/shop:3.0", *QUICK).exit_code == 0  # blue: 3.0, #2, live
    assert bg("patch", "--image", "registry.local/shop:2.0-p1").exit_code == 0
    assert bg("patch", "--image", "registry.local/shop:2.0-p2").exit_code == 0  # a second patch
    green = deployment_dict(kube, namespace, "shop-green")["metadata"]["resourceVersion"]

    rerun = bg("deploy", "--image", "registry.local/shop:2.0")  # release 2.0's deploy job, re-run

    assert rerun.exit_code == 0, rerun.error
    assert rerun.result is not None
    assert "green runs this release with patched images since: kept as it is" in rerun.result.messages
    assert deployment_dict(kube, namespace, "shop-green")["metadata"]["resourceVersion"] == green
    switched = bg("switch")
    assert switched.result is not None and switched.result.result == "noop"  # nothing newer to promote
    assert selector_color(kube, namespace) == "blue"

    assert bg("rollback").exit_code == 0  # green, patched, is live now: its old deploy is a no-op
    again = bg("deploy", "--image", "registry.local/shop:2.0")
    assert again.result is not None and again.result.result == "noop"
    assert pod_images(kube, namespace, "green") == {"registry.local/shop:2.0-p2"}
