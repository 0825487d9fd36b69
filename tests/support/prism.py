"""Prism serving GitHub's OpenAPI description, behind a recording proxy on loopback.

Prism validates every request against GitHub's own schema (422 for a bad body, an `sl-violations`
header for lesser problems). The proxy in front records each request and Prism's answer, so tests
assert on exactly what bluegreen sent; it can also play a refusing API (403) on demand.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

from tests.support import processes

CACHE = Path(os.environ.get("BLUEGREEN_CACHE") or Path.home() / ".cache" / "bluegreen") / "prism"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Exchange:
    method: str
    path: str
    body: Any
    status: int
    violations: str


@dataclass
class Recorder:
    upstream: str  # Prism itself
    url: str = ""  # the recording proxy: what the code under test calls
    exchanges: list[Exchange] = field(default_factory=list)
    refuse: int | None = None  # answer every request with this status instead of forwarding

    def writes(self, method: str, suffix: str) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and e.path.split("?")[0].endswith(suffix)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw else None
            if recorder.refuse:
                status, headers, payload = (
                    recorder.refuse,
                    {},
                    b'{"message": "Resource not accessible by integration"}',
                )
            else:
                headers_in = {
                    n: self.headers[n]
                    for n in ("Accept", "Content-Type", "Authorization")
                    if self.headers.get(n)
                }
                answer = httpx2.request(
                    self.command,
                    recorder.upstream + self.path,
                    content=raw or None,
                    headers=headers_in,
                    timeout=30,
                )
                status, headers, payload = answer.status_code, dict(answer.headers), answer.content
            recorder.exchanges.append(
                Exchange(self.command, self.path, body, status, headers.get("sl-violations", ""))
            )
            self.send_response(status)
            self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = _forward

    return Handler


@contextmanager
def prism() -> Iterator[Recorder]:
    """Prism on a free loopback port with the cut spec, the recording proxy before it."""
    done = subprocess.run(["bash", str(ROOT / "hack" / "install-prism.sh")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"hack/install-prism.sh failed:\n{done.stdout}{done.stderr}")
    port = free_port()
    log = (CACHE / "prism-test.log").open("w")
    process = subprocess.Popen(
        [
            "node",
            str(CACHE / "node_modules" / ".bin" / "prism"),
            "mock",
            str(CACHE / "github-pruned.json"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--errors",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server: ThreadingHTTPServer | None = None
    try:
        upstream = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx2.get(upstream + "/repos/a/b/deployments", timeout=2)
                break
            except httpx2.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prism did not start: see {CACHE / 'prism-test.log'}") from None
                time.sleep(0.2)
        recorder = Recorder(upstream)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield recorder
    finally:
        if server is not None:
            server.shutdown()
        processes.stop(process)
        log.close()
