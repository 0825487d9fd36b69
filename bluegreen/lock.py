"""The lock: a coordination.k8s.io/v1 Lease `bluegreen-<app>` that every mutating command holds.

Taking it is a write guarded by the resourceVersion read, so of two runs only one can win. A switch
or rollback takes a free Lease in one request instead (Lock.peek(take=True)): a JSON patch whose
"test" is that no holder is set, which the apiserver applies atomically, so again only one run wins;
a Lease held by anyone, even a run that died, is left to the read-and-judge path. The holder renews it
while it works; releasing clears the holder but keeps the object, so `leaseTransitions` counts runs.

Expiry is judged as client-go's leaderelection judges it: by the clock of the run that reads, never
by the holder's. A waiting run remembers when, by its own monotonic clock, it last saw the Lease's
record change; a holder whose record has not changed for `leaseDurationSeconds` of that clock is
gone, and its Lease is taken over. So a run that died frees the lock `duration` seconds after another
run starts watching it, whatever the two machines' clocks say.

The holder stops writing once the Lease may no longer be its own: when a renewal finds another
holder, or when no renewal has succeeded for RENEW_DEADLINE of the duration (others may be about to
take over). Every write of the run passes `check_held` first (cancel.guarded), and fails with
LockLostError instead of being sent.

A watch holds the Lease "preemptible": a rollback takes it over at once instead of waiting (an
emergency rollback never waits for a release), and the watch sees that within one interval and
ends `preempted`. Deploy, switch and retire never hold it preemptible and are never taken over.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from bluegreen import cancel
from bluegreen.errors import (
    ClusterError,
    ConflictError,
    ForbiddenError,
    LockHeldError,
    LockLostError,
    NotFoundError,
    UsageError,
)
from bluegreen.kube import call, found, get_json, patch_json, write_json
from bluegreen.model import AppSpec, NullReporter, Reporter, RunInfo

if TYPE_CHECKING:
    from lightkube import Client

# The Lease as the apiserver sends it: a plain dict, not lightkube's typed model, whose import and
# decoders cost a switch more than its requests do (issue 14).
Lease = dict[str, Any]

DURATION_S = 60
RENEW_DEADLINE = 2 / 3  # of the duration: past it without a renewal, the holder stops writing
RETRY_S = 2.0  # seconds between renewal attempts after one failed
POLL_S = 1.0  # seconds between reads while waiting for the lock
RELEASE_TRIES = 3  # writes of a release: a failed one is read again and retried if still ours
RELEASE_BACKOFF_S = 0.25  # seconds before the second try, doubled for the third
MODE = "bluegreen.io/lock-mode"  # "preemptible" while a watch holds it
PREEMPTIBLE = "preemptible"
PREEMPTED_BY = "bluegreen.io/preempted-by"  # set by the rollback that took it over
API = "/apis/coordination.k8s.io/v1"


def leases_path(namespace: str, name: str | None = None) -> str:
    """The API path of the namespace's Leases, or of the Lease `name`."""
    return f"{API}/namespaces/{namespace}/leases" + (f"/{name}" if name else "")


def micro_time(when: datetime) -> str:
    """A MicroTime as lightkube wrote one (RFC 3339, UTC, microseconds, Z) (pure)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parsed_time(value: object) -> datetime | None:
    """A MicroTime as read, as a datetime; None when absent or unreadable (it is only shown) (pure)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class Seen(NamedTuple):
    """A Lease record as a waiting run saw it, and when (its own monotonic clock) it first saw it."""

    record: tuple[str, str, str]  # holder, renewTime, resourceVersion: any change is a sign of life
    at: float


class Holder(NamedTuple):
    identity: str
    since: datetime | None
    left: float  # seconds of our clock before it counts as gone, unless its record changes
    preemptible: bool = False


