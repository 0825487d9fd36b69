"""Real traffic through N switches: failed requests and the cutover a client sees, beside converged_ms.

Starts the traffic rig (hack/traffic_rig.py: its own cluster, kube-proxy in nftables mode and a
server per pod, in a network namespace; root only), then for each switch keeps new connections
flowing to the Service's ClusterIP at --rate per second while `bluegreen switch` (the CLI, in the
namespace) flips blue <-> green. From the write's timestamp (the `switched:` event of the switch's
JSON timeline: when the write returned) it measures, per switch:

- last old: when the old colour answered a connection for the last time;
- cutover: the first answer of the new colour after which the old one never answered again;

and prints p50/p95/max of both beside `converged_ms` (write to EndpointSlices listing exactly the new
colour: the control plane, not packets). With --busy another Service's endpoints change every 0.3 s,
so kube-proxy is always due a sync and applies ours at its next one (at most one per
--nftables-min-sync-period, 1 s by default). Times are connection-open times, in ms. It prints; it
never fails on a number. Without root it says why and measures nothing.

    sudo .venv/bin/python bench/traffic.py [--rate 200] [--switches 10] [--busy]
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

from bluegreen.traffic_probe import Cutover, TrafficProbe, percentile, summarize
from hack.traffic_rig import Rig, RigError, RigUnavailable, unavailable
from tests.support.apps import create_app, service
from tests.support.traffic import (
    Churn,
    KeepAliveClient,
    bluegreen,
    cluster_url,
    drain,
    wait_answering,
    write_time,
)

SETTLE = 2.5  # seconds of load after each write: beyond kube-proxy's 1 s minimum sync period


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {percentile(values, 50) or 0:>6.0f}  p95 {percentile(values, 95) or 0:>6.0f}  max {max(values):>6.0f}"


def run(rig: Rig, *, rate: float, switches: int, busy: bool) -> int:
    kube = Client(KubeConfig.from_file(rig.kubeconfig), field_manager="bluegreen-bench")
    namespace = f"bench-traffic-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    create_app(kube, namespace, replicas=2)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    churn = None
    if busy:
        create_app(kube, namespace, "noise", replicas=1)
        kube.create(service("noise-churn", "noise", "blue"), namespace=namespace)
        churn = Churn(kube, namespace, "noise-churn").start()
    cuts: list[Cutover] = []
    converged: list[float] = []
    color = "blue"
    skipped = 0
    print(
        f"{switches} switches at {rate:.0f} new connections/s{' on a busy cluster' if busy else ''} ({url})"
    )
    print("  #  to     requests  failed  last old ms  cutover ms  converged ms")
    try:
        for index in range(switches):
            target = "green" if color == "blue" else "blue"
            seconds = SETTLE + 1.0 + 5.0
            probe = TrafficProbe(
                url, rate=rate, max_requests=int(rate * seconds), max_seconds=seconds
            ).start()
            try:
                probe.pause(0.5)
                result = bluegreen(rig, "switch", "--app", "shop", "-n", namespace, "--to", target)
                probe.pause(SETTLE)
            finally:
                samples = probe.stop()
            skipped += probe.skipped
            cut = summarize(samples, write_time=write_time(result), old=color, new=target)
            cuts.append(cut)
            converged.append(float(result["converged_ms"]))
            print(
                f"{index + 1:>3}  {target:5}  {cut.requests:>8}  {cut.failed:>6}  "
                f"{cut.last_old_ms if cut.last_old_ms is not None else '-':>11}  "
                f"{cut.cutover_ms if cut.cutover_ms is not None else '-':>10}  {result['converged_ms']:>12.0f}"
            )
            color = target
    finally:
        flips = churn.stop() if churn else 0
    total = sum(c.requests for c in cuts)
    failed = sum(c.failed for c in cuts)
    unclean = sum(1 for c in cuts if not c.moved or c.old_after_new)
    print(
        f"requests: {total}, failed: {failed}; switches not ending on the new colour alone: {unclean}; "
        f"not sent (every worker busy): {skipped}"
    )
    if churn:
        print(f"busy: another Service's selector flipped {flips} times meanwhile")
    print(
        f"last old answer, ms after the write:  {stats([c.last_old_ms for c in cuts if c.last_old_ms is not None])}"
    )
    print(
        f"new colour alone, ms after the write: {stats([c.cutover_ms for c in cuts if c.cutover_ms is not None])}"
    )
    print(f"converged_ms (EndpointSlices):        {stats(converged)}")
    try:
        keep_alive(rig, kube, namespace, url, color)
    finally:
        kube.delete(Namespace, namespace)
    return 0


def keep_alive(rig: Rig, kube: Client, namespace: str, url: str, color: str, *, clients: int = 4) -> None:
    """Persistent connections opened before a switch: where do their requests go afterwards?"""
    target = "green" if color == "blue" else "blue"
    held = [KeepAliveClient(url) for _ in range(clients)]
    try:
        for client in held:
            client.get()
        result = bluegreen(rig, "switch", "--app", "shop", "-n", namespace, "--to", target)
        write = write_time(result)
        answers = []
        while time.time() < write + 10:
            answers += [c.get() for c in held]
            time.sleep(0.1)
        drained_at = time.time()
        drain(kube, namespace, "shop", color)
        after = [[c.get() for _ in range(3)] for c in held]
        moved_ms = (time.time() - drained_at) * 1000
    finally:
        for client in held:
            client.close()
    old = sum(1 for a in answers if a.color == color)
    failed = sum(1 for a in answers if a.failed)
    print(
        f"keep-alive: {clients} connections opened before the switch: {old} of {len(answers)} answers "
        f"in the 10 s after it came from the old colour ({color}), {failed} failed"
    )
    firsts = [next((i for i, a in enumerate(answers_of) if a.color == target), None) for answers_of in after]
    print(
        f"keep-alive after POST /drain to the old colour's pods: requests until each client reached {target}: "
        f"{firsts} (1 = the next one after the closing answer); failed "
        f"{sum(1 for c in after for a in c if a.failed)}; {moved_ms:.0f} ms for all"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="ignored: the bench starts its own cluster in the rig"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="new connections per second (default 200)")
    parser.add_argument("--switches", type=int, default=10)
    parser.add_argument("--busy", action="store_true", help="another Service's endpoints change every 0.3 s")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        print(f"bench/traffic.py: not measured: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bluegreen-traffic-bench-") as tmp:
        rig = Rig(Path(tmp))
        try:
            rig.up()
        except RigUnavailable as error:
            print(f"bench/traffic.py: not measured: {error}")
            return 0
        except RigError as error:
            print(f"bench/traffic.py: the rig did not start: {error}", file=sys.stderr)
            return 1
        try:
            with rig.inside():
                started = time.monotonic()
                code = run(rig, rate=args.rate, switches=args.switches, busy=args.busy)
                print(f"({time.monotonic() - started:.0f}s)")
                return code
        finally:
            rig.down()


if __name__ == "__main__":
    sys.exit(main())
