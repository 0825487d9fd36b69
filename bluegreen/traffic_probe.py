"""The traffic probe: a bounded stream of requests to a URL across a switch, and what it saw.

`--probe URL` on switch and rollback sends new connections at a fixed rate to the user's own URL
(through their load balancer) before, during and after the write, reads which colour answered each
from a response header or a body pattern, and reports the failed requests and the cutover as a
client saw it: from the write to the last answer of the old colour, and to the first answer of the
new colour after which the old one never answered again. The same probe is the load of the real
traffic tests and of bench/traffic.py.

Times are when the client opened each connection (a Service's data plane picks the destination at
connect time), in milliseconds from the moment the write returned. Pure reading and summing are
apart from the I/O (`TrafficProbe`).
"""

from __future__ import annotations

import http.client
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bluegreen.errors import UsageError
from bluegreen.model import Reporter, Result

DEFAULT_HEADER = "X-Color"
DEFAULT_RATE = 50.0  # new connections per second
DEFAULT_TIMEOUT = 2.0
MAX_REQUESTS = 5000  # a hard bound on any one probe, whatever its rate and duration
IN_A_ROW = 5  # answers by the new colour alone, in a row, that say traffic moved


@dataclass(frozen=True)
class ColorReader:
    """Where an answer names its colour: a response header, or a regex's first group on the body."""

    header: str = DEFAULT_HEADER
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, *, header: str | None = None, pattern: str | None = None) -> ColorReader:
        """ValueError with the fix for a pattern that does not compile or has no group."""
        if pattern is None:
            return cls(header=header or DEFAULT_HEADER)
        try:
            compiled = re.compile(pattern)
        except re.error as error:
            raise ValueError(
                f"--probe-pattern {pattern!r} is not a valid regular expression: {error}"
            ) from None
        if compiled.groups < 1:
            raise ValueError(
                f"--probe-pattern {pattern!r} needs a group around the colour, e.g. 'color=(\\w+)'"
            )
        return cls(header=header or DEFAULT_HEADER, pattern=compiled)

    def read(self, headers: Mapping[str, str], body: str) -> str | None:
        if self.pattern is not None:
            match = self.pattern.search(body)
            return match.group(1).strip().lower() if match else None
        for name, value in headers.items():
            if name.lower() == self.header.lower():
                return value.strip().lower() or None
        return None


@dataclass(frozen=True)
class Sample:
    sent: float  # wall-clock seconds (time.time()) when the client began opening the connection
    color: str | None  # the colour the answer named; None when it failed or named none
    error: str = ""  # why the request failed; empty for an answer
    # When the connection was open (None: unknown or never). The data plane picked the destination in
    # between: with many client threads on a busy machine, `sent` order is not connection order.
    connected: float | None = None

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True)
class Cutover:
    """What the probe saw across one switch from `old` to `new` (ms relative to the write)."""

    requests: int
    failed: int
    errors: dict[str, int]
    answers: dict[str, int]  # colour (or "unknown") -> answers
    last_old_ms: float | None  # the last answer of the old colour; None if it never answered after
    cutover_ms: float | None  # the first `new` answer after which `old` never answered again
    old_after_new: int  # answers of the old colour after the first answer of the new one
    after_cutover: dict[str, int] = field(default_factory=dict)  # who answered from the cutover on

    @property
    def moved(self) -> bool:
        """Traffic ended on the new colour alone."""
        return self.cutover_ms is not None and set(self.after_cutover) <= {"new"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "errors": self.errors,
            "answers": self.answers,
            "last_old_ms": self.last_old_ms,
            "cutover_ms": self.cutover_ms,
            "old_after_new": self.old_after_new,
        }


def summarize(samples: list[Sample], *, write_time: float, old: str | None, new: str) -> Cutover:
    """Pure: failed requests and the client-side cutover of one switch from `old` to `new`."""
    ordered = sorted(samples, key=lambda s: s.sent)
    answers: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in ordered:
        if s.failed:
            errors[s.error] = errors.get(s.error, 0) + 1
        else:
            answers[s.color or "unknown"] = answers.get(s.color or "unknown", 0) + 1
    answered = [s for s in ordered if not s.failed]

    def ms(s: Sample) -> float:
        return round((s.sent - write_time) * 1000, 1)

    olds = [s for s in answered if old is not None and s.color == old]
    last_old = olds[-1] if olds else None
    # The cutover: the first answer of `new` with nothing but `new` answering from there on.
    cutover: Sample | None = None
    for s in reversed(answered):
        if s.color != new:
            break
        cutover = s
    # An old answer came after the new colour only if its connection was begun once a connection to
    # the new colour was open: stamps taken on either side of a connect cannot order two requests
    # opened within the same few milliseconds (seen: the later-stamped of two got the earlier port).
    new_open = min((s.connected or s.sent for s in answered if s.color == new), default=None)
    old_after_new = sum(1 for s in olds if new_open is not None and s.sent > new_open)
    after: dict[str, int] = {}
    if cutover is not None:
        for s in answered:
            if s.sent >= cutover.sent:
                key = "new" if s.color == new else (s.color or "unknown")
                after[key] = after.get(key, 0) + 1
    return Cutover(
        requests=len(ordered),
        failed=len(ordered) - len(answered),
        errors=errors,
        answers=answers,
        last_old_ms=ms(last_old) if last_old else None,
        cutover_ms=ms(cutover) if cutover else None,
        old_after_new=old_after_new,
        after_cutover=after,
    )


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- I/O -------------------------------------------------------------------------------------------


