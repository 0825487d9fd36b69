"""An HTTP-level fault proxy in front of the apiserver: it sees each request, so it can fail the Nth one.

Toxiproxy works on TCP streams; the CLI keeps one keep-alive TLS connection (httpx2, HTTP/1.1), so
one request cannot be told from the next at that level. This proxy terminates TLS with the apiserver's
own serving certificate (it names 127.0.0.1, so the kubeconfig's CA check passes unchanged), reads each
HTTP/1.1 request, forwards it over its own connection (with the admin client certificate: the CLI's
kubeconfig is the admin's too), and streams the answer back, chunk by chunk for watches.

A test adds rules: "the 1st `PATCH .../services/shop` in namespace N: reset the connection after the
apiserver applied it", or "call this hook before forwarding it" (send SIGTERM to the CLI, stop the
apiserver, write the Service as another client would). Each rule fires once. Every request is logged
with its namespace, so one proxy serves many tests at once, each in its own namespace.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

# reset-before: the connection is reset before the apiserver sees the request (it never landed).
# reset-after: the apiserver applied it, then the connection is reset (the answer is lost).
# status-503: the proxy answers 503 itself (a load balancer in front of an overloaded apiserver).
# timeout-after: the apiserver applied it; no answer comes until the client gives up (then a reset).
# hook: `hook(request)` runs, then the request is forwarded normally.
Kind = Literal["reset-before", "reset-after", "status-503", "timeout-after", "hook"]
NAMESPACE = re.compile(r"/namespaces/([^/?]+)")
HOLD_S = 15.0  # longer than the CLI's 10 s request timeout


@dataclass(frozen=True)
class Request:
    namespace: str
    method: str
    path: str  # without the query
    watch: bool

    @property
    def step(self) -> str:
        """The request with its namespace blanked: the same step of the same command in any namespace."""
        generic = self.path.replace(f"/namespaces/{self.namespace}", "/namespaces/NS", 1)
        return f"{'WATCH' if self.watch else self.method} {generic}"


@dataclass
class Rule:
    namespace: str
    step: str  # Request.step to match
    kind: Kind
    occurrence: int = 1  # fire on this matching request (1 = the first)
    hook: Callable[[Request], None] | None = None
    seen: int = 0
    fired: threading.Event = field(default_factory=threading.Event)


@dataclass
class Logged:
    request: Request
    status: int | str  # the apiserver's status, or what the proxy did instead


class FaultProxy:
    """`with FaultProxy(pki, upstream_port) as proxy:`; proxy.port is what a kubeconfig points at."""

    def __init__(self, pki: Path, upstream_port: int) -> None:
        self.pki, self.upstream_port = pki, upstream_port
        self.rules: list[Rule] = []
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None
        self.port = 0

    # -- rules and the log -------------------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def forget(self, namespace: str) -> None:
        with self._lock:
            self.rules = [r for r in self.rules if r.namespace != namespace]

    def steps(self, namespace: str) -> list[str]:
        """Distinct steps seen in `namespace`, in the order they first came."""
        with self._lock:
            seen = [entry.request.step for entry in self.log if entry.request.namespace == namespace]
        return list(dict.fromkeys(seen))

    def trace(self, namespace: str) -> list[tuple[str, int]]:
        """Every request seen in `namespace` as (step, occurrence: 1 for the step's first), in order."""
        with self._lock:
            steps = [entry.request.step for entry in self.log if entry.request.namespace == namespace]
        counts: dict[str, int] = {}
        out: list[tuple[str, int]] = []
        for step in steps:
            counts[step] = counts.get(step, 0) + 1
            out.append((step, counts[step]))
        return out

    def count(self, namespace: str) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry.request.namespace == namespace)

    def _match(self, request: Request) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.fired.is_set() or rule.namespace != request.namespace or rule.step != request.step:
                    continue
                rule.seen += 1
                if rule.seen == rule.occurrence:
                    rule.fired.set()
                    return rule
        return None

    def _record(self, request: Request, status: int | str) -> None:
        with self._lock:
            self.log.append(Logged(request, status))

    # -- connections -------------------------------------------------------------------------------

    def upstream(self) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return http.client.HTTPSConnection("127.0.0.1", self.upstream_port, context=context, timeout=60)

    def __enter__(self) -> FaultProxy:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.pki / "apiserver.crt"), str(self.pki / "apiserver.key"))
        context.set_alpn_protocols(["http/1.1"])
        proxy = self

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
                sock, address = super().get_request()
                return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

        self._server = Server(("127.0.0.1", 0), _handler(proxy))
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Reset(Exception):
    """Drop the client's connection with a TCP reset."""


def reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN, as a crashed peer or middlebox does.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        socket.socket.close(sock)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        upstream_conn: http.client.HTTPSConnection | None = None

        def log_message(self, format: str, *args: object) -> None:
            pass

        def handle(self) -> None:
            try:
                self.connection.do_handshake()
                super().handle()
            except _Reset:
                reset(self.connection)
            except (OSError, ssl.SSLError, http.client.HTTPException):
                pass  # the client or the apiserver went away: nothing to answer
            finally:
                if self.upstream_conn is not None:
                    self.upstream_conn.close()

        def finish(self) -> None:
            with contextlib.suppress(OSError):
                super().finish()

        def _forward(self) -> None:
            split = urlsplit(self.path)
            found = NAMESPACE.search(split.path)
            watch = parse_qs(split.query).get("watch", [""])[0] in ("1", "true")
            request = Request(found.group(1) if found else "", self.command, split.path, watch)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            rule = proxy._match(request)
            kind = rule.kind if rule else None
            if rule is not None and rule.hook is not None:
                rule.hook(request)
            if kind == "reset-before":
                proxy._record(request, kind)
                raise _Reset
            if kind == "status-503":
                proxy._record(request, kind)
                payload = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected: service unavailable","reason":"ServiceUnavailable","code":503}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if self.upstream_conn is None:
                self.upstream_conn = proxy.upstream()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            self.upstream_conn.request(self.command, self.path, body=body, headers=headers)
            answer = self.upstream_conn.getresponse()
            proxy._record(request, answer.status if kind is None else f"{kind} ({answer.status})")
            if kind == "reset-after":
                answer.read()
                raise _Reset
            if kind == "timeout-after":
                answer.read()
                proxy._closing.wait(HOLD_S)
                raise _Reset
            self._relay(answer)

        def _relay(self, answer: http.client.HTTPResponse) -> None:
            chunked = answer.getheader("Transfer-Encoding", "").lower() == "chunked"
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            if not chunked:
                data = answer.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for piece in _pieces(answer):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler


def _pieces(answer: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        piece = answer.read1(65536)
        if not piece:
            return
        yield piece
