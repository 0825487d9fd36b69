"""Toxiproxy (github.com/Shopify/toxiproxy, built by hack/build-toxiproxy.sh) driven through its HTTP API.

One server per test session on a free loopback port; each test makes its own proxy (its own listening
port) in front of an upstream, so tests never share a fault. A proxy forwards TCP unchanged: TLS passes
through, and a kubeconfig whose server is https://127.0.0.1:<proxy port> still verifies the apiserver's
certificate (it names 127.0.0.1). Toxics: latency, reset_peer, timeout, limit_data, bandwidth,
slow_close; `disable()` closes the port (connections refused, open ones cut).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import processes

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary() -> Path:
    """The cached toxiproxy-server, built on first use (hack/build-toxiproxy.sh; `make deps` runs it)."""
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-toxiproxy.sh")], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


class ToxiproxyError(Exception):
    pass


class Toxiproxy:
    """The server's API at `url`."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise ToxiproxyError(f"{method} {path}: HTTP {error.code} {error.read()[:300]!r}") from None
        return json.loads(raw) if raw.strip() else None

    def version(self) -> str:
        request = urllib.request.Request(self.url + "/version")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return str(response.read().decode().strip())

    def proxy(self, upstream_port: int, *, name: str = "") -> Proxy:
        """A new enabled proxy on a free port in front of 127.0.0.1:`upstream_port`."""
        name = name or f"p-{uuid.uuid4().hex[:8]}"
        port = free_port()
        self._call(
            "POST",
            "/proxies",
            {
                "name": name,
                "listen": f"127.0.0.1:{port}",
                "upstream": f"127.0.0.1:{upstream_port}",
                "enabled": True,
            },
        )
        return Proxy(self, name, port)


class Proxy:
    def __init__(self, server: Toxiproxy, name: str, port: int) -> None:
        self.server, self.name, self.port = server, name, port

    def toxic(
        self, kind: str, *, stream: str = "downstream", toxicity: float = 1.0, **attributes: int
    ) -> str:
        """Add a toxic (`latency`, `reset_peer`, `timeout`, `limit_data`, ...); returns its name."""
        name = f"{kind}-{stream}-{uuid.uuid4().hex[:6]}"
        self.server._call(
            "POST",
            f"/proxies/{self.name}/toxics",
            {"name": name, "type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )
        return name

    def remove(self, toxic: str) -> None:
        self.server._call("DELETE", f"/proxies/{self.name}/toxics/{toxic}")

    def clear(self) -> None:
        for toxic in self.server._call("GET", f"/proxies/{self.name}/toxics") or []:
            self.remove(toxic["name"])

    def disable(self) -> None:
        """Close the listening port and cut every open connection: `connection refused` from now on."""
        self.server._call("POST", f"/proxies/{self.name}", {"enabled": False})

    def enable(self) -> None:
        self.server._call("POST", f"/proxies/{self.name}", {"enabled": True})

    def delete(self) -> None:
        with contextlib.suppress(ToxiproxyError):
            self.server._call("DELETE", f"/proxies/{self.name}")


@contextmanager
def toxiproxy_server(log: Path) -> Iterator[Toxiproxy]:
    """A toxiproxy-server on a free loopback port for the block, stopped after it."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary()), "-host", "127.0.0.1", "-port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Toxiproxy(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.version()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise ToxiproxyError(f"toxiproxy-server did not start; see {log}") from None
                time.sleep(0.05)
        yield server
    finally:
        processes.stop(process)
