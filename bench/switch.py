"""How long a `bluegreen switch` and `bluegreen rollback` take, beside a `kubectl patch service` floor.

On the local cluster, one app (3 pods per colour) and a second Service `floor` selecting the same pods.
Each round runs, alternately: kubectl patches `floor` to the other colour (the floor), `bluegreen switch
--to` the other colour (the rollback before marked that release rejected: the bench clears the mark
first, untimed, so the switch is a plain one), kubectl patches `floor` back, `bluegreen rollback`.
For every command it takes, from the moment the bench starts it:

- write sent: the request that moves traffic leaves the process (from the CLI's request log,
  BLUEGREEN_REQUEST_LOG; kubectl's is its only request, so the floor has no such figure),
- converged: the Service's EndpointSlices list exactly the new colour's pods, as seen by one watch in
  this process (the same observer for the floor and for bluegreen),
- whole process: until it exits;

and the requests each bluegreen command sent (method and path, counted). It prints medians, the
median of the per-round ratios to the floor measured next to it, and the start-up figures of
`python -X importtime` (the sum of the top-level imports) for `--version`, `--help` and a switch.
Goals (issue 14): converged <= 1.5x the floor, whole process <= 2x, at most 8 requests. It prints; it
never fails on a number.

    .venv/bin/python bench/switch.py --kubeconfig .cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bluegreen.intent import REJECTED
from tests.support.apps import COLOR_LABEL, NAME_LABEL, create_app, ready_pod_ips, service

ROUNDS = 10
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CONVERGE_TIMEOUT = 30.0


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


class SliceWatch:
    """One watch on the namespace's EndpointSlices: when each Service's ready addresses changed, and to what."""

    def __init__(self, kube: Client, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.slices: dict[str, dict[str, Any]] = {}
        self.changes: list[tuple[float, str, frozenset[str]]] = []  # (unix time, service, ready addresses)
        self._cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def _addresses(self, service_name: str) -> frozenset[str]:
        return frozenset(
            address
            for piece in self.slices.values()
            if (piece.get("metadata", {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == service_name
            for endpoint in piece.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready") is not False
            for address in endpoint.get("addresses") or []
        )

    def _run(self) -> None:
        for kind, obj in self.kube.watch(EndpointSlice, namespace=self.namespace):
            now = time.time()
            piece: dict[str, Any] = obj.to_dict()
            name = piece["metadata"]["name"]
            service_name = (piece["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL, "")
            before = self._addresses(service_name)
            if kind == "DELETED":
                self.slices.pop(name, None)
            else:
                self.slices[name] = piece
            after = self._addresses(service_name)
            with self._cond:
                if after != before:
                    self.changes.append((now, service_name, after))
                self._cond.notify_all()

    def converged_at(self, service_name: str, want: set[str], since: float) -> float | None:
        """The first moment at or after `since` when `service_name` listed exactly `want`; waits for it."""
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        with self._cond:
            while True:
                for at, name, addresses in self.changes:
                    if at >= since and name == service_name and addresses == want:
                        return at
                if time.monotonic() >= deadline:
                    return None
                self._cond.wait(0.5)


@dataclass
class Run:
    whole_ms: float
    converged_ms: float | None
    cpu_ms: float  # user + system time of the process: steadier than wall time on a shared machine
    write_ms: float | None = None  # start -> the request that moves traffic sent
    requests: list[str] = field(default_factory=list)  # "METHOD path", in order


def cpu_ms() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime) * 1000


def requests_of(log: Path) -> list[tuple[float, str]]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        at, method, path = line.split(" ", 2)
        out.append((float(at), f"{method} {path}"))
    return out


# The console script pip writes for `bluegreen = "bluegreen.cli:main"` (as in the development venv).
PIP_SCRIPT = """# -*- coding: utf-8 -*-
import re
import sys
from bluegreen.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def installed(tree: Path, into: Path) -> str:
    """`tree`'s CLI as a user's `pip install` (or the Action's image) has it, not editable: the
    development venv's editable install loads an import finder from a .pth file at every start (~13 ms
    of pathlib, fnmatch, importlib.util) that neither pays. A venv without pip whose site-packages
    holds a copy of the package, compiled, and the development venv's site-packages (the
    dependencies) as a plain path, whose own .pth files are then not run; the console script pip
    writes. Returns the script's path."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(into)], check=True)
    site = next((into / "lib").glob("python3*/site-packages"))
    shutil.copytree(tree / "bluegreen", site / "bluegreen", ignore=shutil.ignore_patterns("__pycache__"))
    python = into / "bin" / "python"
    subprocess.run([str(python), "-m", "compileall", "-q", str(site / "bluegreen")], check=True)
    dependencies = next(p for p in sys.path if p.endswith("site-packages"))
    (site / "dependencies.pth").write_text(dependencies + "\n")
    script = into / "bin" / "bluegreen"
    script.write_text(f"#!{python}\n{PIP_SCRIPT}")
    script.chmod(0o755)
    return str(script)


def run_bluegreen(argv: list[str], watch: SliceWatch, namespace: str, want: set[str], log_dir: Path) -> Run:
    log = log_dir / f"{uuid.uuid4().hex}.log"
    env = {**os.environ, "BLUEGREEN_REQUEST_LOG": str(log)}
    cpu, started_at, started = cpu_ms(), time.time(), time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    whole, cpu = (time.perf_counter() - started) * 1000, cpu_ms() - cpu
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv[1:3])} failed ({out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    sent = requests_of(log)
    live = f"/api/v1/namespaces/{namespace}/services/shop"
    writes = [at for at, what in sent if what.split("?")[0] in (f"PATCH {live}", f"PUT {live}")]
    converged = watch.converged_at("shop", want, started_at)
    return Run(
        whole_ms=whole,
        converged_ms=(converged - started_at) * 1000 if converged else None,
        cpu_ms=cpu,
        write_ms=(writes[0] - started_at) * 1000 if writes else None,
        requests=[what for _, what in sent],
    )


def run_floor(argv: list[str], watch: SliceWatch, want: set[str]) -> Run:
    cpu, started_at, started = cpu_ms(), time.time(), time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    whole, cpu = (time.perf_counter() - started) * 1000, cpu_ms() - cpu
    converged = watch.converged_at("floor", want, started_at)
    return Run(
        whole_ms=whole, converged_ms=(converged - started_at) * 1000 if converged else None, cpu_ms=cpu
    )


def imported(argv: list[str]) -> tuple[float, int]:
    """What `python -X importtime` reports for one process: the sum of its top-level imports in ms,
    and how many modules it imported (a count: the same on a busy machine)."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    out = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    total = modules = 0
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and not line.startswith("import time: self"):
            _, cumulative, name = line[len("import time:") :].split("|")
            modules += 1
            if name.startswith(" ") and not name.startswith("  "):  # top level: one space of indent
                total += int(cumulative)
    return total / 1000, modules


