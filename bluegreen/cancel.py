"""Cancellation: SIGTERM or SIGINT stop a run at a safe point, never in the middle of a write.

One process-wide flag. The signal handler sets it and, unless the main thread is inside a `shield`
(a write in flight, the audit trail of a write already sent, releasing the lock), raises `Cancelled`
there at once, the way Python raises KeyboardInterrupt: every wait (a sleep, a poll, an HTTP read)
ends within moments, without each wait having to know. Inside a shield the handler only sets the
flag, and the shield raises when it ends. Other threads see the flag at `check()`, which every write
calls first (kube.call), and in `sleep()`: nothing new is started once cancelled.

The handler touches no lock or Event (an Event set from a handler can deadlock against the thread it
interrupted); waits that must notice the flag poll it every POLL seconds.

Writes also pass the guards pushed by the code holding the app's Lease (`guarded`), so a run that
lost its Lease stops before its next write.
"""

from __future__ import annotations

import contextvars
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

POLL = 0.1  # seconds: how often a wait looks at the flag

_requested = 0  # the signal number that asked to stop, 0 while none did
_raised = False  # the handler raised Cancelled once already: later signals only set the flag
_deferred = 0  # open `deferred` blocks: no Cancelled at all, in any thread
_depth = threading.local()  # shields open in this thread
_guards: contextvars.ContextVar[tuple[Callable[[str], None], ...]] = contextvars.ContextVar(
    "bluegreen_write_guards", default=()
)
_done: list[str] = []  # the writes this process completed, for the report of a cancelled run


class Cancelled(BaseException):
    """Raised at a safe point once SIGTERM or SIGINT arrived.

    A BaseException, like KeyboardInterrupt, so an `except Exception` (a check turning failures into
    measurements, a group member's thread) never swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def install() -> None:
    """Handle SIGTERM and SIGINT in this process (call from the main thread, in `main` only).

    Needed explicitly: as PID 1 in a container Python ignores SIGTERM unless a handler is installed."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)


def _handle(signum: int, _frame: FrameType | None) -> None:
    global _requested, _raised
    if not _requested:
        _requested = signum
    if getattr(_depth, "n", 0) == 0 and not _raised and not _deferred:
        _raised = True
        raise Cancelled(_requested)


def settle() -> None:
    """The run is over: a signal from now on is remembered but never raised (the outcome is reported)."""
    global _raised
    _raised = True


def begin() -> None:
    """A run starts: forget the writes of an earlier run in this process (tests run several)."""
    _done.clear()


def request(signum: int = signal.SIGTERM) -> None:
    """Ask the run to stop, as the handler does but without raising (tests, other threads)."""
    global _requested
    if not _requested:
        _requested = signum


def requested() -> int:
    """The signal that asked to stop, or 0."""
    return _requested


def reset() -> None:
    """Forget a cancellation and the writes recorded (for tests that run several commands in-process)."""
    global _requested, _raised
    _requested, _raised = 0, False
    _done.clear()


def check() -> None:
    """Raise Cancelled if a stop was asked for: call before starting anything new."""
    global _raised
    if _requested and not _deferred:
        _raised = True  # from here a second signal must not interrupt the report of this one
        raise Cancelled(_requested)


def sleep(seconds: float) -> None:
    """time.sleep that ends early with Cancelled, in any thread and inside a shield."""
    deadline = time.monotonic() + seconds
    while True:
        check()
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(POLL, left))


@contextmanager
def shield(*, stop_after: bool = True) -> Iterator[None]:
    """No Cancelled inside (the signal is remembered); raised on leaving, unless an error is on its
    way out already, which is the one to report, or `stop_after` is False (releasing the lock, which
    is what a stopping run does last).

    Once a write was made inside a shield, the writes after it in the same shield belong to the same
    step (a switch and its audit trail): they are made even after a signal (see before_write)."""
    _depth.n = getattr(_depth, "n", 0) + 1
    _frames().append(False)
    try:
        yield
    finally:
        _depth.n -= 1
        _frames().pop()
    if stop_after and _depth.n == 0 and threading.current_thread() is threading.main_thread():
        check()


def _frames() -> list[bool]:
    """For each shield open in this thread: whether a write was made inside it yet."""
    if not hasattr(_depth, "frames"):
        _depth.frames = []
    frames: list[bool] = _depth.frames
    return frames


@contextmanager
def deferred() -> Iterator[None]:
    """No Cancelled anywhere inside, in any thread: for steps that must finish together (a group's
    members all moved, or all moved back). Cancelled is raised on leaving (main thread)."""
    global _deferred
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1
    if threading.current_thread() is threading.main_thread():
        check()


@contextmanager
def interruptible() -> Iterator[None]:
    """A wait inside a shield or a `deferred` block that a signal may cut short (a verification,
    which only reads)."""
    global _deferred
    saved, deferred_before = getattr(_depth, "n", 0), _deferred
    _depth.n, _deferred = 0, 0
    try:
        check()
        yield
    finally:
        _depth.n, _deferred = saved, deferred_before


@contextmanager
def guarded(guard: Callable[[str], None]) -> Iterator[None]:
    """Run `guard(what)` before every write made inside this block (in this thread)."""
    token = _guards.set((*_guards.get(), guard))
    try:
        yield
    finally:
        _guards.reset(token)


def before_read() -> None:
    """Called by the cluster seam before a read: a cancelled run starts none (other threads stop
    here; the main thread was interrupted already), except to complete a step already written."""
    if not any(_frames()):
        check()


def before_write(what: str) -> None:
    """Called by the cluster seam before a write: stop if cancelled (unless it completes a step whose
    first write was made, see shield) or if a guard says so."""
    if not any(_frames()):
        check()
    for guard in _guards.get():
        guard(what)


def wrote(what: str, *, begins_step: bool = True) -> None:
    """Called by the cluster seam after a write landed. `begins_step=False`: a preparation that leaves
    nothing half-done if the run stops right after it (a colour Service created before the switch's
    write), so a signal still stops the run before the step's first real write."""
    _done.append(what)
    if begins_step:
        frames = _frames()
        frames[:] = [True] * len(frames)


def writes() -> list[str]:
    """The writes completed so far, oldest first."""
    return list(_done)
