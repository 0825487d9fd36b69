"""`make demo`: a whole blue-green release on the local cluster, as a user would run it.

It sets up the app a team has before bluegreen (Deployment `shop` and its Service in namespace
`demo`), adopts it, releases 2.0 through deploy -> gate -> switch -> watch, shows that a crashing
release never reaches traffic, rolls back, then runs a switch as a GitHub Action step (the image's
entrypoint, with its outputs and job summary), and prints each command with what it answered.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import cast

from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace

from tests.support.apps import CRASHLOOP_IMAGE, deployment, service, wait_available

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


def plain_app(kube: Client) -> None:
    """Deployment `shop` and Service `shop`, labelled without colours: an app before bluegreen."""
    before = deployment(APP, "blue", replicas=3, image="registry.local/shop:1.0").to_dict()
    before["metadata"]["name"] = APP
    for labels in (
        before["metadata"]["labels"],
        before["spec"]["selector"]["matchLabels"],
        before["spec"]["template"]["metadata"]["labels"],
    ):
        labels.pop("bluegreen.io/color", None)
    kube.create(cast(Deployment, Deployment.from_dict(before)), namespace=NAMESPACE)
    kube.create(service(APP, APP, None), namespace=NAMESPACE)
    wait_available(kube, NAMESPACE, APP)


def bluegreen(kubeconfig: Path, *args: str, expect: int = 0) -> None:
    command = ["bluegreen", *args, "--app", APP, "-n", NAMESPACE]
    print(f"\n$ {shlex.join(command)}", flush=True)
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
        ],
        check=False,
    )
    if done.returncode != expect:
        sys.exit(f"demo: expected exit code {expect}, got {done.returncode}")
    print(f"(exit code {done.returncode})", flush=True)


def action_step(kubeconfig: Path, folder: Path, **inputs: str) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()
    kube = Client(KubeConfig.from_file(args.kubeconfig), field_manager="bluegreen-demo")

    print(
        f"== the app before bluegreen: Deployment {APP} (registry.local/shop:1.0) and Service {APP} in {NAMESPACE}"
    )
    reset_namespace(kube)
    plain_app(kube)

    print("\n== adopt it: shop-blue from the same template, the Service on blue, never without endpoints")
    bluegreen(args.kubeconfig, "init")
    print("\n== release 2.0: deploy to green, gate it, switch in one verified write, watch it")
    bluegreen(args.kubeconfig, "release", "--image", "registry.local/shop:2.0", *QUICK)
    print(
        "\n== a release whose pods crash: the deploy fails, traffic never moves, blue is put back as it was"
    )
    bluegreen(args.kubeconfig, "release", "--image", CRASHLOOP_IMAGE, "--timeout", "10s", *QUICK, expect=1)
    print("\n== one-click rollback: back to 1.0 on blue; green keeps running for the post-mortem")
    bluegreen(args.kubeconfig, "rollback", "--reason", "demo: rollback drill")
    bluegreen(args.kubeconfig, "status")
    print("\n== a re-run of the switch: 2.0 was rolled back (rejected), so it is refused, never switched to")
    bluegreen(args.kubeconfig, "switch", expect=1)
    print("\n== release 3.0 goes to green: deploy records it as the candidate")
    bluegreen(args.kubeconfig, "deploy", "--image", "registry.local/shop:3.0")
    print(
        "\n== the same engine as a GitHub Action step: switch promotes the candidate, with outputs and a job summary"
    )
    action_step(
        args.kubeconfig, args.kubeconfig.parent / "demo-action", phase="switch", reason="demo: action step"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
