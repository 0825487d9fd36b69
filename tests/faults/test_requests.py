"""Every request of `deploy`, `switch`, `rollback` and `group switch` failed in turn.

A clean run through the FaultProxy lists the command's requests (its steps, in order). Then, for each
step, a fresh copy of the scene runs the command with that step's first request failed:

- reads (GET, LIST, WATCH): the connection reset before the apiserver sees it, or a 503;
- writes (POST, PUT, PATCH): reset before the apiserver sees it, reset after it applied it (the answer
  lost), a 503, or no answer until the client's timeout (applied, answer withheld).

After each: the invariants (harness.observe), then the same command again (the CI job re-run), which
must work and reach the command's goal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lightkube import Client

from tests.faults.harness import (
    BOUND_S,
    COMMANDS,
    LEDGER,
    Row,
    Scene,
    concurrently,
    next_run,
    observe,
    run_cli,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Kind, Rule

pytestmark = pytest.mark.cluster

READ_FAULTS: tuple[Kind, ...] = ("reset-before", "status-503")
WRITE_FAULTS: tuple[Kind, ...] = ("reset-before", "reset-after", "status-503", "timeout-after")
FAULT_NAMES = {
    "reset-before": "reset before the request reached the API",
    "reset-after": "reset after the API applied it",
    "status-503": "HTTP 503",
    "timeout-after": "no answer (client timeout) after the API applied it",
}


def short(step: str) -> str:
    """'PATCH /api/v1/namespaces/NS/services/shop' -> 'PATCH services/shop'."""
    return re.sub(r"/(api|apis/[^/]+)/v1/(namespaces/NS/)?", " ", step, count=1).replace("  ", " ")


def faults_for(step: str) -> tuple[Kind, ...]:
    return READ_FAULTS if step.split()[0] in ("GET", "WATCH") else WRITE_FAULTS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_request_failed_in_turn(
    command: str,
    kube: Client,
    cluster_kubeconfig: Path,
    proxied: Path,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    trace = set_up(kube, command, cluster_kubeconfig, tmp_path, "trace")
    clean = run_cli(trace.args(), proxied)
    assert clean.exit_code == 0, clean.describe()
    steps = fault_proxy.steps(trace.namespace)
    assert steps, "the clean run sent no request through the proxy"

    cases = [(step, kind) for step in steps for kind in faults_for(step)]
    done: list[tuple[Scene, Row]] = []

    def inject(case: tuple[str, Kind]) -> None:
        step, kind = case
        scene = set_up(kube, command, cluster_kubeconfig, tmp_path, "req")
        row = Row(fault=FAULT_NAMES[kind], phase=command, moment=f"1st {short(step)}")
        rule = fault_proxy.add(Rule(scene.namespace, step, kind))
        run = run_cli(scene.args(), proxied, bound=BOUND_S)
        if not rule.fired.is_set():
            row.problems.append("the fault never fired: this run did not send that request")
        verdict(row, run, observe(kube, scene), scene, expect={0, 1, 3})
        done.append((scene, LEDGER.add(row)))

    concurrently(cases, inject)
    # The re-runs come last, all together: a Lease the fault left held expires meanwhile.
    concurrently(done, lambda item: next_run(kube, item[0], item[1]))
    bad = [row for _, row in done if not row.consistent]
    assert not bad, "\n".join(" | ".join(row.cells()) for row in bad)
