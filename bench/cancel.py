"""How soon a cancelled run stops: SIGTERM to a real `bluegreen` process at four moments, on the
local cluster.

For each moment (a deploy waiting for its rollout, a switch waiting for the lock, a watch between
rounds, a switch verifying), RUNS times: start the command, wait until it is there, send SIGTERM,
and time the signal to the process's exit (a runner kills a few seconds after its SIGTERM), then the
next run of the same app that starts at once (the Lease must be free). Prints medians and maxima of
both; it prints, it never fails on a number.

    .venv/bin/python bench/cancel.py --kubeconfig .cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from lightkube import Client, KubeConfig
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Namespace, Service

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.apps import UNREADY_IMAGE, create_app

RUNS = 5
WATCH = "checks: [{name: pods, kind: kubernetes}]\nwatch: {duration: 10m, interval: 1s}\n"


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            out, err = process.communicate()
            sys.exit(f"the run never reached the moment to signal it: {(out + err).decode()[-1000:]}")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    args.kubeconfig = args.kubeconfig.resolve()  # the runs start in a directory of their own
    kube = Client(KubeConfig.from_file(args.kubeconfig), field_manager="bluegreen-bench")
    bluegreen = str(Path(sys.executable).parent / "bluegreen")
    workdir = Path(tempfile.mkdtemp(prefix="bench-cancel-"))
    (workdir / "bluegreen.yaml").write_text(WATCH)

    def holder(namespace: str) -> str:
        try:
            spec = kube.get(Lease, "bluegreen-shop", namespace=namespace).spec
        except Exception:
            return ""
        return (spec.holderIdentity if spec else None) or ""

    def live(namespace: str) -> str:
        spec = kube.get(Service, "shop", namespace=namespace).spec
        return (spec.selector or {}).get("bluegreen.io/color", "") if spec else ""

    def plain(ns: str) -> None:
        create_app(kube, ns, "shop", replicas=1)

    def held(ns: str) -> None:
        plain(ns)
        spec = LeaseSpec(holderIdentity="other run", renewTime=datetime.now(UTC), leaseDurationSeconds=600)
        kube.create(Lease(metadata=ObjectMeta(name="bluegreen-shop"), spec=spec), namespace=ns)

    def unready_green(ns: str) -> None:
        create_app(kube, ns, "shop", replicas=1, idle_image=UNREADY_IMAGE, wait=False)

    def holds(ns: str, pid: int) -> bool:
        return f"pid {pid} " in holder(ns)

    def waited(ns: str, pid: int) -> bool:
        time.sleep(1.0)  # nothing to see from outside: it reads the Lease every second
        return True

    # --force on every switch: the workdir's bluegreen.yaml has a gate, and no colour here passed one.
    moments: dict[str, tuple[Callable[[str], None], list[str], Callable[[str, int], bool], list[str]]] = {
        "deploy, waiting for the rollout": (
            plain,
            ["deploy", "--image", UNREADY_IMAGE],
            holds,
            ["deploy", "--image", "registry.local/shop:2"],
        ),
        "switch, waiting for the lock": (
            held,
            ["switch", "--to", "green", "--force", "--wait-for-lock", "10m"],
            waited,
            ["status"],
        ),
        "watch, between rounds": (plain, ["watch"], holds, ["switch", "--to", "green", "--force"]),
        "switch, verifying": (
            unready_green,
            ["switch", "--to", "green", "--force"],
            lambda ns, _: live(ns) == "green",
            ["switch", "--to", "blue", "--force"],
        ),
    }
    rows = []
    for moment, (setup, argv, reached, after) in moments.items():
        stops, nexts, codes = [], [], set()
        for _ in range(args.runs):
            ns = f"bench-cancel-{uuid.uuid4().hex[:6]}"
            kube.create(Namespace(metadata=ObjectMeta(name=ns)))
            try:
                setup(ns)
                common = ["--app", "shop", "-n", ns, "--kubeconfig", str(args.kubeconfig), "-o", "json"]
                process = subprocess.Popen(
                    [bluegreen, *argv, *common], cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                wait_until(lambda: reached(ns, process.pid), process)
                sent = time.perf_counter()
                process.send_signal(signal.SIGTERM)
                process.communicate(timeout=30)
                stops.append(time.perf_counter() - sent)
                codes.add(process.returncode)
                started = time.perf_counter()
                done = subprocess.run(
                    [bluegreen, *after, *common], cwd=workdir, capture_output=True, check=False
                )
                nexts.append(time.perf_counter() - started)
                if done.returncode != 0:
                    sys.exit(f"the run after a cancelled {moment} failed: {json.loads(done.stdout or '{}')}")
            finally:
                kube.delete(Namespace, ns)
        rows.append((moment, statistics.median(stops), max(stops), statistics.median(nexts), sorted(codes)))
    print(f"{'moment':<34} {'SIGTERM->exit median':>21} {'max':>7} {'next run median':>16}  exit codes")
    for moment, median, worst, nxt, seen in rows:
        print(
            f"{moment:<34} {median * 1000:>18.0f} ms {worst * 1000:>4.0f} ms {nxt * 1000:>13.0f} ms  {seen}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