def parse_url(url: str) -> urllib.parse.SplitResult:
    """ValueError with the fix for anything but an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--probe {url!r} is not an http(s) URL: pass e.g. https://shop.example.com/healthz")
    return parts


def request_once(url: str, reader: ColorReader, *, timeout: float = DEFAULT_TIMEOUT) -> Sample:
    """One GET on a new connection (`Connection: close`), so each request is routed afresh."""
    parts = parse_url(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = time.time()  # just before the connect: where a Service's data plane picks the destination
    connected = None
    try:
        conn.connect()
        connected = time.time()
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "bluegreen-probe"})
        answer = conn.getresponse()
        body = answer.read(65536).decode("utf-8", errors="replace")
        if answer.status >= 500:
            return Sample(sent, None, f"HTTP {answer.status}", connected)
        return Sample(sent, reader.read(dict(answer.getheaders()), body), connected=connected)
    except (OSError, http.client.HTTPException) as error:
        return Sample(sent, None, type(error).__name__, connected)
    finally:
        conn.close()


class TrafficProbe:
    """New connections to `url` at `rate` per second in the background, until stopped or bounded.

    Bounded three ways: `max_requests`, `max_seconds`, and MAX_REQUESTS whatever is asked. A few
    worker threads keep the rate when one request is slow (a lost SYN waits a second for its retry).
    """

    def __init__(
        self,
        url: str,
        *,
        reader: ColorReader | None = None,
        rate: float = DEFAULT_RATE,
        max_requests: int = 1000,
        max_seconds: float = 60.0,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int = 16,
    ) -> None:
        parse_url(url)
        if not 0 < rate <= 2000:
            raise ValueError(f"probe rate {rate} is out of range: use 1 to 2000 requests per second")
        self.url = url
        self.reader = reader or ColorReader()
        self.rate = rate
        self.max_requests = min(max_requests, MAX_REQUESTS)
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.skipped = 0  # slots not sent because every worker was still waiting on an answer
        self._free = threading.Semaphore(workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._thread = threading.Thread(target=self._run, name="probe-pacer", daemon=True)

    def start(self) -> TrafficProbe:
        self._thread.start()
        return self

    def _one(self) -> None:
        try:
            sample = request_once(self.url, self.reader, timeout=self.timeout)
            with self._lock:
                self.samples.append(sample)
        finally:
            self._free.release()

    def _run(self) -> None:
        begin = time.monotonic()
        for index in range(self.max_requests):
            due = begin + index / self.rate
            if due - begin > self.max_seconds or self._stop.wait(max(0.0, due - time.monotonic())):
                break
            # Never queue: a request sent late would be timed wrong, and a dead URL would pile up work.
            if self._free.acquire(blocking=False):
                self._pool.submit(self._one)
            else:
                self.skipped += 1

    def moved_to(
        self, color: str, since: float, timeout: float, *, in_a_row: int = IN_A_ROW
    ) -> tuple[float | None, str]:
        """Wait until the requests sent after `since` (time.time()) end in `in_a_row` answers by
        `color` alone (none failed, none from another colour): (ms from `since` to the first of them,
        what was seen), or (None, what was seen) when `timeout` passes or the probe stops first."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                after = sorted((s for s in self.samples if s.sent >= since), key=lambda s: s.sent)
            streak = 0
            for sample in reversed(after):
                if sample.failed or sample.color != color:
                    break
                streak += 1
            seen = f"{len(after)} requests since the write, the last {streak} answered by {color}"
            if streak >= in_a_row:
                first = after[len(after) - streak]
                return round((first.sent - since) * 1000, 1), seen
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return None, seen
            time.sleep(0.02)

    def pause(self, seconds: float) -> None:
        """Wait while the probe runs (it stops early at its own bound)."""
        self._thread.join(timeout=seconds)

    def stop(self) -> list[Sample]:
        """Stop sending, wait for the requests in flight, and return every sample."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.sent)

    def wait(self) -> list[Sample]:
        """Let the probe run to its bound, then return every sample."""
        self._thread.join()
        return self.stop()

    def __enter__(self) -> TrafficProbe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- across a switch -------------------------------------------------------------------------------


def write_time_of(result: Result) -> float | None:
    """When the switch's write returned (its timeline's `switched:` event); None if nothing was written."""
    for stamp, label in result.timeline:
        if label.startswith("switched:"):
            return datetime.fromisoformat(stamp).timestamp()
    return None


def attach(result: Result, samples: list[Sample], *, url: str, fail_on_error: bool) -> Result:
    """Pure: the probe's figures in the Result (fields, details, messages); failed if asked to."""
    write = write_time_of(result)
    new = result.active_color or ""
    old = result.previous_color if result.previous_color != new else None
    cut = summarize(samples, write_time=write or (samples[0].sent if samples else 0.0), old=old, new=new)
    result.probe_failed = cut.failed
    result.probe_cutover_ms = cut.cutover_ms if write is not None else None
    result.details["probe"] = {"url": url, **cut.to_dict()}
    seen = f"probe: {cut.requests} requests to {url}, {cut.failed} failed"
    if cut.errors:
        seen += " (" + ", ".join(f"{n} {error}" for error, n in sorted(cut.errors.items())) + ")"
    if write is not None and result.probe_cutover_ms is not None:
        seen += f"; traffic moved to {new} {result.probe_cutover_ms:.0f} ms after the write"
        if cut.last_old_ms is not None and old:
            seen += f" (last {old} answer at {cut.last_old_ms:.0f} ms)"
    elif write is not None:
        seen += f"; {new} never answered alone before the probe ended"
    result.messages.append(seen)
    if cut.answers and set(cut.answers) == {"unknown"}:
        result.messages.append(
            "probe: no answer named a colour; name the header with --probe-header or the body with --probe-pattern"
        )
    if fail_on_error and cut.failed:
        result.result = "failed"
        result.messages.append(f"probe: {cut.failed} requests failed, and --probe-fail-on-error was given")
    return result


