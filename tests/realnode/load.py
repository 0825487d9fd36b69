"""Clients of the app on the real node, run inside its network namespace: a steady load of new
connections and a few keep-alive clients, all bounded in rate, count and time.

Every answer names its colour, pod and release ("blue shop-blue-... v1"); a sample keeps when the
request was sent, who answered (or the error), and the HTTP status.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# A closed idle keep-alive connection fails a request at once; later, the server had it in flight.
IDLE_CLOSE = 0.05


@dataclass(frozen=True)
class Sample:
    sent: float  # time.time() when the request was sent
    color: str | None  # None: the request failed
    release: str = ""
    status: int = 0
    error: str = ""
    reconnected: bool = False  # a keep-alive client found its idle connection closed and reopened it


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    connection.request("GET", path)
    answer = connection.getresponse()
    return answer.status, answer.read().decode()


def _parse(sent: float, status: int, body: str, *, reconnected: bool = False) -> Sample:
    color, _, rest = body.strip().partition(" ")
    return Sample(sent, color, rest.rpartition(" ")[2], status, reconnected=reconnected)


class Load:
    """New connections at `rate` per second to `host:port`, plus `keepalive` persistent clients
    (one request each every `keepalive_every` seconds, `path` for both). Stops at stop(), after
    `max_seconds`, or after `max_requests` new-connection requests, whichever comes first."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rate: float = 50.0,
        keepalive: int = 2,
        keepalive_every: float = 0.05,
        keepalive_path: str = "/?sleep=100",
        max_seconds: float = 180.0,
        max_requests: int = 20_000,
    ) -> None:
        self.host, self.port, self.rate = host, port, rate
        self.keepalive_path, self.keepalive_every = keepalive_path, keepalive_every
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.new: list[Sample] = []
        self.kept: list[list[Sample]] = [[] for _ in range(keepalive)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._new_connections, daemon=True)] + [
            threading.Thread(target=self._keepalive, args=(i,), daemon=True) for i in range(keepalive)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _new_connections(self) -> None:
        start = time.monotonic()
        end = start + self.max_seconds
        for n in range(self.max_requests):
            due = start + n / self.rate
            if self._stop.wait(max(0.0, due - time.monotonic())) or time.monotonic() > end:
                return
            sent = time.time()
            connection = http.client.HTTPConnection(self.host, self.port, timeout=3)
            try:
                status, body = _get(connection, "/")
                self.new.append(_parse(sent, status, body))
            except (OSError, http.client.HTTPException) as error:
                self.new.append(Sample(sent, None, error=type(error).__name__))
            finally:
                connection.close()

    def _keepalive(self, index: int) -> None:
        samples = self.kept[index]
        end = time.monotonic() + self.max_seconds
        connection = http.client.HTTPConnection(self.host, self.port, timeout=5)
        while not self._stop.wait(self.keepalive_every) and time.monotonic() < end:
            sent = time.time()
            reused = connection.sock is not None
            try:
                status, body = _get(connection, self.keepalive_path)
                samples.append(_parse(sent, status, body))
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                connection.close()
                if not reused or time.time() - sent > IDLE_CLOSE:
                    # A request the pod had begun (it takes 100 ms) and never answered: lost in flight.
                    samples.append(Sample(sent, None, error=type(error).__name__))
                    continue
                # The server closed the idle connection as we sent on it (at once, before it could have
                # worked on it): a GET is retried on a new connection, as HTTP client libraries do.
                try:
                    status, body = _get(connection, self.keepalive_path)
                    samples.append(_parse(sent, status, body, reconnected=True))
                except (OSError, http.client.HTTPException) as retry_error:
                    connection.close()
                    samples.append(Sample(sent, None, error=type(retry_error).__name__))
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                samples.append(Sample(sent, None, error=type(error).__name__))
        connection.close()


def failed(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.color is None]


def between(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.sent < end]


@dataclass
class Cutover:
    """How traffic moved from `old` to `new` after a write, as the new-connection clients saw it."""

    requests: int
    failed: int
    first_new_ms: float | None  # the first answer of `new`, after the write
    last_old_ms: float | None  # the last answer of `old`
    old_after_new: int  # answers of `old` sent after the first answer of `new`
    errors: dict[str, int] = field(default_factory=dict)


def cutover(samples: list[Sample], *, write: float, old: str, new: str) -> Cutover:
    ordered = sorted(samples, key=lambda s: s.sent)
    first_new = next((s.sent for s in ordered if s.color == new and s.sent >= write - 0.5), None)
    olds = [s.sent for s in ordered if s.color == old]
    errors: dict[str, int] = {}
    for s in ordered:
        if s.color is None:
            errors[s.error] = errors.get(s.error, 0) + 1
    return Cutover(
        requests=len(ordered),
        failed=sum(errors.values()),
        first_new_ms=None if first_new is None else (first_new - write) * 1000,
        last_old_ms=(olds[-1] - write) * 1000 if olds else None,
        old_after_new=0 if first_new is None else sum(1 for t in olds if t > first_new),
        errors=errors,
    )


def write_time(result: dict[str, Any]) -> float:
    """When the switch's (or rollback's) write returned: its timeline's `switched:` event."""
    for entry in result.get("timeline", []):
        if str(entry["event"]).startswith("switched"):
            return datetime.fromisoformat(entry["time"]).timestamp()
    raise AssertionError(f"no `switched:` event in the result's timeline: {result.get('timeline')}")


def median_p95(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]
