"""Cancellation's rules, in-process: nothing new starts once cancelled, a write in flight is never cut,
and a run that lost its Lease stops before its next write. The real signals, processes and Lease
are in tests/integration/test_cancel.py."""

from __future__ import annotations

import copy
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import bluegreen.lock
from bluegreen import cancel
from bluegreen.errors import LockLostError, NotFoundError, NotReadyError, UnreachableError
from bluegreen.kube import call
from bluegreen.lock import Lock
from bluegreen.model import AppSpec, RunInfo


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    cancel.reset()
    yield
    cancel.reset()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_no_call_starts_once_cancelled_but_the_leases_own_do() -> None:
    sent: list[str] = []
    cancel.request(signal.SIGTERM)
    with pytest.raises(cancel.Cancelled) as stopped:
        call("patching Service x", lambda: sent.append("write"), idempotent=False)
    assert stopped.value.signum == signal.SIGTERM and sent == []
    with pytest.raises(cancel.Cancelled):  # e.g. a verification in a group member's thread
        call("reading Service x", lambda: sent.append("read"))
    assert sent == []
    with cancel.shield(stop_after=False):  # as Lock.release
        call("releasing lock Lease x", lambda: sent.append("release"), idempotent=False, guard=False)
    assert sent == ["release"]


def test_a_signal_during_a_write_waits_for_it_and_stops_right_after() -> None:
    cancel.install()
    steps: list[str] = []

    def write() -> str:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the write is in flight
        time.sleep(0.05)
        steps.append("write landed")
        return "ok"

    with pytest.raises(cancel.Cancelled):
        call("patching Service x", write, idempotent=False)
    assert steps == ["write landed"]
    assert cancel.writes() == ["patching Service x"]


def test_a_signal_outside_a_write_interrupts_a_wait_at_once() -> None:
    cancel.install()
    started = time.monotonic()
    signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with pytest.raises(cancel.Cancelled) as stopped:
        time.sleep(30)
    assert stopped.value.signum == signal.SIGINT
    assert time.monotonic() - started < 5


def test_a_write_guard_refuses_before_sending() -> None:
    sent: list[str] = []

    def lost(what: str) -> None:
        raise LockLostError(f"{what}: not sent")

    with cancel.guarded(lost), pytest.raises(LockLostError, match="patching Service x: not sent"):
        call("patching Service x", lambda: sent.append("write"), idempotent=False)
    assert sent == []
    call("patching Service x", lambda: sent.append("write"), idempotent=False)  # guard gone with the block
    assert sent == ["write"]


def test_sleep_ends_early_when_cancelled() -> None:
    started = time.monotonic()
    signal.signal(signal.SIGALRM, lambda *_: cancel.request(signal.SIGTERM))
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    with pytest.raises(cancel.Cancelled):
        cancel.sleep(30)
    assert time.monotonic() - started < 2


class FlakyLeases:
    """A stand-in for the cluster that serves one Lease and fails every write after the first.

    It stands in for the Lease's API calls (bluegreen.lock's get_json and write_json), whatever client
    is under them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lease: dict[str, Any] | None = None
        self.writes = 0
        monkeypatch.setattr(bluegreen.lock, "get_json", self.get_json)
        monkeypatch.setattr(bluegreen.lock, "write_json", self.write_json)

    def get_json(self, _kube: object, path: str) -> dict[str, Any]:
        assert path == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/bluegreen-shop"
        if self.lease is None:
            raise NotFoundError(f"{path}: not found")
        return copy.deepcopy(self.lease)

    def write_json(self, _kube: object, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        if method == "POST" and self.lease is None:
            assert path == "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
            self.lease = {**copy.deepcopy(body), "metadata": {**body["metadata"], "resourceVersion": "1"}}
            return copy.deepcopy(self.lease)
        raise UnreachableError(f"{method} {path}: connection refused")


class Warnings:
    def __init__(self) -> None:
        self.said: list[str] = []

    def progress(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        self.said.append(message)

    def stage(self, name: str) -> None:
        pass


def test_an_error_releasing_the_lock_never_replaces_the_runs_own_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FlakyLeases(monkeypatch)
    said = Warnings()
    lock = Lock(None, AppSpec(name="shop", namespace="ns"), RunInfo(), reporter=said)  # type: ignore[arg-type]
    with pytest.raises(NotReadyError, match="green is not ready"), lock.hold():
        raise NotReadyError("green is not ready")
    assert any("could not release lock Lease ns/bluegreen-shop" in w for w in said.said), said.said


def test_after_a_steps_first_write_its_other_writes_are_made_then_it_stops() -> None:
    """A switch and its audit trail: the selector written, a signal, the history still written."""
    sent: list[str] = []

    def switch() -> None:
        with cancel.shield():
            call("patching Service shop", lambda: sent.append("selector"), idempotent=False)
            cancel.request(signal.SIGTERM)
            call("recording history on Service shop", lambda: sent.append("history"), idempotent=False)

    with pytest.raises(cancel.Cancelled):
        switch()
    assert sent == ["selector", "history"]
    with pytest.raises(cancel.Cancelled):  # a new step is not started
        call("patching Service shop", lambda: sent.append("again"), idempotent=False)
    assert sent == ["selector", "history"]


def test_a_run_whose_renewals_failed_too_long_stops_before_its_next_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Others judge the Lease gone after its duration without a change: past RENEW_DEADLINE of that
    without a successful renewal, the holder stops writing (renewals here all fail)."""
    FlakyLeases(monkeypatch)
    lock = Lock(None, AppSpec(name="shop", namespace="ns"), RunInfo(), reporter=Warnings())  # type: ignore[arg-type]
    sent: list[str] = []

    def run() -> None:
        with lock.hold():
            call("patching Service shop", lambda: sent.append("first"), idempotent=False)
            lock._renewed -= 41  # as if the last successful renewal was 41s ago
            call("patching Service shop", lambda: sent.append("second"), idempotent=False)

    with pytest.raises(LockLostError, match="could not be renewed for 40s"):
        run()
    assert sent == ["first"]
