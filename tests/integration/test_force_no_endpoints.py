"""Force without an outage (issue 18): `switch --force` never moves traffic onto zero ready pods by accident.

Before, `--force` onto a colour whose pods were all unready moved every request to nothing, waited
60 s and left the outage in place. Now it is refused (exit 1, nothing written) unless
`--allow-no-endpoints` says so too, and then the history records it.
"""

from __future__ import annotations

import json
import time

from lightkube import Client
from lightkube.resources.core_v1 import Service

from bluegreen import history
from bluegreen.cli import execute, parse_options
from bluegreen.model import Color, NullReporter
from bluegreen.options import SwitchOptions, context
from bluegreen.phases import switch
from hack.localcluster import LocalCluster
from tests.integration.test_engine import selector_color, versions
from tests.support.apps import UNREADY_IMAGE, create_app, wait_available


def _unready_green(kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1, idle_image=UNREADY_IMAGE, wait=False)
    wait_available(kube, namespace, "shop-blue")
    time.sleep(1)


def test_force_onto_a_colour_with_no_ready_pod_is_refused(
    cluster: LocalCluster, kube: Client, namespace: str
) -> None:
    _unready_green(kube, namespace)
    before = versions(kube, namespace)

    where = ["--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    outcome = execute(["switch", "--force", "--to", "green", *where])

    assert outcome.exit_code == 1
    assert outcome.error is not None
    assert "no ready pod" in outcome.error.message and "outage" in outcome.error.message
    assert "--allow-no-endpoints" in outcome.error.remedy
    assert versions(kube, namespace) == before
    assert selector_color(kube, namespace) == "blue"


def test_allow_no_endpoints_switches_and_the_history_says_so(
    cluster: LocalCluster, kube: Client, namespace: str
) -> None:
    _unready_green(kube, namespace)
    flags = ["--force", "--allow-no-endpoints", "--to", "green", "--reason", "drill"]
    options = parse_options(
        ["switch", *flags, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    )
    assert isinstance(options, SwitchOptions) and options.allow_no_endpoints
    # The phase itself, with a short verification: green has no endpoints, so it cannot converge.
    result = switch.run(
        context(options.target, options.writes, NullReporter()),
        to=Color.GREEN,
        force=True,
        allow_no_endpoints=True,
        reason="drill",
        verify_timeout=1,
    )

    assert result.result == "failed"  # moved, but nothing answers: said, not hidden
    assert selector_color(kube, namespace) == "green"
    annotations = kube.get(Service, "shop", namespace=namespace).to_dict()["metadata"]["annotations"]
    newest = json.loads(annotations[history.HISTORY])[0]
    assert newest["reason"] == "drill [forced onto green with no ready pod (--allow-no-endpoints)]"
