"""The Lease lock on the real apiserver: re-entrant, expiry judged by our own clock, and a run that lost
its Lease stops before its next write."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lightkube import Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

import bluegreen.lock
from bluegreen.cli import execute
from bluegreen.errors import LockHeldError, LockLostError, UnreachableError
from bluegreen.kube import call, connect, write_json
from bluegreen.lock import Lock
from bluegreen.model import AppSpec, NullReporter, RunInfo
from bluegreen.phases.context import Context
from hack.localcluster import LocalCluster
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster


def holder(kube: Client, namespace: str) -> str | None:
    lease = kube.get(Lease, "bluegreen-shop", namespace=namespace)
    return lease.spec.holderIdentity if lease.spec else None


def switch(cluster: LocalCluster, namespace: str, *args: str) -> tuple[int, str]:
    outcome = execute(
        ["switch", *args, "--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    )
    return outcome.exit_code, str(outcome.error or "")


def test_a_nested_use_keeps_the_lease_until_the_outermost_exit(kube: Client, namespace: str) -> None:
    ctx = Context(kube=kube, app=AppSpec(name="shop", namespace=namespace))
    with ctx.lock() as outer:
        with ctx.lock() as inner:
            assert inner is outer
        assert holder(kube, namespace) == outer.identity  # the inner exit did not release it
        assert outer.held()
    assert holder(kube, namespace) is None


@pytest.mark.parametrize("skew", [timedelta(minutes=-10), timedelta(hours=1)], ids=["behind", "ahead"])
def test_expiry_is_judged_by_our_clock_never_by_the_holders(
    cluster: LocalCluster, kube: Client, namespace: str, skew: timedelta
) -> None:
    """A holder that stopped renewing, whose clock is 10 minutes behind or an hour ahead: it is gone
    once WE have seen its record unchanged for its leaseDurationSeconds (2s here), not before, not
    an hour later."""
    create_app(kube, namespace, "shop", replicas=1)
    kube.create(
        Lease(
            metadata=ObjectMeta(name="bluegreen-shop"),
            spec=LeaseSpec(
                holderIdentity="a run that died", renewTime=datetime.now(UTC) + skew, leaseDurationSeconds=2
            ),
        ),
        namespace=namespace,
    )
    code, error = switch(cluster, namespace, "--to", "green")
    assert code == 1 and "a run that died" in error  # one look cannot tell it is gone
    started = time.monotonic()
    code, error = switch(cluster, namespace, "--to", "green", "--wait-for-lock", "30s")
    assert code == 0, error
    assert 2 <= time.monotonic() - started < 20  # waited its 2s of our clock (plus the switch)
    assert holder(kube, namespace) is None


def test_a_holder_that_keeps_renewing_is_never_taken_over(kube: Client, namespace: str) -> None:
    app = AppSpec(name="shop", namespace=namespace)
    with Lock(kube, app, RunInfo(run_id="1"), duration=2) as first:  # renews every 2/3 s
        waiting = Lock(kube, app, RunInfo(run_id="2"), wait=5)
        with pytest.raises(LockHeldError, match="run 1"):
            waiting.acquire()
        assert holder(kube, namespace) == first.identity


def test_a_run_that_lost_its_lease_stops_before_its_next_write(kube: Client, namespace: str) -> None:
    create_app(kube, namespace, "shop", replicas=1, wait=False)
    app = AppSpec(name="shop", namespace=namespace)
    lock = Lock(kube, app, RunInfo(run_id="slow run"), duration=3)  # renews every second
    with lock.hold():
        # Another run takes the Lease (it judged this one gone, e.g. after a network partition).
        kube.patch(
            Lease,
            "bluegreen-shop",
            {"spec": {"holderIdentity": "run 2"}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        deadline = time.monotonic() + 10
        while lock.held() and time.monotonic() < deadline:
            time.sleep(0.1)  # the next renewal finds another holder
        assert not lock.held()
        with pytest.raises(LockLostError, match="run 2 holds it now"):
            call(
                "patching Service shop",
                lambda: kube.patch(
                    Service, "shop", {"metadata": {"labels": {"x": "y"}}}, namespace=namespace
                ),
                idempotent=False,
            )
    service = kube.get(Service, "shop", namespace=namespace)
    assert "x" not in ((service.metadata.labels if service.metadata else None) or {})  # never sent
    assert holder(kube, namespace) == "run 2"  # and its Lease left alone on the way out


class ReleaseFailsOnce:
    """The real API calls, but the first write that clears the Lease's holder fails as a connection
    reset: before the apiserver saw it, or after it applied it (the answer lost). `meanwhile` runs
    at that moment (another run taking the Lease)."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, *, applied: bool, meanwhile: Callable[[], None] | None = None
    ) -> None:
        self.applied, self.meanwhile, self.failed = applied, meanwhile, False
        self.write_json = write_json
        monkeypatch.setattr(bluegreen.lock, "write_json", self.write)

    def write(
        self, kube: Client, method: str, path: str, body: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        releasing = method == "PUT" and not (body.get("spec") or {}).get("holderIdentity")
        if releasing and not self.failed:
            self.failed = True
            if self.applied:
                self.write_json(kube, method, path, body, **kwargs)
            if self.meanwhile:
                self.meanwhile()
            # What `call` makes of a reset answer to a write (it is not sent again).
            raise UnreachableError(
                f"releasing {path}: the Kubernetes API did not answer (RemoteProtocolError: "
                "Server disconnected without sending a response.)"
            )
        return self.write_json(kube, method, path, body, **kwargs)


class Warnings(NullReporter):
    def __init__(self) -> None:
        self.said: list[str] = []

    def warning(self, message: str) -> None:
        self.said.append(message)


@pytest.mark.parametrize("applied", [False, True], ids=["reset-before", "reset-after-applied"])
def test_a_release_whose_write_failed_is_retried_and_leaves_the_lease_free(
    kube: Client, namespace: str, applied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, one failed release write left the Lease held for its 60 s and every re-run refused."""
    flaky = ReleaseFailsOnce(monkeypatch, applied=applied)
    reporter = Warnings()
    with Lock(kube, AppSpec(name="shop", namespace=namespace), RunInfo(run_id="1"), reporter=reporter):
        pass
    assert flaky.failed
    assert holder(kube, namespace) is None
    assert reporter.said == []  # retried (or found already released): nothing to warn about
    second = Lock(kube, AppSpec(name="shop", namespace=namespace), RunInfo(run_id="2"))
    second.acquire()  # the next run takes it at once
    second.release()


def test_a_retried_release_never_clears_another_runs_lease(
    kube: Client, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def another_run_takes_it() -> None:
        kube.patch(
            Lease,
            "bluegreen-shop",
            {"spec": {"holderIdentity": "run 2"}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )

    flaky = ReleaseFailsOnce(monkeypatch, applied=False, meanwhile=another_run_takes_it)
    with Lock(kube, AppSpec(name="shop", namespace=namespace), RunInfo(run_id="1")):
        pass
    assert flaky.failed
    assert holder(kube, namespace) == "run 2"


def test_reads_after_a_peek_count_as_under_the_lease_only_if_no_run_held_it_since(
    kube: Client, namespace: str
) -> None:
    """A switch reads the Lease before the Deployments and does not read them again under it only when
    it took the Lease from that very read (issue 14): another run in between makes it read again."""
    app = AppSpec(name="shop", namespace=namespace)
    ctx = Context(kube=kube, app=app)
    ctx.peek_lock()
    with ctx.lock() as lock:
        assert lock.undisturbed  # no Lease at all when peeked, and created from that read
    ctx.peek_lock()
    with ctx.lock() as lock:
        assert lock.undisturbed  # released, free when peeked, taken from that read
    ctx.peek_lock()
    with Lock(kube, app, RunInfo()):  # another run takes it and gives it back meanwhile
        pass
    with ctx.lock() as lock:
        assert holder(kube, namespace) == lock.identity  # still taken: the 409 was read again
        assert not lock.undisturbed
    with ctx.lock() as lock:
        assert not lock.undisturbed  # no peek: read as before
    assert holder(kube, namespace) is None


def test_release_from_the_copy_held_reads_again_when_the_lease_changed(kube: Client, namespace: str) -> None:
    """Released from our own last write's copy (one request); a Lease written since (a 409) is read
    again: still ours, released; someone else's, left to them."""
    app = AppSpec(name="shop", namespace=namespace)
    patch = {"metadata": {"annotations": {"example.com/touched": "yes"}}}
    with Lock(kube, app, RunInfo()) as lock:
        kube.patch(Lease, app.lease, patch, namespace=namespace, patch_type=PatchType.MERGE)
        assert holder(kube, namespace) == lock.identity
    assert holder(kube, namespace) is None

    with Lock(kube, app, RunInfo()):
        other = {"spec": {"holderIdentity": "someone else"}}
        kube.patch(Lease, app.lease, other, namespace=namespace, patch_type=PatchType.MERGE)
    assert holder(kube, namespace) == "someone else"


def lease_of(kube: Client, namespace: str) -> Lease:
    return kube.get(Lease, "bluegreen-shop", namespace=namespace)


def test_a_free_lease_is_taken_ahead_in_one_request_and_counted_once(
    cluster: LocalCluster, kube: Client, namespace: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """peek(take=True) takes a free Lease in one JSON patch: the hold that follows sends nothing more to
    take it, what was read between counts as read under it, and the release counts one transition."""
    app = AppSpec(name="shop", namespace=namespace)
    with Lock(kube, app, RunInfo()):  # the Lease as any earlier run leaves it: free
        pass
    before = lease_of(kube, namespace).spec
    assert before is not None and before.holderIdentity is None
    log = tmp_path / "requests.log"
    monkeypatch.setenv("BLUEGREEN_REQUEST_LOG", str(log))
    ctx = Context(kube=connect(kubeconfig=str(cluster.kubeconfig)), app=app)  # the CLI's client, logged
    ctx.peek_lock(take=True)
    ours = ctx._lock
    assert ours is not None and holder(kube, namespace) == ours.identity
    with ctx.lock() as lock:
        assert lock.undisturbed
        assert holder(kube, namespace) == lock.identity
    ctx.drop_claim()  # taken up by the hold: nothing left to give back
    methods = [line.split(" ", 2)[1] for line in log.read_text().splitlines()]
    assert methods == ["PATCH", "PUT"]  # taken, released
    after = lease_of(kube, namespace).spec
    assert after is not None and after.holderIdentity is None
    assert (after.leaseTransitions or 0) == (before.leaseTransitions or 0) + 1


def test_a_lease_taken_ahead_and_never_held_is_given_back(
    cluster: LocalCluster, kube: Client, namespace: str
) -> None:
    """A run that took the Lease ahead and then had nothing to do, or was refused, gives it back: the
    next run finds it free."""
    app = AppSpec(name="shop", namespace=namespace)
    with Lock(kube, app, RunInfo()):
        pass
    ctx = Context(kube=kube, app=app)
    ctx.peek_lock(take=True)
    assert holder(kube, namespace) is not None
    ctx.drop_claim()
    assert holder(kube, namespace) is None

    create_app(kube, namespace, "shop", replicas=1)
    assert switch(cluster, namespace, "--to", "blue") == (0, "")  # blue is live: nothing to do
    assert holder(kube, namespace) is None
    code, error = switch(cluster, namespace, "--to", "purple")
    assert code == 2 and error
    kube.patch(
        Deployment, "shop-green", {"spec": {"replicas": 0}}, namespace=namespace, patch_type=PatchType.MERGE
    )
    code, error = switch(cluster, namespace, "--to", "green")
    assert code != 0 and "green" in error  # refused: no ready pods to send traffic to
    assert holder(kube, namespace) is None


def test_a_lease_held_by_another_run_is_not_taken_ahead(kube: Client, namespace: str) -> None:
    """Taking ahead only takes a Lease no one holds: a held one is left to acquire, which reads it and
    waits (or fails) as it always did; two runs taking ahead at once get it once."""
    app = AppSpec(name="shop", namespace=namespace)
    with Lock(kube, app, RunInfo()) as other:
        ctx = Context(kube=kube, app=app)
        ctx.peek_lock(take=True)
        assert holder(kube, namespace) == other.identity
        with pytest.raises(LockHeldError), ctx.lock():
            pass
        assert holder(kube, namespace) == other.identity
    first, second = Context(kube=kube, app=app), Context(kube=kube, app=app)
    first.peek_lock(take=True)
    second.peek_lock(take=True)
    assert first._lock is not None and second._lock is not None
    assert holder(kube, namespace) == first._lock.identity
    with first.lock() as lock:
        assert lock.undisturbed
        with pytest.raises(LockHeldError), second.lock():
            pass
    second.drop_claim()
    assert holder(kube, namespace) is None


def test_a_lease_taken_ahead_clears_what_a_preempted_watch_left(kube: Client, namespace: str) -> None:
    """A watch preempted by a rollback leaves the rollback's mark on the Lease; a run taking it ahead
    clears it (and the watch's mode), so its exclusive hold is not mistaken for a preemptible one."""
    app = AppSpec(name="shop", namespace=namespace)
    with Lock(kube, app, RunInfo()):
        pass
    marks = {bluegreen.lock.PREEMPTED_BY: "a rollback", bluegreen.lock.MODE: bluegreen.lock.PREEMPTIBLE}
    kube.patch(
        Lease,
        "bluegreen-shop",
        {"metadata": {"annotations": marks}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    ctx = Context(kube=kube, app=app)
    ctx.peek_lock(take=True)
    with ctx.lock() as lock:
        assert lock.undisturbed and lock.held()
        annotations = lease_of(kube, namespace).metadata.annotations or {}  # type: ignore[union-attr]
        assert bluegreen.lock.PREEMPTED_BY not in annotations and bluegreen.lock.MODE not in annotations
    assert holder(kube, namespace) is None
