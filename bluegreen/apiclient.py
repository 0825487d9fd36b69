"""The lean client: JSON over HTTP/1.1 to one apiserver, on the standard library's sockets and TLS
and our own few lines of HTTP (bluegreen/http11.py).

A switch or a rollback is a short process that sends about a dozen requests, and importing lightkube
(its async client, httpx2, msgspec and the models) cost it more than all of them together (issue 14).
This client speaks only what kube.py's plain-dict calls need: one request with a JSON body, and the
line stream of a watch. It serves a kubeconfig of the plain shape (a server, its CA or
insecure-skip-tls-verify, a bearer token or a client certificate: `plain_server`); kube.connect hands
anything else (exec plugins, token files, basic auth, auth providers, proxies) to lightkube, as before.

Typed calls on it (`client.get(Lease, ...)`, `client.patch(...)`) are lightkube's, on a Client built
on first use from the same kubeconfig and TLS context: code that needs lightkube's models pays for them
when it runs, and a switch that does not never imports lightkube.

Failures are ours, and say what `kube.call` needs to decide on a retry: an answer with an error status
is ApiStatusError, no answer is NoAnswer, with `sent` False when the request never left (a refused or
failed connection: safe to send again whatever it was) and `kind` "timeout" or "protocol" (a server
that closed without answering) when a read may be sent again but a write may have landed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from bluegreen.http11 import Connection, ProtocolError, Response, reusable

if TYPE_CHECKING:
    from lightkube import Client

POOL = 4  # idle connections kept: the main thread, the Lease's renewer and a watch at most
CLUSTER_KEYS = {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
USER_KEYS = {"token", "client-certificate", "client-certificate-data", "client-key", "client-key-data"}
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class ApiStatusError(Exception):
    """The apiserver (or a proxy before it) answered with an error status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class NoAnswer(Exception):
    """No complete answer. `sent`: the request may have reached the server; `kind`: "connect",
    "timeout", "protocol" (closed without answering, or mid-answer) or "io" (any other failure)."""

    def __init__(self, message: str, *, kind: str, sent: bool) -> None:
        super().__init__(message)
        self.kind, self.sent = kind, sent


class Server(NamedTuple):
    """Where to connect and how to authenticate: what a plain kubeconfig context holds."""

    scheme: str
    host: str
    port: int
    tls: ssl.SSLContext | None
    token: str | None


def plain_server(cluster: dict[str, Any], user: dict[str, Any], base: Path) -> Server | None:
    """The Server for a context of the plain shape, else None (lightkube serves it).

    Plain: every key of the cluster and the user is one this client knows (CLUSTER_KEYS, USER_KEYS)
    with a string value (the insecure flag a bool); the server is http(s)://HOST[:PORT] without a path;
    TLS has the kubeconfig's CA or is insecure (no system store or SSL_CERT_FILE to honour); no proxy
    in the environment. `base`: the kubeconfig's directory, which relative file paths are under."""
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    if set(cluster) - CLUSTER_KEYS or set(user) - USER_KEYS:
        return None
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        return None
    if not all(isinstance(v, str) for k, v in cluster.items() if k != "insecure-skip-tls-verify"):
        return None
    if not all(isinstance(v, str) for v in user.values()):
        return None
    try:
        parts = urlsplit(cluster.get("server", ""))
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    tls: ssl.SSLContext | None = None
    if parts.scheme == "https":
        if "certificate-authority-data" in cluster:
            pem = base64.b64decode("".join(cluster["certificate-authority-data"].split())).decode("ascii")
            tls = ssl.create_default_context(cadata=pem)
        elif "certificate-authority" in cluster:
            tls = ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
        elif insecure:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        else:
            return None  # the system's store (and SSL_CERT_FILE): lightkube's, through httpx2
        if user.get("client-certificate-data") or user.get("client-certificate"):
            with (
                _pem_file(user, "client-certificate", base) as cert,
                _pem_file(user, "client-key", base) as key,
            ):
                tls.load_cert_chain(cert, key)
    return Server(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
        tls=tls,
        token=user.get("token") or None,
    )


@contextmanager
def _pem_file(user: dict[str, Any], key: str, base: Path) -> Iterator[str]:
    """The path of a certificate or key given as a file or as base64 data, for load_cert_chain, which
    reads only files: the data in an anonymous in-memory file where the system has them (Linux's
    memfd: never on disk, gone when closed), else in a private temporary file removed at once."""
    data = user.get(f"{key}-data")
    if not data:
        yield str(base / user[key])
        return
    pem = base64.b64decode("".join(data.split()))
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("bluegreen-tls")
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="bluegreen-") as file:  # mode 0600
        file.write(pem)
        file.flush()
        yield file.name