def judge(lease: Lease | None, seen: Seen | None, now: float) -> tuple[Holder | None, Seen | None]:
    """Who holds the Lease now, or None when it is free or its holder is gone (pure).

    `seen` is what the caller saw before (or None); `now` the caller's monotonic clock. Returns the
    holder and what to remember for the next read."""
    spec = lease.get("spec") if lease is not None else None
    if lease is None or spec is None or not spec.get("holderIdentity"):
        return None, None
    metadata = lease.get("metadata") or {}
    renewed = str(spec.get("renewTime") or spec.get("acquireTime") or "")
    version = metadata.get("resourceVersion") or ""
    record = (str(spec["holderIdentity"]), renewed, version)
    if seen is None or seen.record != record:
        seen = Seen(record=record, at=now)
    duration = spec.get("leaseDurationSeconds") or DURATION_S
    left = duration - (now - seen.at)
    if left <= 0:
        return None, seen
    annotations = metadata.get("annotations") or {}
    return (
        Holder(
            identity=str(spec["holderIdentity"]),
            since=parsed_time(spec.get("acquireTime")),
            left=left,
            preemptible=annotations.get(MODE) == PREEMPTIBLE,
        ),
        seen,
    )


def describe(holder: Holder) -> str:
    since = f" since {holder.since.isoformat(timespec='seconds')}" if holder.since else ""
    mode = " (a watch: a rollback takes it over)" if holder.preemptible else ""
    return f"{holder.identity}{since}{mode}; free after {holder.left:.0f}s without renewal"


