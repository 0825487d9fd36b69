"""The ingress and gateway routers through Traefik: control plane verified vs traffic moved, per switch.

Starts the traffic rig (hack/traffic_rig.py, root only) and Traefik in it (hack/build-traefik.sh,
`make deps`), adopts an app with `init` and deploys green, puts it behind an Ingress or an HTTPRoute,
then switches blue <-> green --switches times with a bounded load of new connections through Traefik.
Per switch, in ms from the write: the control plane verified (`details.verification`), the `--probe`'s
data-plane verification (what "verified" is with --probe), and this load's own cutover (the first
answer of the new colour after which the old one never answered). With --quick the switches follow
each other at once, inside Traefik's 2 s provider throttle; otherwise 3 s apart. It prints p50/p95/max;
it never fails on a number. Without root or Traefik it says why and measures nothing.

    sudo .venv/bin/python bench/proxy_routers.py [--router ingress|gateway] [--switches 10] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from bluegreen.model import AppSpec
from bluegreen.routers._common import ensure_color_services
from bluegreen.traffic_probe import TrafficProbe, percentile, summarize
from hack.traffic_rig import Rig, RigError, RigUnavailable, unavailable
from tests.support import traefik
from tests.support.traefik import adopted_app, frontend
from tests.support.traffic import bluegreen, wait_answering, write_time

RATE = 50.0


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {percentile(values, 50) or 0:>6.0f}  p95 {percentile(values, 95) or 0:>6.0f}  max {max(values):>6.0f}"


def run(rig: Rig, url: str, *, router: str, switches: int, quick: bool) -> int:
    kube = Client(KubeConfig.from_file(rig.kubeconfig), field_manager="bluegreen-bench")
    namespace = f"bench-proxy-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    adopted_app(rig, kube, namespace)
    ensure_color_services(kube, AppSpec(name="shop", namespace=namespace))
    frontend(kube, namespace, router)
    shop = f"{url}/{namespace}"
    wait_answering(shop, "blue", timeout=60)
    control: list[float] = []
    probed: list[float] = []
    cutover: list[float] = []
    failed = 0
    color = "blue"
    for index in range(switches):
        target = "green" if color == "blue" else "blue"
        with TrafficProbe(shop, rate=RATE, max_requests=int(RATE * 60), max_seconds=60) as probe:
            time.sleep(0.5)
            result = bluegreen(
                rig,
                "switch",
                "--to",
                target,
                "--force",  # back to a colour left before: no deploy recorded a new candidate
                "--app",
                "shop",
                "-n",
                namespace,
                "--router",
                router,
                "--probe",
                shop,
                "--probe-rate",
                "50",
                "--probe-after",
                "0.5s",
            )
            time.sleep(1.0 if quick else 3.0)
        cut = summarize(probe.samples, write_time=write_time(result), old=color, new=target)
        timing = result["details"]["verification"]
        control.append(float(timing["control_plane_ms"]))
        probed.append(float(timing["data_plane_ms"] or 0))
        if cut.cutover_ms is not None:
            cutover.append(cut.cutover_ms)
        failed += cut.failed
        print(
            f"  {index + 1:>2} -> {target:5}: control plane {timing['control_plane_ms']:>6.0f}  "
            f"probe {timing['data_plane_ms']:>6.0f}  load cutover {cut.cutover_ms}  failed {cut.failed}"
        )
        color = target
    print(
        f"{router} through Traefik, {switches} switches ({'quick' if quick else '3 s apart'}), ms from the write:"
    )
    print(f"  control plane verified  {stats(control)}")
    print(f"  probe saw traffic move  {stats(probed)}")
    print(f"  load's own cutover      {stats(cutover)}")
    print(f"  failed requests: {failed}")
    kube.delete(Namespace, namespace)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", choices=("ingress", "gateway"), default="gateway")
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reason = unavailable() or traefik.missing()
    if reason:
        print(f"not measured: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as work:
        try:
            with Rig(Path(work)) as rig, traefik.running(rig) as url, rig.inside():
                return run(rig, url, router=args.router, switches=args.switches, quick=args.quick)
        except (RigUnavailable, RigError) as error:
            print(f"not measured: {error}")
            return 0


if __name__ == "__main__":
    sys.exit(main())
