"""Every request of `deploy`, `switch`, `rollback` and `group switch` failed in turn.

A clean run through the FaultProxy lists the command's requests (its steps, in order). Then, for each
step, a fresh copy of the scene runs the command with that step's first request failed:

- reads (GET, LIST, WATCH): the connection reset before the apiserver sees it, or a 503;
- writes (POST, PUT, PATCH): reset before the apiserver sees it, reset after it applied it (the answer
  lost), a 503, or no answer until the client's timeout (applied, answer withheld).

After each: the invariants (harness.observe, with every Lease free: the run that ended gave it back),
then the same command again (the CI job re-run), which must work and reach the command's goal.
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
    WIDTH,
    Row,
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
from tests.faults.httpfaults import FaultProxy, Kind, Rule

pytestmark = pytest.mark.cluster

FAULT_NAMES = {
    "reset-before": "reset before the request reached the API",
    "reset-after": "reset after the API applied it",
    "status-503": "HTTP 503",
    "timeout-after": "no answer (client timeout) after the API applied it",
}
POLLS = 2
READ_FAULTS: tuple[Kind, ...] = ("reset-before", "status-503")
WRITE_FAULTS: tuple[Kind, ...] = (
    "reset-after",
    "timeout-after",
    "reset-before",
    "status-503",
)  # a read repeated more often than this is a poll: its first ones stand for the rest


def short(step: str) -> str:
    """'PATCH /api/v1/namespaces/NS/services/shop' -> 'PATCH services/shop'."""
    return re.sub(r"/(api|apis/[^/]+)/v1/(namespaces/NS/)?", " ", step, count=1).replace("  ", " ")


def ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def is_read(step: str) -> bool:
    return step.split()[0] in ("GET", "WATCH")


def cases(trace: list[tuple[str, int]]) -> list[tuple[str, int, Kind]]:
    """One fault for each request of a clean run's trace; four for the write that moves traffic.

    The kinds take turns, reads between a reset and a 503 (the engine retries a read whatever failed
    it), writes among all four: never applied (reset, 503) or applied with the answer lost (reset,
    timeout). The first write to the live Service (the one that moves traffic) gets all four."""
    out: list[tuple[str, int, Kind]] = []
    reads = writes = 0
    for step, occurrence in trace:
        if is_read(step):
            if occurrence <= POLLS:
                out.append((step, occurrence, READ_FAULTS[reads % len(READ_FAULTS)]))
                reads += 1
        elif occurrence == 1 and "/services/" in step and "-preview" not in step:
            out += [(step, occurrence, kind) for kind in WRITE_FAULTS]
        else:
            out.append((step, occurrence, WRITE_FAULTS[writes % len(WRITE_FAULTS)]))
            writes += 1
    return out


@pytest.fixture(scope="module")
def every_request(
    kube: Client,
    cluster_kubeconfig: Path,
    fault_proxy: FaultProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[Row]]:
    """Every command's requests failed in turn, all commands at once; the rows by command.

    One pool for all of them, and the re-runs after all faults: a Lease a fault left held (its
    release failed) expires meanwhile, once for the whole matrix instead of once per command."""
    tmp = tmp_path_factory.mktemp("every-request")
    proxied = kubeconfig_via(cluster_kubeconfig, fault_proxy.port, tmp / "kubeconfig-proxied")

    def traced(command: str) -> list[tuple[str, int]]:
        scene = set_up(kube, command, cluster_kubeconfig, tmp, "trace")
        clean = run_cli(scene.args(), proxied)
        assert clean.exit_code == 0, clean.describe()
        return fault_proxy.trace(scene.namespace)

    planned = [(command, *case) for command in COMMANDS for case in cases(traced(command))]
    rows = {
        index: LEDGER.add(Row(fault=FAULT_NAMES[kind], phase=command, moment=f"{ordinal(n)} {short(step)}"))
        for index, (command, step, n, kind) in enumerate(planned)
    }
    later: list[tuple[Scene, Row]] = []

    def inject(index: int) -> None:
        guarded(rows[index], lambda: one(index))

    def one(index: int) -> None:
        command, step, occurrence, kind = planned[index]
        row = rows[index]
        scene = set_up(kube, command, cluster_kubeconfig, tmp, "req")
        rule = fault_proxy.add(Rule(scene.namespace, step, kind, occurrence=occurrence))
        run = run_cli(scene.args(), proxied, bound=BOUND_S)
        if not rule.fired.is_set():
            row.problems.append("the fault never fired: this run did not send that request")
        # One failed request never leaves a Lease held by a run that has ended: a take whose answer
        # was lost is given back, a failed release is retried.
        verdict(row, run, observe(kube, scene, lease_must_be_free=True), scene, expect={0, 1, 3})
        next_run_now_or_later(kube, scene, row, later)

    concurrently(list(rows), inject, width=WIDTH)
    run_later(kube, later)
    by_command: dict[str, list[Row]] = {command: [] for command in COMMANDS}
    for index, (command, *_) in enumerate(planned):
        by_command[command].append(rows[index])
    return by_command


MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "deploy": (),
    "switch": (needs("intent"),),
    "rollback": (needs("intent"),),
    "group switch": (needs("intent"),),
}


@pytest.mark.parametrize("command", [pytest.param(c, marks=MARKS[c]) for c in COMMANDS])
def test_every_request_failed_in_turn(command: str, every_request: dict[str, list[Row]]) -> None:
    rows = every_request[command]
    assert rows, f"no request of {command} was failed"
    bad = [row for row in rows if not row.consistent]
    assert not bad, f"{len(bad)} of {len(rows)} faults left {command} inconsistent:\n" + "\n".join(
        " | ".join(row.cells()) for row in bad
    )
