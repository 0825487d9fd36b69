"""The lock: a coordination.k8s.io/v1 Lease `bluegreen-<app>` that every mutating command holds.

Taking it is a write guarded by the resourceVersion read, so of two runs only one can win. The holder
renews it while it works; a run that dies leaves a Lease that expires after `duration` seconds and is
then taken over. Releasing clears the holder but keeps the object, so `leaseTransitions` counts runs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from types import TracebackType

from lightkube import Client
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from bluegreen.errors import ConflictError, LockHeldError
from bluegreen.kube import call, found
from bluegreen.model import AppSpec, NullReporter, Reporter, RunInfo

DURATION_S = 60


@dataclass(frozen=True)
class Holder:
    identity: str
    since: datetime | None
    expires: datetime | None


def holder_of(spec: LeaseSpec | None, now: datetime) -> Holder | None:
    """Who holds the lease now, or None when it is free or has expired (pure)."""
    if spec is None or not spec.holderIdentity:
        return None
    renewed = spec.renewTime or spec.acquireTime
    duration = spec.leaseDurationSeconds or DURATION_S
    expires = renewed + timedelta(seconds=duration) if renewed else None
    if expires is not None and expires <= now:
        return None
    return Holder(identity=spec.holderIdentity, since=spec.acquireTime, expires=expires)


def describe(holder: Holder, now: datetime) -> str:
    since = f" since {holder.since.isoformat(timespec='seconds')}" if holder.since else ""
    left = (
        f", expires in {int((holder.expires - now).total_seconds())}s unless renewed"
        if holder.expires
        else ""
    )
    return f"{holder.identity}{since}{left}"


class Lock:
    """`with Lock(kube, app, run): ...` holds the app's Lease for the block, renewing it meanwhile."""

    def __init__(
        self,
        kube: Client,
        app: AppSpec,
        run: RunInfo,
        *,
        wait: float = 0.0,
        duration: int = DURATION_S,
        reporter: Reporter | None = None,
    ) -> None:
        self.kube, self.app, self.wait, self.duration = kube, app, wait, duration
        self.reporter = reporter or NullReporter()
        # Unique per process: two runs by the same actor still exclude each other.
        self.identity = f"{run.holder} on {socket.gethostname()} pid {os.getpid()} [{uuid.uuid4().hex[:8]}]"
        self._lease: Lease | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _what(self) -> str:
        return f"lock Lease {self.app.namespace}/{self.app.lease}"

    def _read(self) -> Lease | None:
        return found(
            f"reading {self._what()}",
            lambda: self.kube.get(Lease, self.app.lease, namespace=self.app.namespace),
        )

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        last_note = 0.0
        while True:
            now = datetime.now(UTC)
            lease = self._read()
            holder = holder_of(lease.spec, now) if lease else None
            if holder is None or holder.identity == self.identity:
                try:
                    self._create(now) if lease is None else self._take(lease, now)
                except ConflictError:
                    continue  # another run wrote first: read again and decide again
                break
            if time.monotonic() >= deadline:
                raise LockHeldError(
                    f"{self._what()} is held by {describe(holder, now)}",
                    remedy="Wait for that run to finish, or pass --wait-for-lock DURATION. "
                    "A run that died frees the lock when it expires.",
                )
            if time.monotonic() - last_note > 5:
                self.reporter.progress(f"waiting for the lock held by {describe(holder, now)}")
                last_note = time.monotonic()
            time.sleep(1.0)
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew, args=(self._stop,), name="bluegreen-lock-renewer", daemon=True
        )
        self._renewer.start()

    def _spec(self, now: datetime, previous: LeaseSpec | None) -> LeaseSpec:
        transitions = (previous.leaseTransitions or 0) if previous else 0
        if previous is None or previous.holderIdentity != self.identity:
            transitions += 1 if previous else 0
        return LeaseSpec(
            holderIdentity=self.identity,
            leaseDurationSeconds=self.duration,
            acquireTime=now
            if previous is None or previous.holderIdentity != self.identity
            else previous.acquireTime,
            renewTime=now,
            leaseTransitions=transitions,
        )

    def _create(self, now: datetime) -> None:
        lease = Lease(
            metadata=ObjectMeta(name=self.app.lease, labels={"app.kubernetes.io/managed-by": "bluegreen"}),
            spec=self._spec(now, None),
        )
        self._lease = call(
            f"creating {self._what()}",
            lambda: self.kube.create(lease, namespace=self.app.namespace),
            idempotent=False,
        )

    def _take(self, lease: Lease, now: datetime) -> None:
        # replace() sends the resourceVersion we read: a concurrent taker makes this a 409.
        lease.spec = self._spec(now, lease.spec)
        self._lease = call(f"taking {self._what()}", lambda: self.kube.replace(lease), idempotent=False)

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(self.duration / 3):
            lease = self._lease
            if lease is None or lease.spec is None:
                return
            lease.spec.renewTime = datetime.now(UTC)
            try:
                self._lease = call(
                    f"renewing {self._what()}", partial(self.kube.replace, lease), idempotent=False
                )
            except Exception as error:  # a failed renewal must not kill the run: say it
                self.reporter.warning(f"could not renew {self._what()}: {error}")

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        lease = self._read()
        if lease is None or lease.spec is None or lease.spec.holderIdentity != self.identity:
            return
        lease.spec.holderIdentity = None
        lease.spec.renewTime = None
        try:
            call(f"releasing {self._what()}", lambda: self.kube.replace(lease), idempotent=False)
        except Exception as error:  # the work is done; the lock expires anyway
            self.reporter.warning(
                f"could not release {self._what()} ({error}); it expires in {self.duration}s"
            )
        self._lease = None


def current_holder(kube: Client, app: AppSpec) -> str | None:
    """Who holds the app's lock now, described for `status`; None when free."""
    lease = found(
        f"reading lock Lease {app.namespace}/{app.lease}",
        lambda: kube.get(Lease, app.lease, namespace=app.namespace),
    )
    now = datetime.now(UTC)
    holder = holder_of(lease.spec if lease else None, now)
    return describe(holder, now) if holder else None