def clear_rejected(kube: Client, namespace: str, deployment: str) -> None:
    patch = {"metadata": {"annotations": {REJECTED: None}}}
    kube.patch(Deployment, deployment, patch, namespace=namespace, patch_type=PatchType.MERGE)


def median(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):7.0f}" if known else "      -"


def ratio(ours: Sequence[float | None], floor: Sequence[float | None]) -> str:
    pairs = [o / f for o, f in zip(ours, floor, strict=True) if o is not None and f]
    return f"{statistics.median(pairs):5.2f}x" if pairs else "    -"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a tree of another version (e.g. `git worktree add /tmp/base main`): measured alternately",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="run the development venv's console script (its editable install's import finder included)",
    )
    args = parser.parse_args()
    kube = Client(KubeConfig.from_file(args.kubeconfig), field_manager="bluegreen-bench")
    namespace = f"bench-switch-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    common = ["--app", "shop", "-n", namespace, "--kubeconfig", str(args.kubeconfig), "-o", "json"]
    kubectl_bin = kubectl()
    installs = tempfile.TemporaryDirectory()
    # This version, and the --baseline one in the same rounds (alternately), each beside its own floor.
    versions: list[tuple[str, str]] = [
        (
            str(Path(sys.executable).parent / "bluegreen")
            if args.editable
            else installed(Path(__file__).resolve().parents[1], Path(installs.name) / "this"),
            "",
        )
    ]
    if args.baseline:
        versions.append((installed(args.baseline.resolve(), Path(installs.name) / "baseline"), " (baseline)"))
    runs: dict[str, list[Run]] = {
        f"{name}{suffix}": []
        for _, suffix in versions
        for name in ("floor", "switch", "floor-back", "rollback")
    }
    imports: dict[str, list[tuple[float, int]]] = {}
    try:
        create_app(kube, namespace, "shop", replicas=3)
        kube.create(service("floor", "shop", "blue"), namespace=namespace)
        pods = {
            c: ready_pod_ips(kube, namespace, {NAME_LABEL: "shop", COLOR_LABEL: c}) for c in ("blue", "green")
        }
        watch = SliceWatch(kube, namespace)
        for service_name in ("shop", "floor"):
            if watch.converged_at(service_name, pods["blue"], 0) is None:
                sys.exit(f"Service {service_name} never listed the blue pods")

        def floor(color: str) -> list[str]:
            patch = json.dumps({"spec": {"selector": {COLOR_LABEL: color}}})
            kubeconfig = ["--kubeconfig", str(args.kubeconfig), "-n", namespace]
            return [kubectl_bin, *kubeconfig, "patch", "service", "floor", "--type=merge", "-p", patch]

        with tempfile.TemporaryDirectory() as logs:
            for _ in range(args.rounds):
                for bluegreen, suffix in versions:
                    runs[f"floor{suffix}"].append(run_floor(floor("green"), watch, pods["green"]))
                    # The rollback of the round before marked green's release rejected: the mark is
                    # cleared here, untimed, so that each round measures a plain switch (a switch
                    # with --force onto a rejected release also clears it: one request more).
                    clear_rejected(kube, namespace, "shop-green")
                    switch = [bluegreen, "switch", "--to", "green", *common]
                    runs[f"switch{suffix}"].append(
                        run_bluegreen(switch, watch, namespace, pods["green"], Path(logs))
                    )
                    runs[f"floor-back{suffix}"].append(run_floor(floor("blue"), watch, pods["blue"]))
                    rollback = [bluegreen, "rollback", *common]
                    runs[f"rollback{suffix}"].append(
                        run_bluegreen(rollback, watch, namespace, pods["blue"], Path(logs))
                    )
            for _ in range(5):
                for bluegreen, suffix in versions:
                    for command, argv in (
                        ("--version", ["--version"]),
                        ("--help", ["--help"]),
                        ("switch (noop)", ["switch", "--to", "blue", *common]),
                    ):
                        imports.setdefault(command + suffix, []).append(imported([bluegreen, *argv]))
    finally:
        kube.delete(Namespace, namespace)
        installs.cleanup()

    print(
        f"rounds: {args.rounds} (3 pods per colour), kubectl: {kubectl_bin}, load: {os.getloadavg()[0]:.1f}, "
        f"bluegreen: {'the development venv (editable)' if args.editable else 'installed (not editable)'}"
    )
    print("medians in ms from the process's start; ratios: median of each run / the floor run next to it")
    print(
        f"{'':29} {'write sent':>10} {'converged':>10} {'whole':>8} {'÷floor conv':>12} {'÷floor whole':>13} {'cpu':>6} {'÷floor cpu':>11} {'requests':>9}"
    )
    rows = [
        (f"{name}{suffix}", f"{floor}{suffix}" if floor else "")
        for _, suffix in versions
        for name, floor in (
            ("floor", ""),
            ("switch", "floor"),
            ("floor-back", ""),
            ("rollback", "floor-back"),
        )
    ]
    for name, floor_name in rows:
        these = runs[name]
        label = "kubectl patch (floor)" if not floor_name else f"bluegreen {name}"
        conv, whole = [r.converged_ms for r in these], [r.whole_ms for r in these]
        if floor_name:
            base = runs[floor_name]
            conv_ratio = ratio(conv, [r.converged_ms for r in base])
            whole_ratio = ratio(whole, [r.whole_ms for r in base])
            cpu_ratio = ratio([r.cpu_ms for r in these], [r.cpu_ms for r in base])
            count = f"{statistics.median(len(r.requests) for r in these):9.0f}"
        else:
            conv_ratio, whole_ratio, cpu_ratio, count = "1.00x", "1.00x", "1.00x", "        1"
        write = median([r.write_ms for r in these]) if floor_name else "      -"
        print(
            f"{label:29} {write:>10} {median(conv):>10} {median(whole):>8} {conv_ratio:>12} {whole_ratio:>13} {median([r.cpu_ms for r in these]):>6} {cpu_ratio:>11} {count}"
        )
    print("goal: converged <= 1.50x, whole <= 2.00x, requests <= 8")
    for name in ("switch", "rollback"):
        steps = Counter(
            what.split("?")[0].replace(f"/namespaces/{namespace}/", "/namespaces/NS/")
            + (" (watch)" if "watch=" in what else "")
            for what in runs[name][-1].requests
        )
        print(f"requests of one {name} ({sum(steps.values())}):")
        for step, n in steps.items():
            print(f"  {n} x {step}")
    print("imports (python -X importtime: sum of the top-level imports, median of 5; modules imported):")
    for command, values in imports.items():
        ms, modules = statistics.median(v[0] for v in values), values[0][1]
        print(f"  bluegreen {command:25} {ms:6.0f} ms  {modules:4d} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
