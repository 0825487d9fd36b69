"""Switch latency on the local cluster: 20 flips blue <-> green, and the cost of a whole CLI process.

Prints p50 and p95 of `api_ms` (the selector write) and `converged_ms` (write to EndpointSlices listing
exactly the target's ready pods), and the median ratio of a whole `bluegreen switch` process to a bare
`kubectl patch service` process, the two measured alternately in the same run. Goals (issue 3):
p95 converged_ms <= 250, ratio <= 1.2. It prints; it never fails on a number.

    .venv/bin/python bench/switch.py --kubeconfig .cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.apps import create_app

FLIPS = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def kubectl() -> str:
    """The cluster's own kubectl (built with it), else the one on PATH."""
    built = subprocess.run(["bash", "hack/build-k8s.sh"], capture_output=True, text=True, check=False)
    own = (
        Path(built.stdout.strip().splitlines()[-1]) / "kubectl"
        if built.returncode == 0 and built.stdout
        else None
    )
    if own and own.exists():
        return str(own)
    found = shutil.which("kubectl")
    if not found:
        sys.exit("no kubectl: run hack/build-k8s.sh")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--flips", type=int, default=FLIPS)
    args = parser.parse_args()
    kube = Client(KubeConfig.from_file(args.kubeconfig), field_manager="bluegreen-bench")
    namespace = f"bench-switch-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    bluegreen = str(Path(sys.executable).parent / "bluegreen")
    common = ["--app", "shop", "-n", namespace, "--kubeconfig", str(args.kubeconfig)]
    try:
        create_app(kube, namespace, "shop", replicas=3)
        api, converged, ours, bare = [], [], [], []
        kubectl_bin = kubectl()
        color = "green"
        for _ in range(args.flips):
            started = time.perf_counter()
            out = subprocess.run(
                [bluegreen, "switch", "--to", color, *common, "-o", "json"],
                capture_output=True,
                text=True,
                check=False,
            )
            ours.append(time.perf_counter() - started)
            payload = json.loads(out.stdout)
            if out.returncode != 0:
                sys.exit(f"bluegreen switch failed: {payload.get('error')}")
            api.append(payload["result"]["api_ms"])
            converged.append(payload["result"]["converged_ms"])
            # The same selector write by kubectl, back and forth on a Service of its own.
            patch = json.dumps({"spec": {"selector": {"bluegreen.io/color": color}}})
            started = time.perf_counter()
            subprocess.run(
                [
                    kubectl_bin,
                    "--kubeconfig",
                    str(args.kubeconfig),
                    "-n",
                    namespace,
                    "patch",
                    "service",
                    "shop-preview",
                    "--type=merge",
                    "-p",
                    patch,
                ],
                capture_output=True,
                check=True,
            )
            bare.append(time.perf_counter() - started)
            color = "blue" if color == "green" else "green"
    finally:
        kube.delete(Namespace, namespace)
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    print(f"flips: {args.flips} (3 replicas per colour), kubectl: {kubectl_bin}")
    print(f"api_ms        p50 {percentile(api, 0.5):7.1f}   p95 {percentile(api, 0.95):7.1f}")
    print(
        f"converged_ms  p50 {percentile(converged, 0.5):7.1f}   p95 {percentile(converged, 0.95):7.1f}   (goal: p95 <= 250)"
    )
    print(
        f"whole process: bluegreen switch median {statistics.median(ours) * 1000:.0f} ms, "
        f"kubectl patch median {statistics.median(bare) * 1000:.0f} ms, "
        f"median ratio {statistics.median(ratios):.2f}   (goal: <= 1.2)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
