"""The standard-library transport against a real HTTP/1.1 server on loopback: connections are reused
while the server keeps them open, and every failure is the httpx2 error `kube.call` decides on."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import httpx2
import pytest

from bluegreen.kube import _retryable
from bluegreen.transport import StdlibTransport


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(1.0)
        body = f"{self.path} on {self.client_address[1]}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/close-after":  # closes without saying so: the pooled connection goes stale
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that timed out and left: the slow answer's broken pipe is expected


@pytest.fixture
def server() -> Iterator[str]:
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def client() -> Iterator[httpx2.Client]:
    with httpx2.Client(transport=StdlibTransport(None), timeout=httpx2.Timeout(0.5)) as c:
        yield c


def port_of(text: str) -> str:
    return text.rsplit(" ", 1)[1]


def test_one_connection_serves_sequential_requests(server: str, client: httpx2.Client) -> None:
    ports = {port_of(client.get(f"{server}/{i}").text) for i in range(5)}
    assert len(ports) == 1


def test_a_connection_the_server_closed_is_not_written_to(server: str, client: httpx2.Client) -> None:
    first = port_of(client.get(f"{server}/close-after").text)
    time.sleep(0.1)
    answer = client.get(f"{server}/next")
    assert answer.status_code == 200 and port_of(answer.text) != first


def test_a_streamed_body_arrives_and_the_connection_is_reused(server: str, client: httpx2.Client) -> None:
    with client.stream("GET", f"{server}/stream") as response:
        lines = list(response.iter_lines())
    assert lines[0].startswith("/stream on ")
    assert port_of(client.get(f"{server}/after").text) == port_of(lines[0])


def test_failures_are_the_errors_kube_call_decides_on(server: str, client: httpx2.Client) -> None:
    with pytest.raises(httpx2.ReadTimeout) as timed_out:
        client.get(f"{server}/slow")
    assert _retryable(timed_out.value, idempotent=True) and not _retryable(timed_out.value, idempotent=False)

    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(httpx2.ConnectError) as refused:
        client.get(f"http://127.0.0.1:{port}/")
    assert _retryable(refused.value, idempotent=False)  # never reached a server: safe for a write too

    silent = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        conn, _ = silent.accept()
        conn.recv(65536)
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(httpx2.RemoteProtocolError):
        client.get(f"http://127.0.0.1:{silent.getsockname()[1]}/")
    silent.close()
