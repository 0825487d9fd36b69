"""`make demo`: a whole blue-green release on the local cluster, as a user would run it.

It sets up the app a team has before bluegreen (Deployment `shop` and its Service in namespace
`demo`), adopts it, releases 2.0 through deploy -> gate -> switch -> watch, shows that a crashing
release never reaches traffic, rolls back, then runs a switch as a GitHub Action step (the image's
entrypoint, with its outputs and job summary), and prints each command with what it answered.

Where the machine allows (root, network namespaces and the real node built by `make deps`) the app
runs as real pods on a real node (hack/realnode.py: kubelet, containerd, runc, CNI and kube-proxy in
namespaces of their own), with a live load of new connections at the Service's ClusterIP through the
real kube-proxy from before the adoption to the end; each switch reports when traffic moved, and the
demo ends with the total of requests and failures. Where the real node cannot run it says why in one
line and falls back to stand-in pods: the traffic rig (hack/traffic_rig.py: kube-proxy and a server
per pod), or, without root and namespaces, the local cluster without traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace

from bluegreen.model import Result
from bluegreen.report import text
from bluegreen.traffic_probe import Sample, TrafficProbe, summarize, write_time_of
from hack import realnode
from hack.traffic_rig import Rig, RigError, RigUnavailable, unavailable
from tests.support.apps import CRASHLOOP_IMAGE, deployment, service, wait_available
from tests.support.traffic import cluster_url, wait_answering

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "demo"
APP = "shop"
# The seed's gate is 5 minutes healthy and a 10-minute watch; the demo keeps the same checks, shorter.
QUICK = ["--min-healthy", "5s", "--interval", "1s", "--duration", "5s"]


def reset_namespace(kube: Client) -> None:
    try:
        kube.delete(Namespace, NAMESPACE)
    except ApiError as error:
        if error.status.code != 404:
            raise
    deadline = time.monotonic() + 60  # a deleted namespace lingers while its objects go
    while time.monotonic() < deadline:
        try:
            kube.get(Namespace, NAMESPACE)
        except ApiError:
            break
        time.sleep(0.2)
    kube.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))


@dataclass(frozen=True)
class Pods:
    """What the app runs as: stand-in pods (kwok's, served by the traffic rig) or real ones."""

    kind: str
    releases: dict[str, str]  # the demo's release -> its image
    crash: str  # an image whose pods crash
    ready_timeout: float  # seconds a rollout of the plain app may take

    def template(self, image: str) -> dict[str, Any]:
        """Deployment `shop`, labelled without colours: an app before bluegreen."""
        before = deployment(APP, "blue", replicas=3, image=image).to_dict()
        before["metadata"]["name"] = APP
        for labels in (
            before["metadata"]["labels"],
            before["spec"]["selector"]["matchLabels"],
            before["spec"]["template"]["metadata"]["labels"],
        ):
            labels.pop("bluegreen.io/color", None)
        if self.kind == "real":
            # The documented drain settings (docs/real-pods.md): readiness probe, preStop 5 s, grace 30 s;
            # the app answers with its colour label (empty before bluegreen adopts it) in X-Color.
            pod = before["spec"]["template"]["spec"]
            pod.update(
                automountServiceAccountToken=False, enableServiceLinks=False, terminationGracePeriodSeconds=30
            )
            pod["containers"][0].update(
                env=[
                    {
                        "name": "COLOR",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['bluegreen.io/color']"}},
                    },
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                readinessProbe={"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
                lifecycle={"preStop": {"sleep": {"seconds": 5}}},
            )
            before["spec"]["strategy"] = {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            }
            before["spec"]["progressDeadlineSeconds"] = 120
        return before


STAND_IN = Pods(
    kind="stand-in",
    releases={r: f"registry.local/shop:{r}" for r in ("1.0", "2.0", "3.0")},
    crash=CRASHLOOP_IMAGE,
    ready_timeout=60,
)
REAL = Pods(
    kind="real",
    # v3 of the node's test app answers 500 (the real-node tests' bad release): 3.0 is v4.
    releases={
        "1.0": f"{realnode.APP_IMAGE}:v1",
        "2.0": f"{realnode.APP_IMAGE}:v2",
        "3.0": f"{realnode.APP_IMAGE}:v4",
    },
    crash=realnode.CRASH_IMAGE,
    ready_timeout=180,
)


def plain_app(kube: Client, pods: Pods) -> None:
    """Deployment `shop` and Service `shop`, labelled without colours: an app before bluegreen."""
    before = pods.template(pods.releases["1.0"])
    kube.create(cast(Deployment, Deployment.from_dict(before)), namespace=NAMESPACE)
    kube.create(service(APP, APP, None), namespace=NAMESPACE)
    wait_available(kube, NAMESPACE, APP, timeout=pods.ready_timeout)


class Traffic:
    """The live load of the traffic rig: new connections at the Service's ClusterIP all along."""

    RATE = 50.0

    def __init__(self, url: str) -> None:
        self.url = url
        self.probe = TrafficProbe(url, rate=self.RATE, max_requests=5000, max_seconds=5000 / self.RATE)
        self.moves: list[tuple[str, float | None]] = []

    def moved(self, label: str, result: Result) -> None:
        """After a write: wait past kube-proxy's sync, then say when traffic moved, as a client saw it."""
        # init has no switch; its write is the Service's selector taking the colour label
        adopted = [
            datetime.fromisoformat(t).timestamp()
            for t, e in result.timeline
            if e.startswith("Service selects")
        ]
        write = write_time_of(result) or (adopted[0] if adopted else None)
        if write is None or not result.active_color:
            return
        time.sleep(2.5)
        window = [s for s in list(self.probe.samples) if s.sent > write - 2]
        cut = summarize(window, write_time=write, old=result.previous_color, new=result.active_color)
        self.moves.append((label, cut.cutover_ms))
        print(
            f"(live traffic: {cut.requests} requests around the write, {cut.failed} failed; "
            f"{result.active_color} answered alone from {cut.cutover_ms} ms after the write)",
            flush=True,
        )

    def end(self) -> None:
        samples: list[Sample] = self.probe.stop()
        failed = sum(1 for s in samples if s.failed)
        moves = ", ".join(f"{ms:.0f} ms ({label})" for label, ms in self.moves if ms is not None)
        print(
            f"\n== live traffic: {len(samples)} requests, {failed} failed, traffic moved {moves} after the write"
        )


def bluegreen(kubeconfig: Path, *args: str, expect: int = 0, traffic: Traffic | None = None) -> None:
    command = ["bluegreen", *args, "--app", APP, "-n", NAMESPACE]
    print(f"\n$ {shlex.join(command)}", flush=True)
    # JSON on stdout (progress still streams on stderr), shown as the CLI's own text: the demo also
    # needs the write's timestamp from the timeline.
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "bluegreen"),
            *args,
            "--app",
            APP,
            "-n",
            NAMESPACE,
            "--kubeconfig",
            str(kubeconfig),
            "--output",
            "json",
        ],
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    payload = json.loads(done.stdout) if done.stdout.strip() else {}
    result = None
    if "result" in payload:
        data = payload["result"]
        result = Result(**{**data, "timeline": [(e["time"], e["event"]) for e in data["timeline"]]})
        print(text(result))
        sys.stdout.flush()
    if "error" in payload:
        print(f"error: {payload['error']['message']}\n  what to do: {payload['error']['remedy']}")
    if done.returncode != expect:
        sys.exit(f"demo: expected exit code {expect}, got {done.returncode}")
    print(f"(exit code {done.returncode})", flush=True)
    if traffic and result:
        traffic.moved(args[0], result)


def action_step(kubeconfig: Path, folder: Path, **inputs: str) -> Result | None:
    """One step of the GitHub Action, run as the runner runs it: inputs in the environment,
    outputs and the job summary in files (the Docker image runs this same entrypoint)."""
    folder.mkdir(parents=True, exist_ok=True)
    output, summary = folder / "outputs", folder / "summary.md"
    output.write_text("")
    summary.write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "BLUEGREEN_KUBECONFIG": kubeconfig.read_text(),
        "BLUEGREEN_APP": APP,
        "BLUEGREEN_NAMESPACE": NAMESPACE,
        **{"BLUEGREEN_" + key.upper(): value for key, value in inputs.items()},
    }
    print(f"\n$ uses: ./  with: {' '.join(f'{k}={v!r}' for k, v in inputs.items())}", flush=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "entrypoint.py")], env=env, check=False, capture_output=True, text=True
    )
    # A runner swallows `::add-mask::` lines; a terminal would show the secret they carry.
    print(
        "".join(line for line in done.stdout.splitlines(keepends=True) if not line.startswith("::add-mask::"))
    )
    print(done.stderr, end="", file=sys.stderr)
    if done.returncode != 0:
        sys.exit(f"demo: the action step failed with exit code {done.returncode}")
    print(f"\n-- the job summary ({summary}):\n{summary.read_text()}", flush=True)
    return phase_result(output.read_text())


