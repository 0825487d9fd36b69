"""SIGTERM at the newer steps of a switch, rows of the same fault table as test_signals.py's:

- the undo of a switch that did not verify (`--router ingress --probe URL`, the URL answering blue
  only): signalled while the probe waits for green, and at the undo's write of the Ingress;
- the drain hook after a switch (`drain:` in bluegreen.yaml), signalled at its pods/proxy call. On
  the kwok cluster that call fails at once (the apiserver answers 403 "resolve_deny: denied
  destination" for a fake pod's address), so the FaultProxy signals as it arrives, before forwarding;
- the check that the target's colour Service lists ready endpoints (ObjectRouter.check_backend),
  signalled at its EndpointSlices read: once as the run's first switch, which creates the colour
  Services just before it, once with the colour Services already there.

Each must stop within 5 s with exit 143, leave the Lease free and the router and the history in
agreement, and the next run must work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.networking_v1 import Ingress

from bluegreen import history
from bluegreen.model import AppSpec
from bluegreen.routers._common import ensure_color_services
from tests.faults.harness import (
    LEDGER,
    Cli,
    Row,
    Scene,
    drop,
    ingress_traffic,
    kubeconfig_via,
    new_namespace,
    next_run,
    observe,
    run_cli,
    set_up,
    set_up_app,
    verdict,
)
from tests.faults.httpfaults import FaultProxy
from tests.faults.test_signals import cancel_at, within_bound
from tests.integration.routers.test_routers_ingress import ingress

pytestmark = pytest.mark.cluster

FAULT = "SIGTERM to the CLI"
INGRESS_WRITE = "PATCH /apis/networking.k8s.io/v1/namespaces/NS/ingresses/shop"
ENDPOINT_CHECK = "GET /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices"
DRAIN = "drain:\n  http: {path: /drain, port: 8080, method: POST}\n  timeout: 5s\n"


@pytest.fixture(scope="module")
def proxied_kubeconfig(
    cluster_kubeconfig: Path, fault_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return kubeconfig_via(
        cluster_kubeconfig, fault_proxy.port, tmp_path_factory.mktemp("steps") / "kubeconfig"
    )


@contextmanager
def answering_blue() -> Iterator[str]:
    """A loopback URL every answer of which says `X-Color: blue`: a probe through it never sees green,
    as when the proxy in front never picks up the switch."""

    class Blue(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("X-Color", "blue")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Blue)
    threading.Thread(target=server.serve_forever, name="answering-blue", daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def ingress_scene(kube: Client, kubeconfig: Path, *flags: str, group: Path | None = None) -> Scene:
    """Blue live behind each app's Ingress (named as the app, backend `<app>-blue`); the command: a
    switch to green (of app `shop`, or of the group of cart and web, each member moved by its Ingress,
    with its group file written in the directory `group`)."""
    namespace = new_namespace(kube, "term")
    scene = Scene("switch" if group is None else "group switch", namespace, kubeconfig, router="ingress")
    for app in scene.apps:
        set_up_app(kube, namespace, app, replicas=1)
        frontend = ingress(f"{app}-blue")
        frontend.metadata.name = app  # type: ignore[union-attr]
        kube.create(frontend, namespace=namespace)
    if group is not None:
        scene.config = group / f"{namespace}.yaml"
        members = "".join(f"      - {{app: {app}, router: ingress}}\n" for app in scene.apps)
        scene.config.write_text(
            f"groups:\n  - name: storefront\n    namespace: {namespace}\n    members:\n{members}"
        )
    scene.flags = ("--to", "green", *(() if group else ("--router", "ingress")), *flags)
    return scene


def written(kube: Client, scene: Scene) -> dict[str, str]:
    """The resourceVersions of what a switch writes: each app's Ingress, and its live Service (the history)."""
    versions: dict[str, str] = {}
    for app in scene.apps:
        frontend: dict[str, Any] = kube.get(Ingress, app, namespace=scene.namespace).to_dict()
        live: dict[str, Any] = kube.get(Service, app, namespace=scene.namespace).to_dict()
        versions[f"Ingress {app}"] = frontend["metadata"]["resourceVersion"]
        versions[f"Service {app}"] = live["metadata"]["resourceVersion"]
    return versions


def entries(kube: Client, scene: Scene) -> list[dict[str, Any]]:
    found = kube.get(Service, "shop", namespace=scene.namespace)
    return history.parse(dict((found.metadata.annotations if found.metadata else None) or {}))


def back_to_blue(kube: Client, scene: Scene, row: Row) -> None:
    """The next run after a switch that did not verify: `switch --to blue`, which must work."""
    argv = ["switch", "--to", "blue", "--app", "shop", "-n", scene.namespace, "--router", "ingress"]
    run = run_cli([*argv, "--wait-for-lock", "90s"], scene.kubeconfig)
    observed = observe(kube, scene, lease_must_be_free=True)
    row.next_run = f"switch --to blue: exit {run.exit_code}, {observed.color}"
    if run.exit_code != 0:
        row.problems.append(f"next run: {run.describe()}")
    row.problems += [f"after the next run: {p}" for p in observed.problems]
    if observed.color != "blue":
        row.problems.append(f"after `switch --to blue` the Ingress routes to {observed.color}")


