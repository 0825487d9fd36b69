"""HTTP/1.1 on a socket: the little of it the lean client needs (bluegreen/apiclient.py).

The standard library's http.client parses headers with the email package, whose import was a seventh
of a switch's (issue 14). The apiserver answers with a status line, headers, and a body sized by
Content-Length or sent in chunks (a watch); that is all this reads. Failures are left to the caller to
classify: OSError (TimeoutError for a timeout) while connecting, sending or reading, and ProtocolError
for an answer that is not HTTP or ends before it should.
"""

from __future__ import annotations

import io
import select
import socket
import ssl
from collections.abc import Iterator

MAX_LINE = 65536  # a status, header or chunk-size line longer than this is not an apiserver's
MAX_HEADERS = 100
READ = 65536


class ProtocolError(Exception):
    """No answer (the server closed the connection first), or one that is not HTTP or is cut short."""


class Response:
    """The answer to one request: status and headers read, the body read on demand, once."""

    def __init__(self, file: io.BufferedReader, status: int, headers: dict[str, str], *, head: bool) -> None:
        self._file = file
        self.status, self.headers = status, headers
        self.complete = False  # the body was read to its end: the connection can carry another request
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._length: int | None = None
        if head or status in (204, 304) or 100 <= status < 200:
            self._length = 0
        elif not chunked and length is not None:
            try:
                self._length = int(length)
            except ValueError:
                raise ProtocolError(f"Content-Length {length!r} is not a number") from None
            if self._length < 0:
                raise ProtocolError(f"Content-Length {length!r} is negative")
        self._chunked = chunked and self._length is None
        # Without a length or chunks, the body ends when the server closes: the connection is spent.
        self.will_close = headers.get("connection", "").lower() == "close" or (
            self._length is None and not self._chunked
        )

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self) -> Iterator[bytes]:
        """The body line by line as it arrives (a watch sends one JSON event per line)."""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                yield pending[: end + 1]
                pending = pending[end + 1 :]
        if pending:
            yield pending

    def chunks(self) -> Iterator[bytes]:
        read, readline = self._file.read, self._file.readline
        if self._chunked:
            while True:
                line = readline(MAX_LINE + 1)
                if not line.endswith(b"\n"):
                    raise ProtocolError("incomplete chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {line[:40]!r}") from None
                if size == 0:
                    while (trailer := readline(MAX_LINE + 1)) not in (b"\r\n", b"\n"):
                        if not trailer.endswith(b"\n"):
                            raise ProtocolError("incomplete chunked body")
                    self.complete = True
                    return
                data = read(size)
                if len(data) < size or readline(3) not in (b"\r\n", b"\n"):
                    raise ProtocolError("incomplete chunk")
                yield data
        elif self._length is not None:
            left = self._length
            while left > 0:
                data = read(min(left, READ))
                if not data:
                    raise ProtocolError(f"incomplete body: {self._length - left} of {self._length} bytes")
                left -= len(data)
                yield data
            self.complete = True
        else:
            while data := read(READ):
                yield data


def reusable(sock: socket.socket | None) -> bool:
    """An idle keep-alive connection the server has not closed: nothing to read on it (httpcore2's
    check too). A readable idle socket means EOF or garbage, so it is dropped, never written to."""
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class Connection:
    """One connection to one server; a request at a time, then its answer."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, *, timeout: float) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.sock: socket.socket | None = None
        self._file: io.BufferedReader | None = None
        self._host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def connect(self) -> None:
        # An ASCII name as bytes: the resolver and ssl then skip the idna codec, whose import (with
        # stringprep) cost the first connection ~2 ms; a non-ASCII name still goes through it.
        name: str | bytes = self.host.encode("ascii") if self.host.isascii() else self.host
        sock = socket.create_connection((name, self.port), timeout=self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=name)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._file = sock.makefile("rb")

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> None:
        assert self.sock is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b""))

    def response(self, *, head: bool = False) -> Response:
        assert self._file is not None
        readline = self._file.readline
        status_line = readline(MAX_LINE + 1)
        if not status_line:
            raise ProtocolError("Server disconnected without sending a response.")
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP answer: {status_line[:40]!r}")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = readline(MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):
                break
            if not line.endswith(b"\n"):
                raise ProtocolError("the answer's headers end early")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ProtocolError(f"more than {MAX_HEADERS} headers")
        response = Response(self._file, int(parts[1]), headers, head=head)
        if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
            response.will_close = True
        return response

    def settimeout(self, seconds: float | None) -> None:
        if self.sock is not None:
            self.sock.settimeout(seconds)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if self._file is not None:
            self._file.close()
            self._file = None
        if sock is not None:
            sock.close()
