"""The CLI sent SIGTERM (a cancelled CI job) at several moments of each mutating command.

The FaultProxy's hook signals the process when a chosen request arrives, then lets that request
through: the process is cancelled with that request in flight. It must stop at a safe point within
5 s, exit 143, release the Lease, and leave traffic and history consistent; the re-run then works.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from lightkube import Client

from tests.faults.harness import (
    LEDGER,
    TERM_BOUND_S,
    Cli,
    Row,
    Scene,
    concurrently,
    next_run,
    observe,
    run_cli,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Request, Rule
from tests.faults.test_requests import short

pytestmark = pytest.mark.cluster

MISSING = "SIGTERM handling (issue 10 item 3): exit 143 at a safe point, Lease released"


def cancel_at(
    kube: Client, scene: Scene, proxied: Path, fault_proxy: FaultProxy, step: str, occurrence: int = 1
) -> Row:
    """Run the scene's command and send it SIGTERM when `step`'s request arrives; one table row."""
    nth = {1: "1st", 2: "2nd", 3: "3rd"}.get(occurrence, f"{occurrence}th")
    row = Row(fault="SIGTERM to the CLI", phase=scene.command, moment=f"{nth} {short(step)} in flight")
    holder: dict[str, Cli] = {}

    def term(_: Request) -> None:
        holder["cli"].signal(signal.SIGTERM)

    rule = fault_proxy.add(Rule(scene.namespace, step, "hook", occurrence=occurrence, hook=term))
    holder["cli"] = cli = Cli(scene.args(), proxied)
    run = cli.wait()
    if not rule.fired.is_set():
        row.problems.append("the signal was never sent: the run did not send that request")
    verdict(row, run, observe(kube, scene, lease_must_be_free=True), scene, expect={143})
    if cli.signalled is not None and run.exit_code is not None:
        took = cli.started + run.elapsed - cli.signalled
        row.moment += f" (exit {took:.1f}s after the signal)"
        if took > TERM_BOUND_S:
            row.problems.append(f"exited {took:.1f}s after SIGTERM: more than {TERM_BOUND_S:.0f}s")
    return LEDGER.add(row)


@pytest.mark.parametrize("command", ["deploy", "switch", "rollback", "group switch"])
def test_sigterm_at_every_step(
    command: str,
    kube: Client,
    cluster_kubeconfig: Path,
    proxied: Path,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    trace = set_up(kube, command, cluster_kubeconfig, tmp_path, "trace")
    assert run_cli(trace.args(), proxied).exit_code == 0
    steps = fault_proxy.steps(trace.namespace)
    done: list[tuple[Scene, Row]] = []

    def one(step: str) -> None:
        scene = set_up(kube, command, cluster_kubeconfig, tmp_path, "term")
        done.append((scene, cancel_at(kube, scene, proxied, fault_proxy, step)))

    concurrently(steps, one)
    concurrently(done, lambda item: next_run(kube, item[0], item[1]))
    bad = [row for _, row in done if not row.consistent]
    assert not bad, "\n".join(" | ".join(row.cells()) for row in bad)
