"""The prometheus check's reading of the HTTP API, table-driven (the real Prometheus is in the
integration tests): no series and NaN are INCONCLUSIVE; failures and ambiguity are ERROR."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from bluegreen.checks.base import Target
from bluegreen.checks.prometheus import PrometheusCheck
from bluegreen.config import PrometheusCheckConfig
from bluegreen.model import AppSpec, Color
from bluegreen.verdict import Phase, judge


class Stub:
    """Answers /api/v1/query with the canned (status, body) for the colour the query names."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.queries: list[dict[str, list[str]]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                params = parse_qs(urlparse(self.path).query)
                stub.queries.append(params)
                color = "green" if "green" in params["query"][0] else "blue"
                status, body = stub.answers[color]
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stub() -> Iterator[Stub]:
    running = Stub()
    yield running
    running.server.shutdown()
    running.server.server_close()


def vector(*values: str) -> tuple[int, Any]:
    return 200, {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, v]} for v in values]},
    }


TARGET = Target(
    app=AppSpec(name="shop", namespace="shop"),
    color=Color.GREEN,
    baseline=Color.BLUE,
    service="shop-preview",
    window=30,
    max_error_rate=0.005,
    p95_tolerance=0.2,
)
QUERY = 'sum(rate(x{color="{{color}}"}[{{window}}]))'


def check(stub: Stub, measure: str, **kw: Any) -> PrometheusCheck:
    return PrometheusCheck(
        PrometheusCheckConfig(name="m", url=stub.url, query=QUERY, measure=measure, timeout=2, **kw)  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("measure", "green", "blue", "phase", "reason"),
    [
        (
            "error-rate",
            vector("0"),
            vector("0.01"),
            Phase.SUCCESSFUL,
            "error_rate=0 (ok: error_rate < 0.005)",
        ),
        (
            "error-rate",
            vector("0.05"),
            vector("0"),
            Phase.FAILED,
            "error_rate=0.05 (broken: error_rate < 0.005)",
        ),
        ("error-rate", vector(), vector("0"), Phase.INCONCLUSIVE, "green: the query returned no series"),
        ("error-rate", vector("NaN"), vector("0"), Phase.INCONCLUSIVE, "green: the query returned NaN"),
        ("error-rate", vector("0", "0"), vector("0"), Phase.ERROR, "the query returned 2 series"),
        (
            "error-rate",
            (400, {"status": "error", "error": "parse error"}),
            vector("0"),
            Phase.ERROR,
            "refused the query (400): parse error",
        ),
        ("error-rate", (502, "<html>bad gateway</html>"), vector("0"), Phase.ERROR, "non-JSON body"),
        (
            "p95",
            vector("0.11"),
            vector("0.1"),
            Phase.SUCCESSFUL,
            "p95=0.11 (ok: p95 <= baseline_p95 * 1.2 = 0.12)",
        ),
        (
            "p95",
            vector("0.3"),
            vector("0.1"),
            Phase.FAILED,
            "p95=0.3 (broken: p95 <= baseline_p95 * 1.2 = 0.12)",
        ),
        ("p95", vector("0.1"), vector(), Phase.INCONCLUSIVE, "baseline blue: the query returned no series"),
        (
            "saturation",
            vector("0.55"),
            vector("0.5"),
            Phase.SUCCESSFUL,
            "saturation=0.55 (ok: saturation <= baseline_saturation * 1.2 = 0.6)",
        ),
        (
            "saturation",
            vector("0.9"),
            vector("0.5"),
            Phase.FAILED,
            "saturation=0.9 (broken: saturation <= baseline_saturation * 1.2 = 0.6)",
        ),
        ("p95", vector("0.1"), vector("1", "2"), Phase.ERROR, "baseline blue: the query returned 2 series"),
        (
            "value",
            (200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "7"]}}),
            vector(),
            Phase.FAILED,
            "value=7 (broken: value <= 5)",
        ),
        (
            "value",
            (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
            vector(),
            Phase.ERROR,
            "returned a matrix",
        ),
    ],
)
def test_answers(
    stub: Stub, measure: str, green: tuple[int, Any], blue: tuple[int, Any], phase: Phase, reason: str
) -> None:
    stub.answers = {"green": green, "blue": blue}
    extra = {"max": 5.0} if measure == "value" else {}
    judged = judge(check(stub, measure, **extra).measure(TARGET))
    assert judged.phase is phase
    assert any(reason in r for r in judged.reasons), judged.reasons


def test_query_is_templated_and_baseline_read_at_a_given_time(stub: Stub) -> None:
    stub.answers = {"green": vector("0.1"), "blue": vector("0.1")}
    at_switch = 1_700_000_000.25
    check(stub, "p95").measure(Target(**{**TARGET.__dict__, "baseline_at": at_switch}))
    green, blue = stub.queries
    assert green["query"] == ['sum(rate(x{color="green"}[30s]))'] and "time" not in green
    assert blue["query"] == ['sum(rate(x{color="blue"}[30s]))'] and blue["time"] == ["1700000000.250"]


def test_unreachable_prometheus_is_an_error() -> None:
    config = PrometheusCheckConfig(
        name="m", url="http://127.0.0.1:9", query=QUERY, measure="error-rate", timeout=1
    )
    judged = judge(PrometheusCheck(config).measure(TARGET))
    assert judged.phase is Phase.ERROR and "unreachable" in judged.reasons[0]


def test_saturation_is_judged_against_live_and_under_its_ceiling(stub: Stub) -> None:
    stub.answers = {"green": vector("0.85"), "blue": vector("0.8")}
    assert judge(check(stub, "saturation").measure(TARGET)).phase is Phase.SUCCESSFUL  # like live
    judged = judge(check(stub, "saturation", max=0.8).measure(TARGET))
    assert judged.phase is Phase.FAILED
    assert "saturation <= 0.8" in judged.summary()
