"""HTTP/1.1 to the apiserver on the standard library's http.client, as an httpx2 transport.

httpx2's own transport is httpcore2, which imports its async backends (anyio), HTTP/2 (h2, hpack),
SOCKS and truststore when the first client is built: about 80 modules, a fifth of a `bluegreen switch`
process's CPU (issue 14), for a CLI that sends a dozen sequential HTTP/1.1 requests to one server.
This transport keeps httpx2's client (auth flows, cookies, URLs, decoding, timeouts) and replaces only
the wire: keep-alive connections to the one apiserver, reused while they stay open.

Errors are httpx2's, mapped as httpcore2 maps them, because `kube.call` decides on them what is safe to
retry: a refused or failed connection is ConnectError (never reached the server), a server that closed
without answering is RemoteProtocolError, a reset while waiting is ReadError, a timeout is the
matching Timeout.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import httpx2

from bluegreen.http11 import reusable

POOL = 4  # idle connections kept: the main thread, the Lease's renewer and a watch at most


def _timeouts(request: httpx2.Request) -> dict[str, float | None]:
    found: dict[str, float | None] = request.extensions.get("timeout") or {}
    return found


class _Body(httpx2.SyncByteStream):
    """The response body as it arrives (a watch is one long chunked response); the connection goes
    back to the pool once the body was read to its end, else it is closed."""

    def __init__(
        self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection, owner: StdlibTransport
    ) -> None:
        self.response, self.conn, self.owner = response, conn, owner
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            while chunk := self.response.read1(65536):
                yield chunk
            self.complete = True  # an empty read: the body's end (its length, or the last chunk)
        except TimeoutError as error:
            raise httpx2.ReadTimeout(str(error)) from error
        except http.client.IncompleteRead as error:
            raise httpx2.RemoteProtocolError(f"incomplete body: {error!r}") from error
        except (OSError, http.client.HTTPException) as error:
            raise httpx2.ReadError(str(error) or type(error).__name__) from error

    def close(self) -> None:
        done = self.complete and not self.response.will_close
        self.response.close()
        self.owner._checkin(self.conn, reuse=done)


class StdlibTransport(httpx2.BaseTransport):
    """One server (the kubeconfig's), TLS with the kubeconfig's CA and client certificate."""

    def __init__(self, context: ssl.SSLContext | None) -> None:
        self.context = context
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connect(self, url: httpx2.URL, timeout: float | None) -> http.client.HTTPConnection:
        host, port = url.host, url.port
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(host, port or 443, timeout=timeout, context=self.context)
        else:
            conn = http.client.HTTPConnection(host, port or 80, timeout=timeout)
        try:
            conn.connect()
        except TimeoutError as error:
            raise httpx2.ConnectTimeout(str(error)) from error
        except OSError as error:  # refused, unreachable, TLS: the request never left
            raise httpx2.ConnectError(str(error) or type(error).__name__) from error
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _checkout(self, url: httpx2.URL, timeout: float | None) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if reusable(conn.sock):
                    return conn
                conn.close()
        return self._connect(url, timeout)

    def _checkin(self, conn: http.client.HTTPConnection, *, reuse: bool) -> None:
        with self._lock:
            if reuse and len(self._idle) < POOL:
                self._idle.append(conn)
                return
        conn.close()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        timeouts = _timeouts(request)
        conn = self._checkout(request.url, timeouts.get("connect"))
        target = request.url.raw_path.decode("ascii")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            assert conn.sock is not None
            conn.sock.settimeout(timeouts.get("write"))
            conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders(request.read() or None)
        except TimeoutError as error:
            conn.close()
            raise httpx2.WriteTimeout(str(error)) from error
        except OSError as error:
            conn.close()
            raise httpx2.WriteError(str(error) or type(error).__name__) from error
        try:
            conn.sock.settimeout(timeouts.get("read"))
            response = conn.getresponse()
        except TimeoutError as error:
            conn.close()
            raise httpx2.ReadTimeout(str(error)) from error
        except http.client.RemoteDisconnected as error:  # closed without a word: before OSError (a subclass)
            conn.close()
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.") from error
        except http.client.HTTPException as error:
            conn.close()
            raise httpx2.RemoteProtocolError(str(error) or type(error).__name__) from error
        except OSError as error:
            conn.close()
            raise httpx2.ReadError(str(error) or type(error).__name__) from error
        extensions: dict[str, Any] = {
            "http_version": b"HTTP/1.1",
            "reason_phrase": (response.reason or "").encode("latin-1"),
        }
        return httpx2.Response(
            status_code=response.status,
            headers=response.getheaders(),
            stream=_Body(response, conn, self),
            extensions=extensions,
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
