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
    COMMANDS,
    LEDGER,
    TERM_BOUND_S,
    WIDTH,
    Cli,
    Row,
    Run,
    Scene,
    concurrently,
    guarded,
    kubeconfig_via,
    needs,
    next_run_now_or_later,
    observe,
    run_cli,
    run_later,
    set_up,
    verdict,
)
from tests.faults.httpfaults import FaultProxy, Request, Rule
from tests.faults.test_requests import is_read, ordinal, short

pytestmark = pytest.mark.cluster

MISSING = "SIGTERM handling (issue 10 item 3): exit 143 at a safe point, Lease released"


def cancel_at(
    kube: Client,
    scene: Scene,
    proxied: Path,
    fault_proxy: FaultProxy,
    step: str,
    occurrence: int,
    row: Row,
    final_lease_write: int = 0,
) -> None:
    """Run the scene's command and send it SIGTERM when `step`'s request arrives; fills `row`."""
    holder: dict[str, Cli] = {}

    def term(_: Request) -> None:
        holder["cli"].signal(signal.SIGTERM)

    rule = fault_proxy.add(Rule(scene.namespace, step, "hook", occurrence=occurrence, hook=term))
    holder["cli"] = cli = Cli(scene.args(), proxied)
    run = cli.wait()
    if not rule.fired.is_set():
        row.problems.append("the signal was never sent: the run did not send that request")
    # Cancelled while releasing the lock, the work is done: finishing with 0 is as right as 143.
    releasing = "/leases/" in step and step.split()[0] == "PUT" and occurrence == final_lease_write
    verdict(
        row,
        run,
        observe(kube, scene, lease_must_be_free=True),
        scene,
        expect={0, 143} if releasing else {143},
    )
    within_bound(row, cli, run)


def within_bound(row: Row, cli: Cli, run: Run) -> None:
    """How long the run took from its SIGTERM to its exit, in the row's moment; over the bound, a problem."""
    if cli.signalled is not None and run.exit_code is not None:
        took = cli.started + run.elapsed - cli.signalled
        row.moment += f" (exit {took:.1f}s after the signal)"
        if took > TERM_BOUND_S:
            row.problems.append(f"exited {took:.1f}s after SIGTERM: more than {TERM_BOUND_S:.0f}s")


def moments(requests: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The first request (before the lock), every write, and the rollout's wait (the deploy's third
    read of its Deployment, when it polled that often): the moments a cancellation can find."""
    chosen = [requests[0], *[r for r in requests if not is_read(r[0])]]
    return chosen + [r for r in requests if r[0].endswith("/deployments/shop-green") and r[1] == 3]


@pytest.fixture(scope="module")
def cancelled(
    kube: Client,
    cluster_kubeconfig: Path,
    fault_proxy: FaultProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[Row]]:
    """Every command cancelled at each of its moments, all at once; the rows by command."""
    tmp = tmp_path_factory.mktemp("sigterm")
    proxied = kubeconfig_via(cluster_kubeconfig, fault_proxy.port, tmp / "kubeconfig-proxied")

    def traced(command: str) -> list[tuple[str, int]]:
        scene = set_up(kube, command, cluster_kubeconfig, tmp, "trace")
        clean = run_cli(scene.args(), proxied)
        assert clean.exit_code == 0, clean.describe()
        return fault_proxy.trace(scene.namespace)

    traces = {command: traced(command) for command in COMMANDS}
    planned = [(command, *moment) for command in COMMANDS for moment in moments(traces[command])]

    def final_lease_write(command: str, step: str) -> int:
        """The occurrence of `step` that releases the lock (its last write in the clean trace)."""
        return max((n for s, n in traces[command] if s == step), default=0)

    results = {
        index: LEDGER.add(
            Row(fault="SIGTERM to the CLI", phase=command, moment=f"{ordinal(n)} {short(step)} in flight")
        )
        for index, (command, step, n) in enumerate(planned)
    }
    later: list[tuple[Scene, Row]] = []

    def one(index: int) -> None:
        guarded(results[index], lambda: cancel(index))

    def cancel(index: int) -> None:
        command, step, occurrence = planned[index]
        scene = set_up(kube, command, cluster_kubeconfig, tmp, "term")
        cancel_at(
            kube,
            scene,
            proxied,
            fault_proxy,
            step,
            occurrence,
            results[index],
            final_lease_write(command, step),
        )
        next_run_now_or_later(kube, scene, results[index], later)

    concurrently(list(range(len(planned))), one, width=WIDTH)
    run_later(kube, later)
    by_command: dict[str, list[Row]] = {command: [] for command in COMMANDS}
    for index in sorted(results):
        by_command[planned[index][0]].append(results[index])
    return by_command


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, marks=needs("cancel") if c == "deploy" else needs("cancel", "intent"))
        for c in COMMANDS
    ],
)
def test_sigterm_at_each_moment(command: str, cancelled: dict[str, list[Row]]) -> None:
    rows = cancelled[command]
    assert rows, f"{command} was never cancelled"
    bad = [row for row in rows if not row.consistent]
    assert not bad, f"{len(bad)} of {len(rows)} cancellations left {command} inconsistent:\n" + "\n".join(
        " | ".join(row.cells()) for row in bad
    )