class Lock:
    """`with Lock(kube, app, run): ...` holds the app's Lease for the block, renewing it meanwhile.

    Re-entrant: a nested use (release's phases, the watch's own rollback) keeps the Lease, and only the
    outermost exit releases it."""

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
        self.identity = f"{run.holder} on {socket.gethostname()} pid {os.getpid()} [{os.urandom(4).hex()}]"
        self._lease: Lease | None = None
        self._depth = 0
        self._lost = ""  # why the Lease is no longer ours ('' while it is)
        self.preempted_by = ""  # the rollback that took it over, if one did
        self._renewed = 0.0  # our monotonic clock at the last successful write of the Lease
        self._mutex = threading.Lock()  # the renewer and the run both write the Lease
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._peeked: Lease | None = None  # a free Lease as peek() read it, for acquire's first attempt
        self._peeked_none = False  # peek() found no Lease at all
        # peek(take=True) took the free Lease: held, not yet entered (acquire finds it taken; a run that
        # never gets there gives it back with drop_claim).
        self._claimed = False
        # leaseTransitions as the next write of the Lease sets it: a JSON patch cannot add 1 to it.
        self._transitions: int | None = None
        # Taken at the first attempt from the free Lease peek() read: no other run held it since (the
        # take is guarded by that read's resourceVersion), so what the run read after peek() is as good
        # as read under the Lease.
        self.undisturbed = False

    # -- holding ----------------------------------------------------------------------------------

    def __enter__(self) -> Lock:
        self._enter(preemptible=False, preempt=False)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()

    @contextmanager
    def hold(self, *, preemptible: bool = False, preempt: bool = False) -> Iterator[Lock]:
        """Hold the Lease for the block. `preemptible`: a rollback may take it over (the watch);
        `preempt`: take it over from a preemptible holder instead of waiting (rollback)."""
        self._enter(preemptible=preemptible, preempt=preempt)
        try:
            with cancel.guarded(self.check_held):
                yield self
        finally:
            self._exit()

    def peek(self, *, take: bool = False) -> None:
        """Read the Lease before the reads a run decides on, for acquire's first attempt (issue 14:
        then a switch need not read the Deployments again under the Lease; see `undisturbed`). A Lease
        held by someone is not kept: acquire reads it again, as it would have.

        `take`: take the Lease now if it is free, in one request instead of a read and a write; what
        the run reads after is read under it. Not where something slow comes before the lock (a
        Prometheus baseline): no renewer runs until acquire. A Lease held by someone (or past its
        holder's life: only reading it over time tells) is left to acquire, which reads it; the caller
        must call drop_claim() when it leaves without acquiring."""
        self._peeked, self._peeked_none = None, False
        if self._depth > 0 or self._claimed:
            return  # held already: nothing to take
        if take:
            answer = self._take_if_free()
            self._peeked_none = answer == "missing"
            if answer != "unknown":
                return  # taken; or held, and acquire reads it; or missing, and acquire creates it
        lease = self._read()
        if lease is None:
            self._peeked_none = True
        elif not (lease.get("spec") or {}).get("holderIdentity"):
            self._peeked = lease

    def _take_if_free(self) -> str:
        """Take the Lease if no one holds it, in one JSON patch whose "test" is that no holder is set;
        "taken", "held" (the test failed: someone holds it, maybe a run that died), "missing", or
        "unknown" (a Role without `patch` on Leases: read it instead)."""
        now = micro_time(datetime.now(UTC))
        patch: list[dict[str, Any]] = [
            {"op": "test", "path": "/spec/holderIdentity", "value": None},  # absent: released
            {"op": "add", "path": "/spec/holderIdentity", "value": self.identity},
            {"op": "add", "path": "/spec/leaseDurationSeconds", "value": self.duration},
            {"op": "add", "path": "/spec/acquireTime", "value": now},
            {"op": "add", "path": "/spec/renewTime", "value": now},
        ]
        # Shielded from the request to the last field set: a signal never leaves a Lease taken and
        # not known to be ours; one right after is raised here, and drop_claim gives the Lease back.
        with cancel.shield():
            sent = time.monotonic()
            try:
                taken = call(
                    f"taking {self._what()} if it is free",
                    lambda: patch_json(self.kube, self._path(), patch, patch="json"),
                    idempotent=False,
                    guard=False,
                )
            except NotFoundError:
                return "missing"
            except (UsageError, ConflictError):
                return "held"  # the test failed (422), or another write won the race (409)
            except ForbiddenError:
                return "unknown"
            except BaseException:
                # No answer: it may have landed. Given back if it did (release reads whose it is).
                self.release()
                raise
            self._stamped(sent, taken)
            self._claimed = True
            self._transitions = ((taken.get("spec") or {}).get("leaseTransitions") or 0) + 1
            annotations = (taken.get("metadata") or {}).get("annotations") or {}
            if annotations.get(MODE) or annotations.get(PREEMPTED_BY):
                # Left by a watch and the rollback that preempted it: cleared as _take clears them (a
                # stale mode would let a rollback take this exclusive hold over).
                self._write(mode="", clear_preempted=True)
        return "taken"

    def drop_claim(self) -> None:
        """Give back a Lease peek(take=True) took that no acquire took up (a run that ended before
        its lock: nothing to do, refused, cancelled)."""
        if self._claimed and self._depth == 0:
            self.release()

    def _enter(self, *, preemptible: bool, preempt: bool) -> None:
        if self._depth == 0:
            try:
                self.acquire(preemptible=preemptible, preempt=preempt)
            except BaseException:
                # A signal that came while the Lease was being taken stops the run right after:
                # give back what was taken (release reads whose it is).
                self.release()
                raise
        else:
            self.undisturbed = False  # as before: a nested use reads again what it decides on
            if not preemptible:
                self._promote()
        self._depth += 1

    def _exit(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self.release()

    def held(self) -> bool:
        """Still ours, as far as this run knows (no other holder seen, renewed recently enough)."""
        return (
            self._lease is not None
            and not self._lost
            and time.monotonic() - self._renewed < self.duration * RENEW_DEADLINE
        )

    def lost(self) -> str:
        """Why the Lease is no longer ours, '' while it is."""
        if self._lost or self._lease is None:
            return self._lost or "the lock is not held"
        if time.monotonic() - self._renewed >= self.duration * RENEW_DEADLINE:
            return f"it could not be renewed for {self.duration * RENEW_DEADLINE:.0f}s"
        return ""

    def check_held(self, what: str) -> None:
        """The write guard: LockLostError instead of sending `what` without the Lease."""
        why = self.lost()
        if why:
            raise LockLostError(
                f"{what}: not sent, because this run no longer holds {self._what()}: {why}",
                remedy="Another run may be changing the app: see `bluegreen status`, then run again.",
            )

    def refresh(self) -> str:
        """Read the Lease now; returns why it is no longer ours ('' while it is). The watch calls this
        every interval, so a rollback that took it over is seen within one interval."""
        lease = self._read()
        spec = lease.get("spec") if lease else None
        if spec is None or spec.get("holderIdentity") != self.identity:
            self._mark_lost(lease)
        return self.lost()

    # -- the Lease --------------------------------------------------------------------------------

    def _what(self) -> str:
        return f"lock Lease {self.app.namespace}/{self.app.lease}"

    def _path(self) -> str:
        return leases_path(self.app.namespace, self.app.lease)

    def _read(self) -> Lease | None:
        return found(
            f"reading {self._what()}",
            lambda: get_json(self.kube, self._path()),
            guard=False,  # releasing reads it too, after a signal
        )

    def acquire(self, *, preemptible: bool = False, preempt: bool = False) -> None:
        # Shielded: a signal never leaves a Lease taken and not known to be ours; the wait between
        # reads is where a cancelled run stops (cancel.sleep).
        with cancel.shield():
            self._acquire(preemptible=preemptible, preempt=preempt)

    def _acquire(self, *, preemptible: bool, preempt: bool) -> None:
        deadline = time.monotonic() + self.wait
        last_note = 0.0
        seen: Seen | None = None
        peeked = self._peeked is not None or self._peeked_none
        lease_peeked, self._peeked, self._peeked_none = self._peeked, None, False
        # Taken by peek(take=True) before the reads the run decides on: everything read since was read
        # under it (unless so long ago, with no renewer yet, that it may have been taken over).
        claimed, self._claimed = self._claimed and self.held(), False
        self.undisturbed = claimed
        if claimed and preemptible:
            self._write(mode=PREEMPTIBLE)
        while not claimed:
            cancel.check()
            lease = lease_peeked if peeked else self._read()
            holder, seen = judge(lease, seen, time.monotonic())
            taking_over = holder is not None and holder.preemptible and preempt
            if holder is None or holder.identity == self.identity or taking_over:
                try:
                    if lease is None:
                        self._create(preemptible=preemptible)
                    else:
                        self._take(lease, preemptible=preemptible, preempting=taking_over)
                except ConflictError:
                    peeked = False
                    continue  # another run wrote first: read again and decide again
                self.undisturbed = peeked  # a free Lease (or none), taken from that very read
                if taking_over and holder is not None:
                    self.reporter.progress(
                        f"took the lock over from {holder.identity} (a rollback preempts a watch)"
                    )
                break
            if time.monotonic() >= deadline:
                raise LockHeldError(
                    f"{self._what()} is held by {describe(holder)}",
                    remedy="Wait for that run to finish, or pass --wait-for-lock DURATION (longer than "
                    f"{self.duration}s to outlast a run that died without releasing it).",
                )
            if time.monotonic() - last_note > 5:
                self.reporter.progress(f"waiting for the lock held by {describe(holder)}")
                last_note = time.monotonic()
            peeked = False
            cancel.sleep(POLL_S)
        self._lost, self.preempted_by = "", ""
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew, args=(self._stop,), name="bluegreen-lock-renewer", daemon=True
        )
        self._renewer.start()

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))  # written for people to read; no decision uses it
        ours = previous is not None and previous.get("holderIdentity") == self.identity
        transitions = (previous.get("leaseTransitions") or 0) if previous is not None else 0
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": previous.get("acquireTime") if ours and previous is not None else now,
            "renewTime": now,
            "leaseTransitions": transitions if ours or previous is None else transitions + 1,
        }
        return {key: value for key, value in spec.items() if value is not None}  # as lightkube left them out

    def _stamped(self, now: float, lease: Lease) -> None:
        self._lease, self._renewed = lease, now

    def _create(self, *, preemptible: bool) -> None:
        metadata: dict[str, Any] = {
            "name": self.app.lease,
            "labels": {"app.kubernetes.io/managed-by": "bluegreen"},
        }
        if preemptible:
            metadata["annotations"] = {MODE: PREEMPTIBLE}
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": self._spec(None),
        }
        sent = time.monotonic()
        created = call(
            f"creating {self._what()}",
            lambda: write_json(self.kube, "POST", leases_path(self.app.namespace), lease),
            idempotent=False,
            guard=False,
        )
        self._stamped(sent, created)

    def _take(self, lease: Lease, *, preemptible: bool, preempting: bool) -> None:
        # The PUT sends the resourceVersion we read: a concurrent taker makes this a 409.
        metadata = lease.get("metadata") or {}
        annotations = {
            k: v for k, v in (metadata.get("annotations") or {}).items() if k not in (MODE, PREEMPTED_BY)
        }
        if preemptible:
            annotations[MODE] = PREEMPTIBLE
        if preempting:
            annotations[PREEMPTED_BY] = self.identity
        metadata["annotations"] = annotations
        lease["metadata"] = metadata
        lease["spec"] = self._spec(lease.get("spec"))
        sent = time.monotonic()
        taken = call(f"taking {self._what()}", lambda: self._put(lease), idempotent=False, guard=False)
        self._stamped(sent, taken)

    def _put(self, lease: Lease) -> Lease:
        """Replace the Lease with `lease`, guarded by the resourceVersion it carries (409 if changed)."""
        return write_json(self.kube, "PUT", self._path(), lease)

    def _write(self, *, mode: str | None, clear_preempted: bool = False) -> None:
        """Renew the Lease (and set its mode when `mode` is not None), guarded by its resourceVersion.

        A conflict is read again: still ours, written again; someone else's, lost."""
        with self._mutex:
            for _ in range(3):
                lease = self._lease
                if lease is None or lease.get("spec") is None or self._lost:
                    return
                if (mode is not None or clear_preempted) and lease.get("metadata") is not None:
                    annotations = dict(lease["metadata"].get("annotations") or {})
                    if mode is not None:
                        annotations.pop(MODE, None)
                        if mode:
                            annotations[MODE] = mode
                    if clear_preempted:
                        annotations.pop(PREEMPTED_BY, None)
                    lease["metadata"]["annotations"] = annotations
                self._count_take(lease)
                lease["spec"]["renewTime"] = micro_time(datetime.now(UTC))
                sent = time.monotonic()
                try:
                    written = call(
                        f"renewing {self._what()}",
                        lambda: self._put(lease),
                        idempotent=False,
                        guard=False,
                    )
                except ConflictError:
                    current = self._read()
                    spec = current.get("spec") if current is not None else None
                    if spec is None or spec.get("holderIdentity") != self.identity:
                        self._mark_lost(current)
                        return
                    self._lease = current
                    continue
                self._stamped(sent, written)
                self._transitions = None
                return

    def _count_take(self, lease: Lease) -> None:
        """Count the take peek's JSON patch could not count, in the first write of the Lease after it
        (a renewal, the release)."""
        if self._transitions is not None and lease.get("spec") is not None:
            lease["spec"]["leaseTransitions"] = self._transitions

    def _mark_lost(self, lease: Lease | None) -> None:
        spec = (lease.get("spec") if lease else None) or {}
        annotations = ((lease.get("metadata") if lease else None) or {}).get("annotations") or {}
        other = spec.get("holderIdentity")
        preempter = annotations.get(PREEMPTED_BY, "")
        if preempter and preempter != self.identity:
            # Our own take cleared the mark: it was written since, by a rollback that may be done
            # and gone already (it leaves the mark when it releases).
            self.preempted_by = preempter
            self._lost = f"a rollback took it over ({preempter})"
        elif other:
            self._lost = f"{other} holds it now"
        else:
            self._lost = "someone released it"

    def _promote(self) -> None:
        """A nested exclusive use of a preemptible hold (the watch rolling back by itself): from now on
        a rollback must wait, or, if one took it over already, this run stops before writing."""
        lease = self._lease
        annotations = ((lease.get("metadata") if lease else None) or {}).get("annotations") or {}
        if annotations.get(MODE) == PREEMPTIBLE:
            self._write(mode="")
        self.check_held("holding the lock for a rollback")

    def _renew(self, stop: threading.Event) -> None:
        interval = self.duration / 3
        while not stop.wait(interval) and not self._lost:
            try:
                self._write(mode=None)
                interval = self.duration / 3
            except Exception as error:  # said, retried soon; past RENEW_DEADLINE the run stops writing
                self.reporter.warning(f"could not renew {self._what()}: {error}")
                interval = RETRY_S

    def release(self) -> None:
        """Give the Lease back. Never raises: the run's own outcome (or error) is what to report, and a
        Lease not released frees itself after `duration` seconds."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=2)
            self._renewer = None
        try:
            with cancel.shield(stop_after=False):
                self._release()
        except Exception as error:
            self.reporter.warning(
                f"could not release {self._what()} ({error}); it frees itself in {self.duration}s"
            )
        finally:
            self._lease = None
            self._depth = 0
            self._claimed, self._transitions = False, None

    def _release(self) -> None:
        """Clear the holder if it is still us, retrying a write that failed (a reset, a 503, no answer).

        Each try reads the Lease again and writes with the resourceVersion it read: a release whose
        answer was lost finds no holder and stops, and one that raced another write gets a 409 and
        reads again; another run's Lease is never cleared."""
        if self._lost:
            return  # someone else's now
        # First from the copy our last write returned: its resourceVersion guards the write, so one
        # request instead of a read and a write (issue 14).
        held = self._lease
        if held is not None and (held.get("spec") or {}).get("holderIdentity") == self.identity:
            try:
                self._clear(held)
                return
            except ClusterError:
                pass  # a 409 (written since: a rollback took it over?) or a lost write: read and retry
        delay = RELEASE_BACKOFF_S
        for attempt in range(1, RELEASE_TRIES + 1):
            lease = self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return  # free, or another run's: nothing of ours to give back
            try:
                self._clear(lease)
                return
            except ClusterError as error:
                if attempt == RELEASE_TRIES:
                    raise
                if isinstance(error, ConflictError):
                    continue  # written since our read (maybe our own release, answered too late)
            time.sleep(delay)  # not cancel.sleep: a cancelled run is exactly the one releasing here
            delay *= 2

    def _clear(self, lease: Lease) -> None:
        """Clear the holder, keeping the object; guarded by `lease`'s resourceVersion."""
        spec = lease["spec"]
        spec.pop("holderIdentity", None)
        spec.pop("renewTime", None)
        metadata = lease.get("metadata")
        if metadata is not None and metadata.get("annotations"):
            # preempted-by stays: the watch it preempted may read the Lease only after this release.
            metadata["annotations"] = {k: v for k, v in metadata["annotations"].items() if k != MODE}
        self._count_take(lease)
        call(f"releasing {self._what()}", lambda: self._put(lease), idempotent=False, guard=False)
        self._transitions = None


def current_holder(kube: Client, app: AppSpec) -> str | None:
    """Who holds the app's lock now, described for `status`; None when free.

    One read cannot tell a live holder from one that died: that takes watching it (judge)."""
    lease = found(
        f"reading lock Lease {app.namespace}/{app.lease}",
        lambda: get_json(kube, leases_path(app.namespace, app.lease)),
    )
    holder, _ = judge(lease, None, time.monotonic())
    if holder is None or lease is None:
        return None
    renewed = parsed_time(lease["spec"].get("renewTime"))
    when = f", last renewed {renewed.isoformat(timespec='seconds')} by its clock" if renewed else ""
    mode = " (a watch: a rollback takes it over)" if holder.preemptible else ""
    since = f" since {holder.since.isoformat(timespec='seconds')}" if holder.since else ""
    return f"{holder.identity}{since}{when}{mode}"