def settled(row: Row) -> None:
    assert row.consistent, " | ".join(row.cells())


def test_sigterm_while_the_probe_waits_for_a_switch_that_never_shows(
    kube: Client, cluster_kubeconfig: Path
) -> None:
    """Cut short, the verification is not undone (the signal asked to stop, not to move traffic
    again): the Ingress stays on green and the history says green, not verified."""
    row = LEDGER.add(
        Row(FAULT, "switch --router ingress --probe", "probe waiting for green, before the undo")
    )
    with answering_blue() as url:
        scene = ingress_scene(
            kube, cluster_kubeconfig, "--probe", url, "--timeout", "60s", "--probe-after", "0s"
        )
        cli = Cli(scene.args(), scene.kubeconfig)
        try:
            deadline = time.monotonic() + 60
            while (
                ingress_traffic(kube, scene.namespace, "shop")[0] != "green" and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            time.sleep(1.0)  # the probe is waiting: 60 s of answers from blue ahead
            if cli.process.poll() is not None:
                row.problems.append("the run ended before the signal: it was not waiting")
            cli.signal()
            run = cli.wait()
        finally:
            cli.process.kill()
    verdict(row, run, observe(kube, scene, lease_must_be_free=True), scene, expect={143})
    within_bound(row, cli, run)
    newest = (entries(kube, scene) or [{}])[0]
    if newest.get("to") != "green" or newest.get("verified") is not False:
        row.problems.append(f"the history's newest entry is not the switch to green, not verified: {newest}")
    back_to_blue(kube, scene, row)
    drop(kube, scene)
    settled(row)


def test_sigterm_at_the_undo_of_a_switch_that_did_not_verify(
    kube: Client, cluster_kubeconfig: Path, proxied_kubeconfig: Path, fault_proxy: FaultProxy
) -> None:
    """The undo is the switch's own step (shielded): it completes, the history records it, then the
    run stops; traffic is back on blue as the history says."""
    row = LEDGER.add(
        Row(FAULT, "switch --router ingress --probe", "the undo's write of the Ingress in flight")
    )
    with answering_blue() as url:
        scene = ingress_scene(
            kube, cluster_kubeconfig, "--probe", url, "--timeout", "4s", "--probe-after", "0s"
        )
        cancel_at(kube, scene, proxied_kubeconfig, fault_proxy, INGRESS_WRITE, 2, row)
    newest = (entries(kube, scene) or [{}])[0]
    if newest.get("action") != "undo" or newest.get("to") != "blue":
        row.problems.append(f"the history's newest entry is not the undo to blue: {newest}")
    back_to_blue(kube, scene, row)
    drop(kube, scene)
    settled(row)


def test_sigterm_during_the_drain_hook_leaves_the_switch_recorded(
    kube: Client, cluster_kubeconfig: Path, proxied_kubeconfig: Path, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    row = LEDGER.add(Row(FAULT, "switch with drain:", "the drain hook's pods/proxy call in flight"))
    scene = set_up(kube, "switch", cluster_kubeconfig, tmp_path, "term")  # blue live, green the candidate
    config = tmp_path / "bluegreen.yaml"
    config.write_text(DRAIN)
    scene.flags = ("--config", str(config), "--force")  # --force: this bluegreen.yaml has no gate to pass
    pods = kube.list(Pod, namespace=scene.namespace, labels={"bluegreen.io/color": "blue"})
    names = sorted(p.metadata.name for p in pods if p.metadata and p.metadata.name)
    step = f"POST /api/v1/namespaces/NS/pods/{names[0]}:8080/proxy/drain"
    cancel_at(kube, scene, proxied_kubeconfig, fault_proxy, step, 1, row)
    if row.exit_code == 143 and observe(kube, scene).color != "green":
        row.problems.append("cancelled in the drain hook, the switch did not stay on green")
    recorded = len(entries(kube, scene))
    next_run(kube, scene, row)
    if len(entries(kube, scene)) != recorded:
        row.problems.append("the next run was not a noop: it recorded another switch")
    drop(kube, scene)
    settled(row)


@pytest.mark.parametrize(
    ("command", "services"),
    [("switch", "created by this run"), ("switch", "already there"), ("group switch", "created by this run")],
)
def test_sigterm_at_the_endpoint_check_writes_nothing(
    kube: Client,
    cluster_kubeconfig: Path,
    proxied_kubeconfig: Path,
    fault_proxy: FaultProxy,
    tmp_path: Path,
    command: str,
    services: str,
) -> None:
    row = LEDGER.add(
        Row(
            FAULT,
            f"{command} --router ingress",
            f"the endpoint check's read in flight (colour Services {services})",
        )
    )
    scene = ingress_scene(kube, cluster_kubeconfig, group=tmp_path if command == "group switch" else None)
    if services == "already there":
        ensure_color_services(kube, AppSpec(name="shop", namespace=scene.namespace))
    before = written(kube, scene)
    # The first EndpointSlices read in a trace of either command is the check, under the Lease(s).
    cancel_at(kube, scene, proxied_kubeconfig, fault_proxy, ENDPOINT_CHECK, 1, row)
    after = written(kube, scene)
    row.problems += [f"{what} was written after the signal" for what in before if before[what] != after[what]]
    next_run(kube, scene, row)
    drop(kube, scene)
    settled(row)
