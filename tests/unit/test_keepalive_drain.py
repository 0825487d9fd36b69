"""The keep-alive drain after a switch: bluegreen.yaml's `drain` checked at the edge, which pods are
told to drain, what the outcome says, and the old colour's request rate judged against its bound."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bluegreen.checks.prometheus import PrometheusCheck
from bluegreen.config import Config, PrometheusCheckConfig, parse
from bluegreen.drain import HookOutcome, OldTraffic, drainable, hook_path, old_traffic
from bluegreen.errors import ConfigError
from bluegreen.model import AppSpec, Color
from bluegreen.phases import keepalive
from tests.unit.test_checks_prometheus import Stub, stub  # noqa: F401  (the fixture)

APP = AppSpec(name="shop", namespace="shop")
OLD = (
    '    query: sum by (pod) (rate(http_requests_total{namespace="{{namespace}}",color="{{color}}"}[30s]))\n'
)


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, source="bluegreen.yaml")
    assert caught.value.exit_code == 2
    return caught.value.message


def test_a_drain_hook_and_its_old_traffic_bound_are_read() -> None:
    config = parse(
        "drain:\n"
        "  http: {path: /drain, port: 8080, method: POST}\n"
        "  timeout: 3s\n"
        "  old-traffic:\n"
        "    url: http://prometheus:9090\n" + OLD + "    within: 90s\n"
    )
    assert config.drain is not None
    assert (config.drain.path, config.drain.port, config.drain.method) == ("/drain", 8080, "POST")
    assert config.drain.timeout == 3.0
    assert config.drain.old_traffic is not None and config.drain.old_traffic.within == 90.0
    assert parse("checks: []\n").drain is None


def test_defaults_for_a_bare_http_hook() -> None:
    config = parse("drain: {http: {}}\n")
    assert config.drain is not None
    assert (config.drain.path, config.drain.port, config.drain.method) == ("/drain", 8080, "POST")
    assert config.drain.old_traffic is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("drain: /drain\n", "bluegreen.yaml:1: drain: expected a mapping such as {http:"),
        ("drain: {timeout: 5s}\n", "drain: expected a mapping such as {http:"),
        ("drain: {http: {path: drain}}\n", "drain.http.path: 'drain': a path such as /drain"),
        ("drain: {http: {path: '/a b'}}\n", "a path such as /drain"),
        ("drain: {http: {port: 70000}}\n", "drain.http.port: expected a whole number in 1..65535"),
        ("drain: {http: {port: http}}\n", "drain.http.port: expected a whole number"),
        ("drain: {http: {method: DELETE}}\n", "drain.http.method: expected one of POST, PUT, GET"),
        ("drain: {http: {verb: POST}}\n", "drain.http.verb: unknown key"),
        ("drain: {http: {}, timeout: 0s}\n", "drain.timeout:"),
        ("drain: {http: {}, hook: x}\n", "drain.hook: unknown key"),
        (
            "drain: {http: {}, old-traffic: {url: 'http://p:9090', query: 'sum(rate(x[1m]))'}}\n",
            "drain.old-traffic.query: the query must name the old colour with {{color}}",
        ),
        (
            "drain: {http: {}, old-traffic: {url: 'http://p:9090', query: 'x{c=\"{{colour}}\"}'}}\n",
            "unknown template variable {{colour}}",
        ),
        ("drain: {http: {}, old-traffic: {query: 'x{c=\"{{color}}\"}'}}\n", "old-traffic.url: required"),
        (
            "drain: {http: {}, old-traffic: {url: 'not a url', query: 'x{c=\"{{color}}\"}'}}\n",
            "drain.old-traffic.url:",
        ),
    ],
)
def test_bad_drain_config_is_one_clear_error(text: str, expected: str) -> None:
    assert expected in problems(text)


def pod(name: str, *, ip: str = "10.0.0.1", phase: str = "Running", stopping: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if stopping:
        meta["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {"metadata": meta, "status": {"podIP": ip, "phase": phase}}


def test_only_running_pods_with_an_ip_are_drained() -> None:
    pods = [
        pod("shop-blue-b"),
        pod("shop-blue-a"),
        pod("shop-blue-pending", ip="", phase="Pending"),
        pod("shop-blue-stopping", stopping=True),
    ]
    assert drainable(pods) == ["shop-blue-a", "shop-blue-b"]
    assert hook_path("shop", "shop-blue-a", 8080, "/drain") == (
        "/api/v1/namespaces/shop/pods/shop-blue-a:8080/proxy/drain"
    )


def test_the_outcome_names_the_pods_drained_and_those_that_failed() -> None:
    done = HookOutcome("blue", ("shop-blue-a", "shop-blue-b"), ())
    assert done.ok and done.message() == "drain: 2 blue pods drained (shop-blue-a, shop-blue-b)"
    partial = HookOutcome("blue", ("shop-blue-a",), (("shop-blue-b", "HTTP 404 not found"),))
    assert not partial.ok
    assert "1 blue pod drained (shop-blue-a); failed: shop-blue-b: HTTP 404" in partial.message()
    assert partial.to_dict() == {
        "color": "blue",
        "drained": ["shop-blue-a"],
        "failed": {"shop-blue-b": "HTTP 404 not found"},
    }
    assert HookOutcome("blue", (), ()).message() == "drain: no running blue pod to drain"


def test_old_traffic_is_drained_draining_then_lingering() -> None:
    assert old_traffic({}, elapsed=5, within=60).state == "drained"  # no series: no request at all
    assert old_traffic({"pod=shop-blue-a": 0.0}, elapsed=5, within=60).state == "drained"
    draining = old_traffic({"pod=shop-blue-a": 2.0, "pod=shop-blue-b": 0.0}, elapsed=5, within=60)
    assert draining.state == "draining" and draining.by_series == {"pod=shop-blue-a": 2.0}
    lingering = old_traffic({"pod=shop-blue-a": 2.0, "pod=shop-blue-b": 0.5}, elapsed=61, within=60)
    assert lingering.state == "lingering" and lingering.rate == 2.5
    message = lingering.message("blue")
    assert "pod=shop-blue-a 2/s" in message and "pod=shop-blue-b 0.5/s" in message
    assert "beyond the 60s bound" in message


def test_the_old_colour_rate_is_read_by_pod(stub: Stub) -> None:  # noqa: F811
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"pod": "shop-blue-a"}, "value": [1, "1.5"]},
                {"metric": {"pod": "shop-blue-b"}, "value": [1, "NaN"]},
            ],
        },
    }
    stub.answers = {"blue": (200, json.dumps(body))}
    check = PrometheusCheck(PrometheusCheckConfig(name="old", url=stub.url, query="q", timeout=2))
    try:
        assert check.series('sum by (pod) (rate(x{color="blue"}[30s]))') == {"pod=shop-blue-a": 1.5}
    finally:
        check.close()


def rates(*pods: tuple[str, str]) -> tuple[int, str]:
    result = [{"metric": {"pod": name}, "value": [1, value]} for name, value in pods]
    return 200, json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def watch_config(stub: Stub, within: str) -> Config:  # noqa: F811
    return parse(
        "drain:\n  http: {}\n  old-traffic:\n"
        f"    url: {stub.url}\n" + OLD + f"    within: {within}\n    timeout: 2s\n"
    )


def test_the_watch_reads_the_old_colour_until_its_bound_and_names_lingering_pods(stub: Stub) -> None:  # noqa: F811
    stub.answers = {"blue": rates(("shop-blue-a", "0.8"), ("shop-blue-b", "0"))}
    seen: list[str] = []
    judged = keepalive.old_traffic(watch_config(stub, "1s"), APP, Color.BLUE, time.time(), seen.append)
    assert isinstance(judged, OldTraffic) and judged.state == "lingering"
    assert judged.by_series == {"pod=shop-blue-a": 0.8}
    assert seen and "still receives 0.8 requests/s" in seen[0]  # read again while within the bound
    assert stub.queries[0]["query"] == [
        'sum by (pod) (rate(http_requests_total{namespace="shop",color="blue"}[30s]))'
    ]


def test_the_watch_stops_reading_once_the_old_colour_is_drained(stub: Stub) -> None:  # noqa: F811
    stub.answers = {"blue": rates(("shop-blue-a", "0"))}
    judged = keepalive.old_traffic(watch_config(stub, "5m"), APP, Color.BLUE, time.time(), print)
    assert isinstance(judged, OldTraffic) and judged.state == "drained"
    assert len(stub.queries) == 1


def test_an_unreadable_rate_is_said_not_judged(stub: Stub) -> None:  # noqa: F811
    stub.answers = {"blue": (500, json.dumps({"status": "error", "error": "bad query"}))}
    judged = keepalive.old_traffic(watch_config(stub, "5m"), APP, Color.BLUE, time.time(), print)
    assert isinstance(judged, str) and "cannot read blue's request rate" in judged and "bad query" in judged