@dataclass(frozen=True, kw_only=True)
class ProbeOptions:
    """--probe and its companions (Action inputs probe-url, probe-header, ...), as given."""

    url: str
    header: str | None = None
    pattern: str | None = None
    rate: float = 20.0  # new connections per second
    after: float = 3.0  # seconds of probing after the write
    fail_on_error: bool = False

    def make(self, *, longest: float) -> TrafficProbe:
        """The probe, bounded by `longest` seconds of switching; UsageError with the fix for bad flags."""
        try:
            reader = ColorReader.parse(header=self.header, pattern=self.pattern)
            seconds = 1.0 + longest + self.after
            return TrafficProbe(
                self.url,
                reader=reader,
                rate=self.rate,
                max_requests=int(self.rate * seconds) + 1,
                max_seconds=seconds,
            )
        except ValueError as error:
            raise UsageError(
                str(error), remedy="See `bluegreen switch --help` for the --probe flags."
            ) from None


# What a switch is given to verify through the probe: (colour, since as time.time(), timeout) ->
# (ms until the colour answered alone, or None; what was seen). See TrafficProbe.moved_to.
TrafficCheck = Callable[[str, float, float], tuple[float | None, str]]


def probed(
    options: ProbeOptions | None,
    switch: Callable[[TrafficCheck | None], Result],
    *,
    longest: float,
    refuse_unanswered: bool,
    reporter: Reporter,
) -> Result:
    """`switch` as it is without a probe; inside one with it (its flags checked before anything runs),
    given the probe's check that traffic moved, which its verification then waits for."""
    if options is None:
        return switch(None)
    probe = options.make(longest=longest)
    return around(
        switch,
        probe,
        before=1.0,
        after=options.after,
        fail_on_error=options.fail_on_error,
        refuse_unanswered=refuse_unanswered,
        reporter=reporter,
    )


def around(
    switch: Callable[[TrafficCheck | None], Result],
    probe: TrafficProbe,
    *,
    before: float,
    after: float,
    fail_on_error: bool,
    refuse_unanswered: bool,
    reporter: Reporter,
) -> Result:
    """Run `switch` inside a probe: `before` seconds of requests first, `after` seconds after it."""
    first = request_once(probe.url, probe.reader, timeout=probe.timeout)
    if first.failed:
        message = f"the probe URL {probe.url} did not answer before the switch ({first.error})"
        if refuse_unanswered:
            raise UsageError(
                f"{message}: nothing was changed",
                remedy="Check the URL is reachable from where bluegreen runs, or drop --probe.",
            )
        reporter.warning(f"{message}: its failures are counted")
    probe.start()
    try:
        probe.pause(before)
        result = switch(lambda color, since, timeout: probe.moved_to(color, since, timeout))
        if write_time_of(result) is not None:
            probe.pause(after)
    finally:
        samples = probe.stop()
    attach(result, [first, *samples], url=probe.url, fail_on_error=fail_on_error)
    result.details["probe"]["skipped"] = probe.skipped
    return result
