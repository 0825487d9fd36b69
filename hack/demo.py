"""`make demo`: a blue-green release on the local cluster, told step by step.

It sets up the app a user would have before adopting bluegreen (one Deployment and its Service in
namespace `demo`), then runs the release as a user would, printing each command and its output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from tests.support.apps import deployment, endpoint_ips, service, wait_available

NAMESPACE = "demo"
APP = "shop"


def reset_namespace(kube: Client) -> None:
    try:
        kube.delete(Namespace, NAMESPACE)
    except ApiError as error:
        if error.status.code != 404:
            raise
    # A deleted namespace lingers while its objects go; wait so the demo always starts clean.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            kube.get(Namespace, NAMESPACE)
        except ApiError:
            break
        time.sleep(0.2)
    kube.create(Namespace(metadata=ObjectMeta(name=NAMESPACE)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    args = parser.parse_args()
    kube = Client(KubeConfig.from_file(args.kubeconfig), field_manager="bluegreen-demo")

    print(f"== the app before bluegreen: Deployment {APP}-blue and Service {APP} in namespace {NAMESPACE}")
    reset_namespace(kube)
    kube.create(deployment(APP, "blue", replicas=3, image="registry.local/shop:1.0"), namespace=NAMESPACE)
    kube.create(service(APP, APP, "blue"), namespace=NAMESPACE)
    wait_available(kube, NAMESPACE, f"{APP}-blue")
    print(f"   {APP}-blue available; Service {APP} endpoints: {sorted(endpoint_ips(kube, NAMESPACE, APP))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
