"""The Action's image: its size, and how soon a started container talks to the cluster.

Builds the image on the local Docker engine (as tests/action do), then runs phases in it against the
local cluster, started as GitHub's runner starts it (tests/action/runner.py: every variable, the mounts,
the kubeconfig input), through a loopback TCP forwarder that notes when the first connection arrives:
`status` RUNS times, then (after an untimed `init`) RUNS rounds of `switch` to green and `rollback`,
the steps a rollback-in-a-hurry pays for (the rollback's mark on green's release is cleared, untimed,
before each switch, so each is a plain one). Prints the image size and, per phase, the medians of:
`docker run` to the first API connection, and `docker run` to the container's exit; then, from one
more switch and rollback run with PYTHONPROFILEIMPORTTIME=1 (`python -X importtime`), the step's
import time and modules, and which client libraries it loaded. It prints; it never fails on a number.

    .venv/bin/python bench/action_start.py --kubeconfig .cluster/kubeconfig
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace
from lightkube.types import PatchType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bluegreen.intent import REJECTED
from tests.action.conftest import BASE_IMAGE, build_context, run
from tests.action.runner import Runner
from tests.support.apps import create_app

RUNS = 7
# Its own tag: the Action tests build and run bluegreen-action:test, maybe at this very moment.
IMAGE = "bluegreen-action:bench"
ROOT = Path(__file__).resolve().parents[1]


class Forwarder:
    """127.0.0.1:<port> -> the apiserver, byte for byte (TLS passes through); notes first connections."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.first: float | None = None
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.first is None:
                self.first = time.monotonic()
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", default=".cluster/kubeconfig")
    args = parser.parse_args()
    for script in ("install-docker.sh", "docker-base-image.sh"):
        subprocess.run(["bash", str(ROOT / "hack" / script)], check=True)
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        context = str(build_context(Path(folder)))
        build = ["docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}"]
        built = run([*build, "-t", IMAGE, context])
        if built.returncode != 0:
            sys.exit(built.stderr[-2000:])
        build_s = time.monotonic() - started
    size = int(run(["docker", "image", "inspect", IMAGE, "--format", "{{.Size}}"]).stdout.strip())
    base = int(run(["docker", "image", "inspect", BASE_IMAGE, "--format", "{{.Size}}"]).stdout.strip())

    kube = Client(KubeConfig.from_file(args.kubeconfig))
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
    try:
        create_app(kube, namespace, "shop", replicas=2)
        config = json.loads(Path(args.kubeconfig).read_text())
        server = urlparse(config["clusters"][0]["cluster"]["server"])
        first_request: dict[str, list[float]] = {"status": [], "switch": [], "rollback": []}
        whole: dict[str, list[float]] = {phase: [] for phase in first_request}
        with tempfile.TemporaryDirectory() as home:
            # Started exactly as GitHub's runner starts a Docker action (tests/action/runner.py).
            runner = Runner(Path(home) / "runner", IMAGE)

            def step(phase: str, env: dict[str, str] | None = None, **inputs: str) -> str:
                """The step's log; its times noted, unless it was run for its import figures."""
                forwarder = Forwarder((server.hostname or "127.0.0.1", server.port or 443))
                config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
                with_ = {
                    "phase": phase,
                    "app": "shop",
                    "namespace": namespace,
                    "kubeconfig": json.dumps(config),
                }
                done = runner.step({**with_, **inputs}, env=env)
                forwarder.listener.close()
                if done.exit_code != 0 or forwarder.first is None:
                    sys.exit(f"{phase} in the container failed:\n{done.log}")
                if phase in first_request and not env:
                    first_request[phase].append((forwarder.first - done.started) * 1000)
                    whole[phase].append((done.ended - done.started) * 1000)
                return done.log

            for _ in range(RUNS):
                step("status")
            step("init")
            for _ in range(RUNS):
                clear = {"metadata": {"annotations": {REJECTED: None}}}
                kube.patch(Deployment, "shop-green", clear, namespace=namespace, patch_type=PatchType.MERGE)
                step("switch", to="green")
                step("rollback")
            # Once more each, as `python -X importtime` in the container (untimed: the profile costs).
            profile = {"PYTHONPROFILEIMPORTTIME": "1"}
            clear = {"metadata": {"annotations": {REJECTED: None}}}
            kube.patch(Deployment, "shop-green", clear, namespace=namespace, patch_type=PatchType.MERGE)
            imports = {
                "switch": import_figures(step("switch", profile, to="green")),
                "rollback": import_figures(step("rollback", profile)),
            }
    finally:
        kube.delete(Namespace, namespace)
    print(
        f"image {IMAGE}: {size / 1e6:.0f} MB ({(size - base) / 1e6:.0f} MB over the base {BASE_IMAGE}), built in {build_s:.1f} s"
    )
    for phase, firsts in first_request.items():
        print(
            f"{phase:8}: docker run -> first API connection: median {statistics.median(firsts):.0f} ms "
            f"(min {min(firsts):.0f}, max {max(firsts):.0f}, {RUNS} runs); "
            f"-> container exit: median {statistics.median(whole[phase]):.0f} ms"
        )
    for phase, (total_ms, count, heavy) in imports.items():
        print(
            f"{phase:8}: imports in the container (-X importtime, whole step): {total_ms:.0f} ms, "
            f"{count} modules; client libraries among them: {', '.join(heavy) or 'none'}"
        )


HEAVY = ("lightkube", "httpx2", "httpcore2", "msgspec", "yaml", "anyio", "h2", "asyncio")


def import_figures(log: str) -> tuple[float, int, list[str]]:
    """From a step's -X importtime lines: the sum of the top-level imports' cumulative times (ms), the
    number of modules, and which client libraries (HEAVY) were imported."""
    total, names = 0, []
    for line in log.splitlines():
        if not line.startswith("import time:") or line.endswith("imported package"):
            continue
        _, cumulative, name = line.split("|")
        names.append(name.strip())
        if not name.startswith("  "):  # a top-level import: its nested ones are in its cumulative time
            total += int(cumulative)
    return total / 1000, len(names), sorted({n.split(".")[0] for n in names} & set(HEAVY))


if __name__ == "__main__":
    main()