def phase_result(outputs: str) -> Result | None:
    """The Result inside the step's `report` output (written as `report<<DELIMITER`)."""
    lines = outputs.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("report<<"):
            data = json.loads(lines[index + 1]).get("phase")
            if data:
                return Result(**{**data, "timeline": [(e["time"], e["event"]) for e in data["timeline"]]})
    return None


def demo(kubeconfig: Path, *, live: bool, pods: Pods = STAND_IN) -> int:
    kube = Client(KubeConfig.from_file(kubeconfig), field_manager="bluegreen-demo")
    image = pods.releases

    print(
        f"== the app before bluegreen: Deployment {APP} ({image['1.0']}, {pods.kind} pods) "
        f"and Service {APP} in {NAMESPACE}"
    )
    reset_namespace(kube)
    plain_app(kube, pods)
    traffic = None
    if live:
        url = cluster_url(kube, NAMESPACE, APP)
        wait_answering(url, "", timeout=pods.ready_timeout)
        traffic = Traffic(url)
        traffic.probe.start()
        print(f"== live traffic: {Traffic.RATE:.0f} new connections a second at {url} from now to the end")

    print("\n== adopt it: shop-blue from the same template, the Service on blue, never without endpoints")
    bluegreen(kubeconfig, "init", traffic=traffic)
    print("\n== release 2.0: deploy to green, gate it, switch in one verified write, watch it")
    bluegreen(kubeconfig, "release", "--image", image["2.0"], *QUICK, traffic=traffic)
    print(
        "\n== a release whose pods crash: the deploy fails, traffic never moves, blue is put back as it was"
    )
    bluegreen(kubeconfig, "release", "--image", pods.crash, "--timeout", "10s", *QUICK, expect=1)
    print("\n== one-click rollback: back to 1.0 on blue; green keeps running for the post-mortem")
    probe = ["--probe", traffic.url] if traffic else []
    bluegreen(kubeconfig, "rollback", "--reason", "demo: rollback drill", *probe, traffic=traffic)
    bluegreen(kubeconfig, "status")
    print("\n== a re-run of the switch: 2.0 was rolled back (rejected), so it is refused, never switched to")
    bluegreen(kubeconfig, "switch", expect=1)
    print("\n== release 3.0 goes to green: deploy records it as the candidate")
    bluegreen(kubeconfig, "deploy", "--image", image["3.0"], traffic=traffic)
    print(
        "\n== the same engine as a GitHub Action step: switch promotes the candidate, with outputs and a job summary"
    )
    stepped = action_step(
        kubeconfig, kubeconfig.parent / "demo-action", phase="switch", reason="demo: action step"
    )
    if traffic:
        if stepped:
            traffic.moved("action step", stepped)
        traffic.end()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument(
        "--stand-in", action="store_true", help="stand-in pods even where a real node could run (quicker)"
    )
    args = parser.parse_args()
    why = "asked for (--stand-in)" if args.stand_in else realnode.unavailable() or realnode.not_built()
    if why is None:
        node = realnode.RealNode(args.kubeconfig.parent / "realnode")
        print(
            f"== starting the real node: network namespace {node.name}, its own cluster, kubelet, containerd, "
            "kube-proxy; the app's pods run for real"
        )
        try:
            node.up()
        except (realnode.NodeUnavailable, realnode.NodeError) as error:
            why = f"the real node did not start: {str(error).splitlines()[0]}"
        else:
            try:
                with node.inside():
                    return demo(node.kubeconfig, live=True, pods=REAL)
            finally:
                node.down()
    print(f"(stand-in pods in this demo, not real ones: {why})")
    return stand_in(args.kubeconfig)


def stand_in(kubeconfig: Path) -> int:
    """The demo on stand-in pods: in the traffic rig where it runs, else without a data plane."""
    reason = unavailable()
    if reason:
        print(
            f"(no live traffic in this demo: {reason}; it runs on the local cluster, without a data plane)\n"
        )
        return demo(kubeconfig, live=False)
    rig = Rig(kubeconfig.parent / "traffic-rig")
    print(
        f"== starting the traffic rig: network namespace {rig.name}, its own cluster, kube-proxy, a server per pod"
    )
    try:
        rig.up()
    except (RigUnavailable, RigError) as error:
        print(f"(no live traffic in this demo: the rig did not start: {error})\n")
        return demo(kubeconfig, live=False)
    try:
        with rig.inside():
            return demo(rig.kubeconfig, live=True)
    finally:
        rig.down()


if __name__ == "__main__":
    sys.exit(main())
