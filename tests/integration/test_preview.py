"""The preview Service follows the candidate (Argo Rollouts' semantics), on the real cluster.

`deploy` points `shop-preview` at the colour it deploys to; the gate, which tests the idle colour
through it, points it there first when it selects the live colour; `switch` and `rollback` never write
it. Each story reads what a user would: the preview's selector, where its EndpointSlices send
requests, and whether it was written at all (its resourceVersion).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Service

from bluegreen.cli import Outcome, execute
from hack.localcluster import LocalCluster
from tests.support.apps import create_app, endpoint_ips, ready_pod_ips

pytestmark = pytest.mark.cluster

COLOR = "bluegreen.io/color"

# A smoke test as a user writes one: it reaches the app through the preview Service. It reports
# which colour's pods the preview's EndpointSlices send it to, and fails if any is the live colour's.
SMOKE = """
import sys
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Pod
from lightkube.resources.discovery_v1 import EndpointSlice

kubeconfig, namespace, color = sys.argv[1:4]
live = "green" if color == "blue" else "blue"
kube = Client(KubeConfig.from_file(kubeconfig), namespace=namespace)
slices = kube.list(EndpointSlice, labels={"kubernetes.io/service-name": "shop-preview"})
reached = {a for s in slices for e in s.endpoints or [] for a in e.addresses}
def ips(c):
    return {p.status.podIP for p in kube.list(Pod, labels={"bluegreen.io/color": c}) if p.status and p.status.podIP}
print(f"reaches {len(reached & ips(color))} {color} pod(s), {len(reached & ips(live))} {live} pod(s)")
sys.exit(1 if not reached or reached & ips(live) else 0)
"""


class App:
    def __init__(self, kube: Client, cluster: LocalCluster, namespace: str) -> None:
        self.kube, self.cluster, self.namespace = kube, cluster, namespace

    def bg(self, *args: str) -> Outcome:
        return execute(
            [*args, "--app", "shop", "-n", self.namespace, "--kubeconfig", str(self.cluster.kubeconfig)]
        )

    def ok(self, *args: str) -> Outcome:
        outcome = self.bg(*args)
        assert outcome.exit_code == 0, (args, outcome.error, outcome.result and outcome.result.messages)
        assert outcome.result is not None
        return outcome

    def preview(self) -> tuple[str, str]:
        """(the colour the preview Service selects, its resourceVersion)."""
        svc = self.kube.get(Service, "shop-preview", namespace=self.namespace)
        assert svc.spec is not None and svc.spec.selector is not None and svc.metadata is not None
        return svc.spec.selector[COLOR], str(svc.metadata.resourceVersion)

    def pods(self, color: str) -> set[str]:
        return ready_pod_ips(self.kube, self.namespace, {"app.kubernetes.io/name": "shop", COLOR: color})

    def preview_reaches_only(self, color: str) -> bool:
        """Whether the preview's EndpointSlices list exactly `color`'s ready pods (and some), given
        the EndpointSlice controller a few seconds to follow the pods' readiness."""
        deadline = time.monotonic() + 10
        while True:
            want = self.pods(color)
            if want and endpoint_ips(self.kube, self.namespace, "shop-preview") == want:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


@pytest.fixture
def app(kube: Client, cluster: LocalCluster, namespace: str) -> App:
    create_app(kube, namespace, "shop", replicas=2, image="registry.local/shop:1.0")  # preview on green
    return App(kube, cluster, namespace)


def preview_changes(outcome: Outcome) -> list[str]:
    assert outcome.result is not None
    return [c for c in outcome.result.changes if "shop-preview" in c]


def test_switch_leaves_the_preview_on_the_new_live_colour_and_rollback_on_the_rejected_one(app: App) -> None:
    _, before = app.preview()

    switched = app.ok("switch", "--to", "green")

    # Both Services select the new live colour until the next deploy; the preview was not written.
    assert app.preview() == ("green", before)
    assert preview_changes(switched) == []

    rolled = app.ok("rollback", "--reason", "bad release")

    # The rejected release keeps running and can still be examined through the preview.
    assert rolled.result is not None and rolled.result.active_color == "blue"
    assert app.preview() == ("green", before)
    assert preview_changes(rolled) == []
    assert app.preview_reaches_only("green")


