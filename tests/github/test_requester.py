"""The GitHub API client's retries, against a loopback server that fails on purpose: a GET GitHub
answered 502-504 is asked again, a POST never (GitHub may have acted on it: two check runs would show),
and the token goes in a header only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bluegreen.github import api


class Flaky(ThreadingHTTPServer):
    """Answers 503 to the first `failures` requests, then 200 with a JSON list; records each request."""

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.failures = failures
        self.seen: list[tuple[str, str, str]] = []  # method, path, Authorization


class Handler(BaseHTTPRequestHandler):
    server: Flaky

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization", "")))
        failing = len(self.server.seen) <= self.server.failures
        body = json.dumps({"message": "Service Unavailable"} if failing else [{"id": 7}]).encode()
        self.send_response(503 if failing else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def flaky(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flaky]:
    monkeypatch.setattr(api, "BACKOFF", 0.01)
    server = Flaky(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("flaky", [2], indirect=True)
def test_a_get_answered_503_is_asked_again(flaky: Flaky) -> None:
    requester = api.Requester(f"http://127.0.0.1:{flaky.server_port}/", "ghs_secret")
    assert requester.request("GET", "/repos/acme/shop/deployments", params={"per_page": 1}) == [{"id": 7}]
    assert [m for m, _, _ in flaky.seen] == ["GET"] * 3
    assert {auth for _, _, auth in flaky.seen} == {"Bearer ghs_secret"}
    assert all(path == "/repos/acme/shop/deployments?per_page=1" for _, path, _ in flaky.seen)


@pytest.mark.parametrize("flaky", [1], indirect=True)
def test_a_post_answered_503_is_refused_not_sent_twice(flaky: Flaky) -> None:
    requester = api.Requester(f"http://127.0.0.1:{flaky.server_port}", "ghs_secret")
    with pytest.raises(api.Refused, match="HTTP 503: Service Unavailable") as refused:
        requester.request("POST", "/repos/acme/shop/check-runs", body={"name": "x"})
    assert refused.value.status == 503 and "ghs_secret" not in str(refused.value)
    assert [m for m, _, _ in flaky.seen] == ["POST"]
