"""A real HTTP sample app for the gate and watch tests: one process per colour on a loopback port.

Serves what a real app would: `/health/ready` (JSON with checks.db, checks.redis and
workers.running; 503 when a dependency is down), `/metrics` (Prometheus text format: a request
counter by status code and a latency histogram) and traffic on every other path. Tests change its
error rate, latency and dependency health while it runs, through `POST /admin` (JSON body).

Errors are spread deterministically (a 5% error rate fails exactly every 20th request), and latency
is a real sleep measured by the app itself, so Prometheus sees what a client would.

Run: `python -m tests.support.sampleapp --port 0 --color blue` prints `listening on PORT`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

# Wide buckets with the default latency (50 ms) just above a boundary, so scheduling jitter on a busy
# machine stays inside one bucket while a 3x slower colour clearly moves up.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class State:
    color: str
    error_rate: float = 0.0
    latency: float = 0.05
    db: str = "ok"
    redis: str = "ok"
    workers: int = 2
    requests: int = 0
    by_code: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    latency_sum: float = 0.0
    # The correlation headers of the last requests that had any (GET /admin/requests), newest last
    seen: deque[dict[str, str]] = field(default_factory=lambda: deque(maxlen=200))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fails(self) -> bool:
        with self.lock:
            self.requests += 1
            n = self.requests
        return math.floor(n * self.error_rate) > math.floor((n - 1) * self.error_rate)

    def record(self, code: int, seconds: float) -> None:
        with self.lock:
            self.by_code[code] = self.by_code.get(code, 0) + 1
            self.latency_sum += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1
                    break
            else:
                self.buckets[-1] += 1

    def metrics(self) -> str:
        with self.lock:
            lines = [
                "# HELP http_requests_total Requests served, by status code.",
                "# TYPE http_requests_total counter",
            ]
            for code in sorted(self.by_code) or [200]:
                lines.append(f'http_requests_total{{code="{code}"}} {self.by_code.get(code, 0)}')
            lines += [
                "# HELP http_request_duration_seconds Time to serve a request.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            cumulative = 0
            for bound, count in zip(BUCKETS, self.buckets, strict=False):
                cumulative += count
                lines.append(f'http_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
            total = cumulative + self.buckets[-1]
            lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {total}')
            lines.append(f"http_request_duration_seconds_sum {self.latency_sum}")
            lines.append(f"http_request_duration_seconds_count {total}")
            return "\n".join(lines) + "\n"

    def health(self) -> tuple[int, dict[str, Any]]:
        ok = self.db == "ok" and self.redis == "ok" and self.workers >= 1
        body = {
            "status": "ok" if ok else "degraded",
            "color": self.color,
            "checks": {"db": self.db, "redis": self.redis},
            "workers": {"running": self.workers},
        }
        return (200 if ok else 503), body


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and delayed ACKs
        # add ~40 ms to every response a client times.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
            pass

        def send(self, code: int, body: str, content_type: str = "application/json") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("X-Request-Id") or self.headers.get("traceparent"):
                with state.lock:
                    state.seen.append(
                        {
                            "path": self.path,
                            "x-request-id": self.headers.get("X-Request-Id") or "",
                            "traceparent": self.headers.get("traceparent") or "",
                        }
                    )
            if self.path == "/admin/requests":
                with state.lock:
                    self.send(200, json.dumps(list(state.seen)))
            elif self.path == "/metrics":
                self.send(200, state.metrics(), "text/plain; version=0.0.4")
            elif self.path == "/health/ready":
                code, body = state.health()
                self.send(code, json.dumps(body))
            elif self.path == "/admin":
                self.send(200, json.dumps(self.settings()))
            else:
                started = time.perf_counter()
                fails = state.next_fails()
                time.sleep(state.latency)
                code = 500 if fails else 200
                state.record(code, time.perf_counter() - started)
                self.send(code, json.dumps({"color": state.color, "ok": not fails}))

        def do_POST(self) -> None:
            if self.path != "/admin":
                self.send(404, "{}")
                return
            length = int(self.headers.get("Content-Length") or 0)
            changes = json.loads(self.rfile.read(length) or b"{}")
            for key in ("error_rate", "latency", "db", "redis", "workers"):
                if key in changes:
                    setattr(state, key, type(getattr(state, key))(changes[key]))
            self.send(200, json.dumps(self.settings()))

        def settings(self) -> dict[str, Any]:
            return {
                "color": state.color,
                "error_rate": state.error_rate,
                "latency": state.latency,
                "db": state.db,
                "redis": state.redis,
                "workers": state.workers,
            }

    return Handler


def serve(color: str, port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(State(color=color)))
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


class SampleApp:
    """One colour's process, started by `start()`; its URL, admin controls and `stop()`."""

    def __init__(self, color: str) -> None:
        self.color = color
        self.port = 0
        self._process: subprocess.Popen[str] | None = None
        self._http = httpx2.Client(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SampleApp:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sampleapp", "--port", "0", "--color", self.color],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"sample app {self.color} did not start: {line!r}")
        self.port = int(line.split()[-1])
        return self

    def set(self, **changes: Any) -> dict[str, Any]:
        """Change error_rate, latency (seconds), db, redis or workers at run time."""
        response = self._http.post(f"{self.url}/admin", json=changes)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def requests_seen(self) -> list[dict[str, str]]:
        """The correlation headers (x-request-id, traceparent) and path of the requests that had them."""
        response = self._http.get(f"{self.url}/admin/requests")
        response.raise_for_status()
        seen: list[dict[str, str]] = response.json()
        return seen

    def stop(self) -> None:
        self._http.close()
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process and self._process.stdout:
            self._process.stdout.close()


class Load:
    """Steady traffic to some colours' URLs from one thread each, until `stop()`.

    Paced, not flat out: about `rate` requests a second per URL, so two cores are enough for the apps,
    Prometheus, the cluster and the tests together.
    """

    def __init__(self, urls: list[str], *, rate: float = 20.0) -> None:
        self.urls = urls
        self.rate = rate
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(u,), daemon=True) for u in urls]

    def _run(self, url: str) -> None:
        with httpx2.Client(timeout=5) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                with suppress(httpx2.HTTPError):
                    http.get(f"{url}/api/orders")
                self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)


@contextmanager
def running(*colors: str) -> Iterator[dict[str, SampleApp]]:
    """Sample apps for `colors`, stopped afterwards."""
    apps: dict[str, SampleApp] = {}
    try:
        for color in colors:
            apps[color] = SampleApp(color).start()
        yield apps
    finally:
        for app in apps.values():
            app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--color", default="blue")
    args = parser.parse_args()
    with suppress(KeyboardInterrupt):
        serve(args.color, args.port)


if __name__ == "__main__":
    main()
