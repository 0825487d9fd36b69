"""Group switch of 50 apps on the local cluster: time from the first write to all verified, and skew.

Each app: two Deployments (1 replica each, kwok pods), colour Services, an HTTPRoute with weights
100/0 (the published Gateway API CRD installed). The group is switched back and forth a few times;
medians are printed. No pass/fail: the goal (<= 2 s to all verified) is printed beside the figure.

    .venv/bin/python bench/group_switch.py --kubeconfig .cluster/kubeconfig [--apps 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bluegreen.group import Group, Member
from bluegreen.model import Color
from bluegreen.phases import group as phase
from tests.integration.routers.conftest import install_crds
from tests.integration.routers.test_group import route
from tests.support.apps import create_app, wait_available

GOAL_MS = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, default=Path(".cluster/kubeconfig"))
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    kube = Client(KubeConfig.from_file(args.kubeconfig), field_manager="bluegreen-bench")
    install_crds(kube)
    namespace = f"bench-group-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    try:
        names = [f"app{i:02d}" for i in range(args.apps)]
        started = time.monotonic()
        for name in names:
            create_app(kube, namespace, name, replicas=1, wait=False)
            kube.create(route(name, namespace), namespace=namespace)
        for name in names:
            for color in ("blue", "green"):
                wait_available(kube, namespace, f"{name}-{color}", timeout=300)
        print(f"set up {args.apps} apps in {time.monotonic() - started:.1f} s")
        group = Group(
            name="bench", members=tuple(Member(app=n, namespace=namespace, router="gateway") for n in names)
        )

        # The first run also creates the colour Services: report it apart from the steady state.
        first = phase.run(kube, group, to=Color.GREEN, timeout=60)
        assert first.ok, first.text()
        print(f"first switch (creates 100 colour Services): {first.total_ms:.0f} ms to all verified")
        totals, skews, wall = [], [], []
        for i in range(args.runs):
            begun = time.monotonic()
            result = phase.run(kube, group, to=(Color.BLUE, Color.GREEN)[i % 2], timeout=60)
            wall.append((time.monotonic() - begun) * 1000)
            assert result.ok, result.text()
            totals.append(result.total_ms)
            skews.append(result.skew_ms)
        total = statistics.median(totals)
        print(
            f"{args.apps} apps, {args.runs} runs: first write -> all verified median {total:.0f} ms "
            f"(goal <= {GOAL_MS} ms: {total / GOAL_MS:.2f} of it), write skew median {statistics.median(skews):.0f} ms, "
            f"whole run incl. reads, readiness and locks median {statistics.median(wall):.0f} ms"
        )
    finally:
        kube.delete(Namespace, namespace)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
