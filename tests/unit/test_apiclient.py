"""The lean client (bluegreen/apiclient.py) against a real HTTP/1.1 server on loopback: connections
reused while the server keeps them open, a watch's lines as they come, error answers and missing
answers as the errors `kube.call` decides on; and which kubeconfigs get it (kube.connect)."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bluegreen import kube
from bluegreen.apiclient import Api, ApiStatusError, NoAnswer, Server
from bluegreen.errors import ConflictError, UnreachableError

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "resourceVersion": "7"}}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code: int, body: bytes, *, close: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = close

    def do_GET(self) -> None:
        seen = {"path": self.path, "port": self.client_address[1], "auth": self.headers.get("Authorization")}
        if self.path == "/slow":
            time.sleep(1.0)
        if self.path.startswith("/api/v1/namespaces/shop"):
            self.reply(200, json.dumps(NAMESPACE).encode())
        elif self.path == "/conflict":
            status = {"kind": "Status", "code": 409, "message": "the object has been modified"}
            self.reply(409, json.dumps(status).encode())
        elif self.path == "/proxy-error":
            self.reply(502, b"<html>Bad Gateway</html>")
        elif self.path.startswith("/watch"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for n in range(3):
                line = json.dumps({"type": "ADDED", "object": {"n": n}}).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.reply(200, json.dumps(seen).encode(), close=self.path == "/close-after")

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(200, json.dumps({"got": json.loads(body), "type": self.headers["Content-Type"]}).encode())

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and left: the slow answer's broken pipe is expected


@pytest.fixture
def port() -> Iterator[int]:
    srv = QuietServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def typed_unused() -> Any:
    raise AssertionError("a plain request built lightkube's client")


def api(port: int, *, timeout: float = 0.5, log: Path | None = None) -> Api:
    server = Server(scheme="http", host="127.0.0.1", port=port, tls=None, token="s3cret")
    return Api(server, timeout=timeout, typed=typed_unused, request_log=log)


def test_requests_reuse_one_connection_and_carry_the_token(port: int) -> None:
    client = api(port)
    answers = [json.loads(client.request("GET", f"/{i}")) for i in range(5)]
    assert len({a["port"] for a in answers}) == 1
    assert {a["auth"] for a in answers} == {"Bearer s3cret"}
    assert "s3cret" not in repr(client)


def test_a_connection_the_server_closed_is_not_written_to(port: int) -> None:
    client = api(port)
    first = json.loads(client.request("GET", "/close-after"))["port"]
    time.sleep(0.1)
    assert json.loads(client.request("GET", "/next"))["port"] != first


def test_params_join_the_query_and_every_request_is_logged(port: int, tmp_path: Path) -> None:
    log = tmp_path / "requests"
    client = api(port, log=log)
    seen = json.loads(client.request("GET", "/x?a=1", params={"labelSelector": "app=shop,color=blue"}))
    assert seen["path"] == "/x?a=1&labelSelector=app%3Dshop%2Ccolor%3Dblue"
    sent = json.loads(
        client.request("PUT", "/y", body=b'{"k": 1}', headers={"Content-Type": "application/json"})
    )
    assert sent == {"got": {"k": 1}, "type": "application/json"}
    assert [line.split(" ", 1)[1] for line in log.read_text().splitlines()] == [
        "GET /x?a=1&labelSelector=app%3Dshop%2Ccolor%3Dblue",
        "PUT /y",
    ]


def test_a_watch_streams_its_lines_and_leaves_the_connection_reusable(port: int) -> None:
    client = api(port)
    with client.stream("/watch", params={"watch": "1"}, read_timeout=2) as lines:
        events = [json.loads(line) for line in lines]
    assert [e["object"]["n"] for e in events] == [0, 1, 2]
    # The watch's connection back in the pool, and a spare one opened while it was held (a watch cut
    # short is closed: the next request must not wait for a new handshake).
    deadline = time.monotonic() + 5
    while len(client._idle) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(client._idle) == 2


def test_error_answers_carry_the_status_and_its_message(port: int) -> None:
    client = api(port)
    with pytest.raises(ApiStatusError) as conflict:
        client.request("GET", "/conflict")
    assert (conflict.value.code, conflict.value.message) == (409, "the object has been modified")
    assert isinstance(kube.mapped("writing Service shop", conflict.value), ConflictError)
    assert not kube._retryable(conflict.value, idempotent=True)
    with pytest.raises(ApiStatusError) as proxy:
        client.request("GET", "/proxy-error")
    assert proxy.value.code == 502 and "Bad Gateway" in proxy.value.message
    assert kube._retryable(proxy.value, idempotent=True) and not kube._retryable(
        proxy.value, idempotent=False
    )


def test_missing_answers_are_retried_only_where_safe(port: int) -> None:
    with pytest.raises(NoAnswer) as timed_out:
        api(port, timeout=0.3).request("GET", "/slow")
    assert timed_out.value.sent and timed_out.value.kind == "timeout"
    assert kube._retryable(timed_out.value, idempotent=True)
    assert not kube._retryable(timed_out.value, idempotent=False)

    closed = socket.create_server(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    with pytest.raises(NoAnswer) as refused:
        api(free).request("PUT", "/x", body=b"{}")
    assert not refused.value.sent  # never reached a server: safe for a write too
    assert kube._retryable(refused.value, idempotent=False)
    error = kube.mapped("reading Service shop", refused.value)
    assert isinstance(error, UnreachableError) and "ConnectError" in error.message

    silent = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        conn, _ = silent.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(NoAnswer) as hung_up:
        api(silent.getsockname()[1]).request("GET", "/")
    assert hung_up.value.kind == "protocol" and hung_up.value.sent
    silent.close()


def kubeconfig(tmp_path: Path, server: str, user: dict[str, Any], *, as_json: bool = True) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    if as_json:
        path.write_text(json.dumps(config))
    else:
        import yaml

        path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_plain_kubeconfig_gets_the_lean_client_and_typed_calls_still_work(
    port: int, tmp_path: Path
) -> None:
    client = kube.connect(kubeconfig=kubeconfig(tmp_path, f"http://127.0.0.1:{port}", {"token": "t"}))
    assert isinstance(client, Api)
    assert kube.get_json(client, "/api/v1/namespaces/shop")["metadata"]["resourceVersion"] == "7"
    from lightkube.resources.core_v1 import Namespace

    # A typed call builds lightkube's Client from the same kubeconfig, on first use.
    assert client.get(Namespace, "shop").metadata.resourceVersion == "7"  # type: ignore[union-attr]


def test_a_yaml_kubeconfig_gets_the_lean_client_too(port: int, tmp_path: Path) -> None:
    path = kubeconfig(tmp_path, f"http://127.0.0.1:{port}", {"token": "t"}, as_json=False)
    assert isinstance(kube.connect(kubeconfig=path), Api)


@pytest.mark.parametrize(
    "user",
    [
        {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"}},
        {"tokenFile": "/dev/null"},
        {"username": "u", "password": "p"},
    ],
    ids=["exec", "token-file", "basic"],
)
def test_other_credentials_are_lightkubes(user: dict[str, Any], port: int, tmp_path: Path) -> None:
    client = kube.connect(kubeconfig=kubeconfig(tmp_path, f"http://127.0.0.1:{port}", user))
    assert not isinstance(client, Api) and type(client).__module__.startswith("lightkube")


def test_a_proxy_in_the_environment_is_lightkubes(
    port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    client = kube.connect(kubeconfig=kubeconfig(tmp_path, f"http://127.0.0.1:{port}", {"token": "t"}))
    assert not isinstance(client, Api)


def test_connecting_with_a_plain_kubeconfig_imports_no_client_library(port: int, tmp_path: Path) -> None:
    import subprocess

    path = kubeconfig(tmp_path, f"http://127.0.0.1:{port}", {"token": "t"})
    code = (
        "import sys\n"
        "from bluegreen import kube\n"
        f"client = kube.connect(kubeconfig={path!r})\n"
        "kube.get_json(client, '/api/v1/namespaces/shop')\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) & {"lightkube", "httpx2", "msgspec", "yaml", "asyncio"} == set()


def canned(answer: bytes) -> int:
    """A server that answers one request with `answer`, as bytes on the wire, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(answer)
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    port: int = listener.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("answer", "cut"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", "incomplete body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12", "incomplete chunk"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "headers end early"),
    ],
    ids=["short-body", "short-chunk", "bad-chunk-size", "not-http", "short-headers"],
)
def test_an_answer_cut_short_or_not_http_is_no_answer(answer: bytes, cut: str) -> None:
    with pytest.raises(NoAnswer) as failed:
        api(canned(answer)).request("GET", "/")
    assert failed.value.kind == "protocol" and cut in str(failed.value)
    assert kube._retryable(failed.value, idempotent=True) and not kube._retryable(
        failed.value, idempotent=False
    )


def test_chunks_with_extensions_and_trailers_and_a_body_until_close_are_read_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'6;ext=1\r\n{"a":\r\n2\r\n1}\r\n0\r\nX-Trailer: yes\r\n\r\n'
    )
    assert json.loads(api(canned(chunked)).request("GET", "/")) == {"a": 1}
    until_close = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"b": 2}'
    client = api(canned(until_close))
    assert json.loads(client.request("GET", "/")) == {"b": 2}
    assert client._idle == []  # a body ended by the close: the connection is spent