class Api:
    """The connection to one apiserver: JSON requests and watch streams, keep-alive connections
    reused; typed lightkube calls delegated to a Client built on first use (`typed`)."""

    def __init__(
        self,
        server: Server,
        *,
        timeout: float,
        typed: Callable[[], Client],
        request_log: Path | None = None,
        user_agent: str = "bluegreen",
    ) -> None:
        self.server, self.timeout = server, timeout
        self._typed_factory = typed
        self._typed: Client | None = None
        self._request_log = request_log
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        if server.token:
            self._headers["Authorization"] = f"Bearer {server.token}"
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the token
        return f"Api({self.server.scheme}://{self.server.host}:{self.server.port})"

    # -- typed calls: lightkube's ----------------------------------------------------------------------

    def lightkube(self) -> Client:
        """The lightkube Client for this kubeconfig, built once (it imports lightkube)."""
        with self._lock:
            if self._typed is None:
                self._typed = self._typed_factory()
            return self._typed

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_typed", "_typed_factory", "_lock"):
            raise AttributeError(name)
        return getattr(self.lightkube(), name)

    # -- plain requests --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> bytes:
        """Send one request, return the body of a 2xx answer; ApiStatusError for any other status."""
        conn = self._send(method, path, params, headers, body, read_timeout=self.timeout)
        response = self._answer(conn)
        data = self._body(conn, response)
        if response.status >= 400:
            raise ApiStatusError(response.status, _message(data))
        return data

    @contextmanager
    def stream(self, path: str, *, params: dict[str, str], read_timeout: float) -> Iterator[Iterator[bytes]]:
        """A GET whose answer is read line by line as it arrives (a watch); ApiStatusError unless 200.
        The connection is reused only if the body was read to its end."""
        conn = self._send("GET", path, params, None, None, read_timeout=read_timeout)
        self._spare()
        response = self._answer(conn)
        if response.status != 200:
            raise ApiStatusError(response.status, _message(self._body(conn, response)))

        def lines() -> Iterator[bytes]:
            try:
                yield from response.lines()
            except GeneratorExit:
                raise
            except BaseException as error:
                raise _no_answer(error) from None

        try:
            yield lines()
        finally:
            self._checkin(conn, reuse=response.complete and not response.will_close)

    def prewarm(self) -> None:
        """Open the first connection now, in a thread, while the caller goes on (importing the phase it
        runs): the TCP and TLS handshakes are then done by its first request (issue 14)."""
        self._spare()

    def _spare(self) -> None:
        """A connection opened in a thread when none is idle. Also for a watch: it holds its connection
        to its end, and one cut short is closed, so without an idle one the next request would wait
        for a new handshake (the switch's next request is the Event's, issue 14)."""
        with self._lock:
            if self._idle:
                return

        def connect() -> None:
            with contextlib.suppress(NoAnswer):  # the next request connects, and reports what it meets
                self._checkin(self._connect(), reuse=True)

        threading.Thread(target=connect, name="bluegreen-spare-connection", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- the wire --------------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        body: bytes | None,
        *,
        read_timeout: float,
    ) -> Connection:
        target = path
        if params:
            target += ("&" if "?" in path else "?") + urlencode(params)
        if self._request_log is not None:
            with self._request_log.open("a", encoding="utf-8") as out:
                out.write(f"{time.time():.6f} {method} {target}\n")
        conn = self._checkout()
        try:
            conn.settimeout(self.timeout)
            conn.send(method, target, {**self._headers, **(headers or {})}, body)
            conn.settimeout(read_timeout)
        except TimeoutError as error:
            conn.close()
            raise NoAnswer(f"WriteTimeout: {error}", kind="timeout", sent=True) from None
        except OSError as error:
            conn.close()
            raise NoAnswer(f"WriteError: {error or type(error).__name__}", kind="io", sent=True) from None
        return conn

    def _body(self, conn: Connection, response: Response) -> bytes:
        """The whole body; the connection back in the pool when the answer left it reusable."""
        try:
            data = response.read()
        except BaseException as error:
            conn.close()
            raise _no_answer(error) from None
        self._checkin(conn, reuse=response.complete and not response.will_close)
        return data

    def _answer(self, conn: Connection) -> Response:
        try:
            return conn.response()
        except BaseException as error:
            conn.close()
            raise _no_answer(error) from None

    def _connect(self) -> Connection:
        server = self.server
        conn = Connection(server.host, server.port, server.tls, timeout=self.timeout)
        try:
            conn.connect()
        except TimeoutError as error:
            raise NoAnswer(f"ConnectTimeout: {error}", kind="connect", sent=False) from None
        except OSError as error:  # refused, unreachable, TLS: the request never left
            raise NoAnswer(
                f"ConnectError: {error or type(error).__name__}", kind="connect", sent=False
            ) from None
        return conn

    def _checkout(self) -> Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if reusable(conn.sock):
                    return conn
                conn.close()
        return self._connect()

    def _checkin(self, conn: Connection, *, reuse: bool) -> None:
        with self._lock:
            if reuse and len(self._idle) < POOL:
                self._idle.append(conn)
                return
        conn.close()


def _no_answer(error: BaseException) -> BaseException:
    """A failure while waiting for or reading an answer, as NoAnswer: a timeout, a connection closed
    first or mid-answer (protocol), or any other socket failure (io). Anything else unchanged."""
    if isinstance(error, TimeoutError):
        return NoAnswer(f"ReadTimeout: {error}", kind="timeout", sent=True)
    if isinstance(error, ProtocolError):
        return NoAnswer(f"RemoteProtocolError: {error}", kind="protocol", sent=True)
    if isinstance(error, OSError):
        return NoAnswer(f"ReadError: {error or type(error).__name__}", kind="io", sent=True)
    return error


def _message(data: bytes) -> str:
    """The message of an error answer: a Status object's, else the start of the text (a proxy's)."""
    try:
        status = json.loads(data)
    except ValueError:
        status = None
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        message: str = status["message"]
        return message
    return data[:300].decode("utf-8", "replace")