def test_deploy_points_the_preview_at_the_colour_it_deploys_and_a_re_run_does_not_write_it(
    app: App,
) -> None:
    app.ok("switch", "--to", "green")  # the preview now selects live green

    deployed = app.ok("deploy", "--image", "registry.local/shop:2.0")

    assert deployed.result is not None and deployed.result.details["idle_color"] == "blue"
    color, version = app.preview()
    assert color == "blue"
    assert preview_changes(deployed) == [f"Service {app.namespace}/shop-preview: selector {COLOR}=blue"]
    assert app.preview_reaches_only("blue")

    again = app.ok("deploy", "--image", "registry.local/shop:2.0")

    assert app.preview() == ("blue", version)
    assert preview_changes(again) == []


def test_a_dry_run_deploy_lists_the_preview_write_and_makes_none(app: App) -> None:
    app.ok("switch", "--to", "green")
    before = app.preview()

    planned = app.ok("deploy", "--image", "registry.local/shop:2.0", "--dry-run")

    assert planned.result is not None and planned.result.result == "planned"
    assert preview_changes(planned) == [f"Service {app.namespace}/shop-preview: selector {COLOR}=blue"]
    assert app.preview() == before


def test_deploy_of_an_app_without_a_preview_service_works(app: App) -> None:
    app.kube.delete(Service, "shop-preview", namespace=app.namespace)

    deployed = app.ok("deploy", "--image", "registry.local/shop:2.0")

    assert deployed.result is not None and deployed.result.result == "deployed"
    assert preview_changes(deployed) == []


def test_gate_after_a_switch_points_the_preview_at_the_idle_colour_before_its_smoke_test(
    app: App, tmp_path: Path
) -> None:
    app.ok("switch", "--to", "green")  # no deploy since: the preview selects live green
    smoke = tmp_path / "smoke.py"
    smoke.write_text(SMOKE)
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        "version: 1\nchecks:\n  - name: smoke\n    kind: command\n"
        f'    command: ["{sys.executable}", "{smoke}", "{app.cluster.kubeconfig}", "{{{{namespace}}}}", '
        '"{{color}}"]\n'
    )

    gated = app.ok("gate", "--config", str(config), "--min-healthy", "0s", "--interval", "0.2s")

    assert gated.result is not None and gated.result.result == "passed"
    (smoke_test,) = [c for r in gated.result.details["gate"]["rounds"] for c in r["checks"]]
    assert smoke_test["phase"] == "successful", smoke_test
    assert smoke_test["detail"] == "reaches 2 blue pod(s), 0 green pod(s)"
    color, version = app.preview()
    assert color == "blue"
    assert preview_changes(gated) == [f"Service {app.namespace}/shop-preview: selector {COLOR}=blue"]
    assert any("pointed at blue before measuring" in m for m in gated.result.messages)

    again = app.ok("gate", "--config", str(config), "--min-healthy", "0s", "--interval", "0.2s")

    assert app.preview() == ("blue", version)
    assert preview_changes(again) == []


def test_gate_refuses_at_once_when_the_idle_colour_has_nothing_to_point_the_preview_at(
    app: App, tmp_path: Path
) -> None:
    """After a switch with no deploy since, the idle colour retired to zero: the gate says so at once
    (exit 1, naming what to do) instead of pointing the preview at no pods, and writes nothing."""
    app.ok("switch", "--to", "green")
    app.ok("retire")
    before = app.preview()
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        f'version: 1\nchecks:\n  - name: smoke\n    kind: command\n    command: ["{sys.executable}", "-c", "pass"]\n'
    )
    gated = app.bg("gate", "--config", str(config), "--min-healthy", "0s", "--interval", "0.2s")
    assert gated.exit_code == 1
    assert "blue is not fully available" in str(gated.error) and "bluegreen deploy" in str(gated.error)
    assert app.preview() == before  # still on live green, not written
