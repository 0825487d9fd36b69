"""GitOps coexistence on the real cluster: a selector written back after the switch is named as such
(and who wrote it), not reported as "did not converge"; status says which objects Argo CD or Flux manage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from lightkube import ApiError, Client
from lightkube.config.kubeconfig import KubeConfig
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen import report
from bluegreen.cli import Outcome, execute
from hack.localcluster import LocalCluster
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster
Bg = Callable[..., Outcome]
KEY = "bluegreen.io/color"


@pytest.fixture
def bg(cluster: LocalCluster, namespace: str) -> Bg:
    def run(*args: str) -> Outcome:
        return execute([*args, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)])

    return run


@contextmanager
def reverting(kubeconfig: Path, namespace: str, *, back_to: str, manager: str) -> Iterator[list[str]]:
    """A stand-in for a GitOps controller's sync: as soon as the Service `shop` selects anything but
    `back_to`, write `back_to` again with field manager `manager`. Yields the colours it reverted
    from; bounded (it stops on leaving, or after 60 s)."""
    kube = Client(KubeConfig.from_file(kubeconfig), field_manager=manager)  # its own client: its own thread
    reverted: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            selector = kube.get(Service, "shop", namespace=namespace).spec.selector or {}  # type: ignore[union-attr]
            if selector.get(KEY) != back_to:
                kube.patch(
                    Service,
                    "shop",
                    {"spec": {"selector": {KEY: back_to}}},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
                reverted.append(selector.get(KEY, ""))
            time.sleep(0.002)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield reverted
    finally:
        stop.set()
        thread.join(timeout=10)


def tracked_by_argo_cd(kube: Client, namespace: str) -> None:
    """The live Service as Argo CD's Application `shop-prod` leaves it: its tracking annotation."""
    kube.patch(
        Service,
        "shop",
        {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "shop-prod:/Service:shop/shop"}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


def test_a_selector_written_back_after_the_switch_is_named_with_its_writer(
    bg: Bg, kube: Client, cluster: LocalCluster, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    tracked_by_argo_cd(kube, namespace)
    started = time.monotonic()
    with reverting(cluster.kubeconfig, namespace, back_to="blue", manager="argocd-controller") as reverted:
        outcome = bg("switch", "--to", "green")
    took = time.monotonic() - started

    assert reverted == ["green"], "the stand-in controller wrote the selector back once"
    result = outcome.result
    assert result is not None and outcome.exit_code != 0
    assert result.result == "failed"
    said = "\n".join(result.messages)
    assert (
        "was changed back to bluegreen.io/color=blue by argocd-controller (Argo CD, Application shop-prod)"
        in said
    )
    assert "docs/gitops.md" in said
    assert "did not converge" not in said
    assert result.active_color == "blue"  # where traffic is, not where our write put it
    assert result.details["reverted"] == {"to": "blue", "by": "argocd-controller"}
    assert took < 30, "named at once, not after the 60 s verification timeout"
    # Said before the write too: the Service carries Argo CD's tracking annotation.
    assert result.details["gitops"]["service"]["tool"] == "Argo CD"


def test_status_says_which_objects_argo_cd_and_flux_manage(bg: Bg, kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    tracked_by_argo_cd(kube, namespace)
    kube.patch(
        Deployment,
        "shop-green",
        {
            "metadata": {
                "labels": {
                    "kustomize.toolkit.fluxcd.io/name": "apps",
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                }
            }
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )

    outcome = bg("status")

    assert outcome.exit_code == 0, outcome.error
    result = outcome.result
    assert result is not None
    managed = result.details["gitops"]
    assert (managed["service"]["tool"], managed["service"]["owner"]) == ("Argo CD", "Application shop-prod")
    assert (managed["green"]["tool"], managed["green"]["owner"]) == ("Flux", "Kustomization flux-system/apps")
    assert "blue" not in managed
    text = report.text(result)
    assert "Service shop is managed by Argo CD Application shop-prod" in text
    assert "Deployment shop-green is managed by Flux Kustomization flux-system/apps" in text


def test_a_flux_service_kept_off_by_its_ssa_annotation_switches_and_verifies_as_usual(
    bg: Bg, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=1)
    kube.patch(
        Service,
        "shop",
        {
            "metadata": {
                "labels": {
                    "kustomize.toolkit.fluxcd.io/name": "apps",
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                },
                "annotations": {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"},
            }
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )

    outcome = bg("switch", "--to", "green")

    assert outcome.exit_code == 0, outcome.error
    result = outcome.result
    assert result is not None and result.result == "switched" and result.active_color == "green"
    assert result.details["gitops"]["service"]["protected"] == "kustomize.toolkit.fluxcd.io/ssa: IfNotPresent"
    assert any("keeps it from reverting the selector" in m for m in result.messages)


def test_a_selector_written_back_during_the_watch_ends_it_naming_the_writer_without_a_rollback(
    bg: Bg, kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    """A sync that comes later than the switch's own look (Flux's interval is minutes): the watch,
    which reads the router each round, ends `moved` (exit 1) naming who wrote the selector back, and
    does not roll back: traffic is not on the colour it would roll back from."""
    create_app(kube, namespace, "shop", replicas=1)
    assert bg("switch", "--to", "green").exit_code == 0
    config = tmp_path / "bluegreen.yaml"
    config.write_text("checks: [{name: pods, kind: kubernetes}]\n")
    sync = Client(KubeConfig.from_file(cluster.kubeconfig), field_manager="kustomize-controller")

    def watching() -> bool:
        """The watch holds the app's Lease: it has read where traffic is (green)."""
        try:
            spec = sync.get(Lease, "bluegreen-shop", namespace=namespace).spec
        except ApiError:  # not there yet
            return False
        return bool(spec and spec.holderIdentity)

    def write_back_later() -> None:
        deadline = time.monotonic() + 20
        while not watching() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # a round or so into the watch
        sync.patch(
            Service,
            "shop",
            {"spec": {"selector": {KEY: "blue"}}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

    later = threading.Thread(target=write_back_later, daemon=True)
    later.start()
    outcome = bg("watch", "--config", str(config), "--duration", "30s", "--interval", "1s")
    later.join(timeout=10)

    result = outcome.result
    assert result is not None and outcome.exit_code == 1, outcome.error
    assert (result.result, result.details["watch"]["result"]) == ("failed", "moved")
    said = "\n".join(result.messages)
    assert "changed back to bluegreen.io/color=blue by kustomize-controller (Flux)" in said, said
    assert result.active_color == "blue"
    assert not result.details["watch"]["rolled_back"]
    assert result.details["watch"]["duration_seconds"] < 25, "ended at once, not at the watch's end"
    history = bg("status", "-o", "json")
    assert history.result is not None
    newest = history.result.details["history"][0]
    assert (newest["action"], newest["to"]) == ("switch", "green"), "no rollback was recorded"
