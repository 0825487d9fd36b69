"""The engine against the real local cluster, driven as a user drives it: `bluegreen` commands.

Each story checks what a user would see (exit code, message, where traffic goes) and, for refusals,
that no object changed: the resourceVersions of everything bluegreen could touch are compared.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from lightkube import ApiError, Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Event, Service
from lightkube.types import PatchType

from bluegreen.cli import Outcome, execute
from bluegreen.kube import connect
from bluegreen.model import AppSpec, Color
from bluegreen.routers.service import ServiceRouter
from hack.localcluster import LocalCluster
from tests.support.apps import (
    CRASHLOOP_IMAGE,
    UNREADY_IMAGE,
    create_app,
    deployment,
    endpoint_ips,
    ready_pod_ips,
    service,
    wait_available,
)

pytestmark = pytest.mark.cluster
# The gate and watch as a release runs them, with windows cut to nothing: their own tests take time.
QUICK = ("--min-healthy", "0s", "--interval", "0.2s", "--duration", "0s")
Bg = Callable[..., Outcome]  # bg(*args): run `bluegreen ARGS --app shop -n NS --kubeconfig ...`


@pytest.fixture
def bg(cluster: LocalCluster, namespace: str) -> Bg:
    def run(*args: str, kubeconfig: Path | None = None) -> Outcome:
        return execute(
            [*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(kubeconfig or cluster.kubeconfig)]
        )

    return run


def versions(kube: Client, namespace: str) -> dict[str, str | None]:
    """resourceVersion of every object bluegreen may write for app `shop` (None: absent)."""
    found: dict[str, str | None] = {}
    for kind, names in (
        (Service, ("shop", "shop-preview")),
        (Deployment, ("shop-blue", "shop-green")),
        (Lease, ("bluegreen-shop",)),
    ):
        for name in names:
            try:
                obj: dict[str, Any] = kube.get(kind, name, namespace=namespace).to_dict()  # type: ignore[attr-defined]
                found[f"{kind.__name__}/{name}"] = obj["metadata"]["resourceVersion"]
            except ApiError:
                found[f"{kind.__name__}/{name}"] = None
    return found


def selector_color(kube: Client, namespace: str, name: str = "shop") -> str:
    svc = kube.get(Service, name, namespace=namespace).to_dict()
    return str(svc["spec"]["selector"]["bluegreen.io/color"])


def service_annotations(kube: Client, namespace: str) -> dict[str, str]:
    return dict(kube.get(Service, "shop", namespace=namespace).to_dict()["metadata"].get("annotations") or {})


def deployment_dict(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(Deployment, name, namespace=namespace).to_dict()
    return found


def green_pods(kube: Client, namespace: str) -> set[str]:
    return ready_pod_ips(kube, namespace, {"app.kubernetes.io/name": "shop", "bluegreen.io/color": "green"})


# -- the happy path ---------------------------------------------------------------------------------


def test_release_deploys_to_idle_then_switches_and_endpoints_list_exactly_the_new_pods(
    bg: Bg, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=3, image="registry.local/shop:1.0")
    blue_version = deployment_dict(kube, namespace, "shop-blue")["metadata"]["resourceVersion"]

    outcome = bg("release", "--image", "registry.local/shop:2.0", *QUICK)

    assert outcome.exit_code == 0, outcome.error
    result = outcome.result
    assert result is not None
    assert (result.result, result.active_color, result.previous_color) == ("switched", "green", "blue")
    assert result.api_ms is not None and result.converged_ms is not None
    green = kube.get(Deployment, "shop-green", namespace=namespace)
    assert green.spec and green.spec.template.spec
    assert [c.image for c in green.spec.template.spec.containers] == ["registry.local/shop:2.0"]
    assert green.spec.replicas == 3
    assert endpoint_ips(kube, namespace, "shop") == green_pods(kube, namespace)
    # The preview follows the candidate: deploy left it on green, and the switch does not write it.
    assert selector_color(kube, namespace, "shop-preview") == "green"
    # Blue, the rollback target, was not touched.
    assert kube.get(Deployment, "shop-blue", namespace=namespace).metadata.resourceVersion == blue_version  # type: ignore[union-attr]


def test_switch_records_history_annotations_and_an_event(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop")
    assert bg("switch", "--to", "green", "--reason", "release 2.0").exit_code == 0

    found = service_annotations(kube, namespace)
    assert found["bluegreen.io/active-color"] == "green"
    assert found["bluegreen.io/previous-color"] == "blue"
    (entry,) = json.loads(found["bluegreen.io/history"])
    assert (entry["from"], entry["to"], entry["reason"]) == ("blue", "green", "release 2.0")
    assert entry["timings_ms"]["converged_ms"] >= entry["timings_ms"]["api_ms"] > 0
    # Read through core/v1: lightkube cannot decode events.k8s.io lists holding controllers' events.
    notes = [e.message for e in kube.list(Event, namespace=namespace) if e.involvedObject.name == "shop"]
    assert any("from blue to green" in (n or "") for n in notes)


def test_history_keeps_the_newest_twenty(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    for i in range(21):
        assert bg("switch", "--to", ("green", "blue")[i % 2]).exit_code == 0
    history = json.loads(service_annotations(kube, namespace)["bluegreen.io/history"])
    assert len(history) == 20
    assert history[0]["to"] == "green"  # 21 moves from blue end on green


def test_switch_when_already_there_changes_nothing(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop")
    before = versions(kube, namespace)
    outcome = bg("switch", "--to", "blue")
    assert outcome.exit_code == 0
    assert outcome.result is not None and outcome.result.result == "noop"
    assert versions(kube, namespace) == before


def test_dry_run_is_validated_by_the_apiserver_and_changes_nothing(
    bg: Bg, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop")
    before = versions(kube, namespace)
    for args in (
        ("switch", "--to", "green", "--dry-run"),
        ("deploy", "--image", "registry.local/shop:3.0", "--dry-run"),
    ):
        outcome = bg(*args)
        assert outcome.exit_code == 0, outcome.error
        assert outcome.result is not None and outcome.result.result == "planned"
        assert outcome.result.changes
    assert versions(kube, namespace) == before


def test_rollback_returns_traffic_and_keeps_the_other_colour_running(
    bg: Bg, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    assert bg("release", "--image", "registry.local/shop:2.0", *QUICK).exit_code == 0

    outcome = bg("rollback", "--reason", "error rate up")

    assert outcome.exit_code == 0, outcome.error
    assert outcome.result is not None and outcome.result.result == "rolled-back"
    assert selector_color(kube, namespace) == "blue"
    assert deployment_dict(kube, namespace, "shop-green")["spec"]["replicas"] == 2
    entry = json.loads(service_annotations(kube, namespace)["bluegreen.io/history"])[0]
    assert (entry["action"], entry["reason"]) == ("rollback", "error rate up")


def test_retire_scales_the_idle_colour_down_and_rollback_brings_it_back(
    bg: Bg, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    assert bg("switch", "--to", "green").exit_code == 0
    assert bg("retire", "--after", "0s").exit_code == 0
    assert deployment_dict(kube, namespace, "shop-blue")["spec"]["replicas"] == 0

    outcome = bg("rollback")

    assert outcome.exit_code == 0, (outcome.error, outcome.result and outcome.result.messages)
    assert selector_color(kube, namespace) == "blue"
    assert len(endpoint_ips(kube, namespace, "shop")) == 2


def test_init_adopts_an_app_with_ready_endpoints_at_every_moment(
    bg: Bg, kube: Client, namespace: str
) -> None:
    # The app as it was before bluegreen: Deployment `shop`, its pods and Service without a colour.
    plain = deployment("shop", "blue", replicas=2).to_dict()
    plain["metadata"]["name"] = "shop"
    for labels in (
        plain["metadata"]["labels"],
        plain["spec"]["selector"]["matchLabels"],
        plain["spec"]["template"]["metadata"]["labels"],
    ):
        labels.pop("bluegreen.io/color", None)
    kube.create(cast(Deployment, Deployment.from_dict(plain)), namespace=namespace)
    kube.create(service("shop", "shop", None), namespace=namespace)
    wait_available(kube, namespace, "shop")
    while not endpoint_ips(kube, namespace, "shop"):
        time.sleep(0.05)
    counts: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            counts.append(len(endpoint_ips(kube, namespace, "shop")))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        outcome = bg("init")
        time.sleep(0.5)  # the EndpointSlice controller settles after the selector change
    finally:
        stop.set()
        sampler.join()

    assert outcome.exit_code == 0, outcome.error
    assert selector_color(kube, namespace) == "blue"
    assert selector_color(kube, namespace, "shop-preview") == "green"
    assert min(counts) > 0, "the Service had no ready endpoints at some moment during init"
    assert endpoint_ips(kube, namespace, "shop") == ready_pod_ips(
        kube, namespace, {"app.kubernetes.io/name": "shop", "bluegreen.io/color": "blue"}
    )
    # Then the ordinary release works on the adopted app.
    assert bg("release", "--image", "registry.local/shop:2.0", *QUICK).exit_code == 0


# -- refusals and faults: one clear message, the documented exit code, nothing changed ---------------


def test_deploy_of_a_crashing_release_fails_with_the_pod_reason_and_leaves_live_alone(
    bg: Bg, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    live = versions(kube, namespace)

    outcome = bg("deploy", "--image", CRASHLOOP_IMAGE, "--timeout", "5s")

    assert outcome.exit_code == 1
    assert outcome.error is not None
    assert "rollout of shop-green" in outcome.error.message
    assert "CrashLoopBackOff (container app" in outcome.error.message
    # Green, the rollback target, is put back as it was rather than left half-deployed.
    green = deployment_dict(kube, namespace, "shop-green")
    assert [c["image"] for c in green["spec"]["template"]["spec"]["containers"]] == [
        "registry.local/shop:1.0"
    ]
    assert "put back" in outcome.error.remedy
    after = versions(kube, namespace)
    assert {k: after[k] for k in ("Service/shop", "Deployment/shop-blue")} == {
        k: live[k] for k in ("Service/shop", "Deployment/shop-blue")
    }
    assert selector_color(kube, namespace) == "blue"


def test_switch_refuses_a_colour_that_is_not_ready(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", idle_image=UNREADY_IMAGE, wait=False)
    wait_available(kube, namespace, "shop-blue")
    time.sleep(1)
    before = versions(kube, namespace)

    outcome = bg("switch", "--to", "green")

    assert outcome.exit_code == 1
    assert outcome.error is not None and "green is not ready" in outcome.error.message
    assert "readiness" in outcome.error.message
    assert "--force" in outcome.error.remedy
    assert versions(kube, namespace) == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("switch", "--to", "purple"), "unknown colour 'purple'"),
        (("deploy", "--image", "Not An Image!"), "not a valid image reference"),
        (("deploy",), "no image given"),
    ],
)
def test_bad_arguments_are_usage_errors_and_change_nothing(
    bg: Bg, kube: Client, namespace: str, args: tuple[str, ...], says: str
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    before = versions(kube, namespace)
    outcome = bg(*args)
    assert outcome.exit_code == 2
    assert outcome.error is not None and says in outcome.error.message
    assert versions(kube, namespace) == before


def test_missing_app_namespace_and_colour_each_say_what_to_do(
    bg: Bg, kube: Client, cluster: LocalCluster, namespace: str
) -> None:
    missing_ns = execute(
        ["status", "--app", "shop", "-n", f"{namespace}-nope", "--kubeconfig", str(cluster.kubeconfig)]
    )
    assert missing_ns.exit_code == 2
    assert (
        missing_ns.error is not None
        and "namespace" in missing_ns.error.message
        and "does not exist" in missing_ns.error.message
    )

    missing_app = bg("switch")
    assert missing_app.exit_code == 2
    assert missing_app.error is not None and "Service" in missing_app.error.message

    kube.create(deployment("shop", "blue", replicas=1), namespace=namespace)
    kube.create(service("shop", "shop", "blue"), namespace=namespace)
    wait_available(kube, namespace, "shop-blue")
    before = versions(kube, namespace)
    only_blue = bg("switch", "--to", "green")
    assert only_blue.exit_code == 2
    assert only_blue.error is not None and "only one colour" in only_blue.error.message
    assert "bluegreen deploy" in only_blue.error.remedy
    assert versions(kube, namespace) == before


def test_a_service_without_the_colour_label_points_to_init(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    kube.patch(
        Service,
        "shop",
        {"spec": {"selector": {"bluegreen.io/color": None}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    before = versions(kube, namespace)
    outcome = bg("switch")
    assert outcome.exit_code == 2
    assert outcome.error is not None and "bluegreen init" in outcome.error.remedy
    assert versions(kube, namespace) == before


def test_a_held_lock_names_its_holder_and_blocks_the_switch(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    now = datetime.now(UTC)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-shop"),
            spec=LeaseSpec(
                holderIdentity="run 4242 by alice", acquireTime=now, renewTime=now, leaseDurationSeconds=60
            ),
        ),
        namespace=namespace,
    )
    before = versions(kube, namespace)

    outcome = bg("switch", "--to", "green")

    assert outcome.exit_code == 1
    assert (
        outcome.error is not None
        and "run 4242 by alice" in outcome.error.message
        and "since" in outcome.error.message
    )
    assert "--wait-for-lock" in outcome.error.remedy
    assert versions(kube, namespace) == before


def test_wait_for_lock_proceeds_once_the_holder_releases(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    now = datetime.now(UTC)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-shop"),
            spec=LeaseSpec(holderIdentity="other run", renewTime=now, leaseDurationSeconds=60),
        ),
        namespace=namespace,
    )

    def release() -> None:
        time.sleep(1.5)
        kube.patch(
            Lease,
            "bluegreen-shop",
            {"spec": {"holderIdentity": None}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

    releaser = threading.Thread(target=release)
    releaser.start()
    outcome = bg("switch", "--to", "green", "--wait-for-lock", "30s")
    releaser.join()
    assert outcome.exit_code == 0, outcome.error
    assert selector_color(kube, namespace) == "green"


def test_an_expired_lock_is_taken_over(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-shop"),
            spec=LeaseSpec(holderIdentity="a run that died", renewTime=long_ago, leaseDurationSeconds=2),
        ),
        namespace=namespace,
    )
    # Expiry is judged by our clock: gone once seen unchanged for its 2s (tests/integration/test_lock.py).
    outcome = bg("switch", "--to", "green", "--wait-for-lock", "30s")
    assert outcome.exit_code == 0, outcome.error
    lease = kube.get(Lease, "bluegreen-shop", namespace=namespace)
    assert lease.spec is not None and not lease.spec.holderIdentity  # released after the run


def test_a_concurrent_change_is_a_conflict_never_a_blind_overwrite(
    kube: Client, cluster: LocalCluster, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    router = ServiceRouter(
        AppSpec(name="shop", namespace=namespace), connect(kubeconfig=str(cluster.kubeconfig))
    )
    state = router.read()
    # Someone else switches in between our read and our write.
    kube.patch(
        Service,
        "shop",
        {"spec": {"selector": {"bluegreen.io/color": "green"}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    from bluegreen.errors import ConflictError

    with pytest.raises(ConflictError):
        router.switch_to(Color.GREEN, state=state)


def test_an_unreachable_apiserver_is_reported_after_bounded_retries(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    config = json.loads(cluster.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens on port 1
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(json.dumps(config))
    started = time.monotonic()
    outcome = execute(["status", "--app", "shop", "-n", "default", "--kubeconfig", str(dead)])
    assert outcome.exit_code == 3
    assert outcome.error is not None and "did not answer" in outcome.error.message
    assert "cluster is up" in outcome.error.remedy
    assert time.monotonic() - started < 30  # bounded: it gives up rather than hanging


def test_status_shows_colours_images_and_the_last_switch(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    assert bg("release", "--image", "registry.local/shop:2.0", *QUICK).exit_code == 0
    outcome = bg("status")
    assert outcome.exit_code == 0
    result = outcome.result
    assert result is not None
    assert (result.active_color, result.previous_color) == ("green", "blue")
    assert result.details["colors"]["green"]["images"] == ["registry.local/shop:2.0"]
    assert result.details["colors"]["blue"]["ready"] == 2
    assert result.details["last_switch"]["to"] == "green"
    assert result.details["lock_holder"] is None
