"""The command, http and probe checks against real processes and a real HTTP app on loopback."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from bluegreen.checks import build
from bluegreen.checks.base import Target
from bluegreen.checks.probe import p95
from bluegreen.config import CommandCheckConfig, HttpCheckConfig, ProbeCheckConfig, parse
from bluegreen.errors import UsageError
from bluegreen.model import AppSpec, Color
from bluegreen.verdict import Phase, judge, parse_condition
from tests.support.sampleapp import State, make_handler

TARGET = Target(
    app=AppSpec(name="shop", namespace="shop"),
    color=Color.GREEN,
    baseline=Color.BLUE,
    service="shop-preview",
    window=5,
    max_error_rate=0.005,
    p95_tolerance=0.2,
)


class App:
    def __init__(self, color: str, latency: float = 0.005) -> None:
        self.state = State(color=color, latency=latency)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def apps() -> Iterator[dict[str, App]]:
    running = {"blue": App("blue"), "green": App("green")}
    yield running
    for app in running.values():
        app.server.shutdown()
        app.server.server_close()


# ---- command


def command(*argv: str, timeout: float = 30) -> CommandCheckConfig:
    return CommandCheckConfig(name="smoke", command=argv, timeout=timeout, tail_lines=3)


def test_command_passes_on_exit_zero_with_the_colour_and_output_tail() -> None:
    script = "import os,sys; [print(i) for i in range(10)]; print(sys.argv[1], os.environ['BLUEGREEN_COLOR'])"
    judged = judge(build(command(sys.executable, "-c", script, "{{color}}")).measure(TARGET))
    assert judged.phase is Phase.SUCCESSFUL
    assert judged.measurement.detail == "[... 8 earlier lines cut]\n8\n9\ngreen green"


def test_command_fails_on_non_zero_exit() -> None:
    judged = judge(
        build(command(sys.executable, "-c", "print('checkout broken'); raise SystemExit(3)")).measure(TARGET)
    )
    assert judged.phase is Phase.FAILED
    assert judged.reasons == ("exit_code=3 (broken: exit_code == 0)",)
    assert judged.measurement.detail == "checkout broken"


def test_command_killed_at_its_timeout_fails() -> None:
    check = build(
        command(sys.executable, "-c", "import time; print('start', flush=True); time.sleep(30)", timeout=0.5)
    )
    judged = judge(check.measure(TARGET))
    assert judged.phase is Phase.FAILED
    assert judged.measurement.detail.startswith("killed after 500ms")


def test_command_that_cannot_start_is_an_error_not_a_failure() -> None:
    judged = judge(build(command("/nonexistent/smoke")).measure(TARGET))
    assert judged.phase is Phase.ERROR and "cannot run /nonexistent/smoke" in judged.reasons[0]


def test_arguments_are_never_given_to_a_shell() -> None:
    judged = judge(
        build(command(sys.executable, "-c", "import sys; print(sys.argv[1])", "$(echo hi); ls")).measure(
            TARGET
        )
    )
    assert judged.measurement.detail == "$(echo hi); ls"


# ---- http


def http(url: str, *conditions: str, status: int = 200) -> HttpCheckConfig:
    return HttpCheckConfig(
        name="ready",
        url=url,
        status=status,
        conditions=tuple(parse_condition(c) for c in conditions),
        timeout=2,
    )


CONDITIONS = ('checks.db == "ok"', 'checks.redis == "ok"', "workers.running >= 1")


def test_http_passes_when_the_app_reports_healthy(apps: dict[str, App]) -> None:
    check = build(http(f"{apps['green'].url}/health/ready", *CONDITIONS))
    judged = judge(check.measure(TARGET))
    assert judged.phase is Phase.SUCCESSFUL, judged.reasons
    assert judged.measurement.values == {
        "http_status": 200,
        "checks.db": "ok",
        "checks.redis": "ok",
        "workers.running": 2,
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"db": "down"}, "checks.db='down' (broken: checks.db == 'ok')"),
        ({"workers": 0}, "workers.running=0 (broken: workers.running >= 1)"),
    ],
)
def test_http_fails_on_a_dependency_down(
    apps: dict[str, App], change: dict[str, object], expected: str
) -> None:
    for key, value in change.items():
        setattr(apps["green"].state, key, value)
    judged = judge(build(http(f"{apps['green'].url}/health/ready", *CONDITIONS)).measure(TARGET))
    assert judged.phase is Phase.FAILED
    assert "http_status=503 (broken: http_status == 200)" in judged.reasons
    assert expected in judged.reasons


def test_http_url_is_templated_with_the_colour(apps: dict[str, App]) -> None:
    port = apps["green"].server.server_address[1]
    judged = judge(build(http(f"http://127.0.0.1:{port}/health/ready?c={{{{color}}}}")).measure(TARGET))
    assert judged.measurement.target.endswith("?c=green")


def test_http_no_answer_fails() -> None:
    judged = judge(build(http("http://127.0.0.1:9/health/ready")).measure(TARGET))
    assert judged.phase is Phase.FAILED
    assert judged.measurement.detail.startswith("no answer: ConnectError")


def test_http_non_json_body_with_conditions_fails(apps: dict[str, App]) -> None:
    judged = judge(build(http(f"{apps['green'].url}/metrics", *CONDITIONS)).measure(TARGET))
    assert judged.phase is Phase.FAILED and "json_body=False (broken: json_body == True)" in judged.reasons


def test_http_path_through_the_service_proxy_needs_a_cluster() -> None:
    with pytest.raises(UsageError, match="needs a cluster connection"):
        build(HttpCheckConfig(name="ready"))


# ---- probe


def probe(apps: dict[str, App], requests: int = 20) -> ProbeCheckConfig:
    return ProbeCheckConfig(
        name="probe", urls={c: f"{a.url}/api/orders" for c, a in apps.items()}, requests=requests, timeout=2
    )


def test_probe_p95_nearest_rank() -> None:
    assert p95([]) is None
    assert p95([0.1] * 19 + [9.0]) == 0.1
    assert p95([float(i) for i in range(1, 101)]) == 95.0


def test_probe_compares_the_colours(apps: dict[str, App]) -> None:
    # Equal colours that take real time: a few ms of scheduling noise stays well inside +20%.
    apps["blue"].state.latency = apps["green"].state.latency = 0.08
    judged = judge(build(probe(apps)).measure(TARGET))
    assert judged.phase is Phase.SUCCESSFUL, judged.reasons
    assert judged.measurement.values["requests"] == 20


def test_probe_fails_a_colour_with_errors(apps: dict[str, App]) -> None:
    apps["green"].state.error_rate = 0.05
    judged = judge(build(probe(apps, requests=40)).measure(TARGET))
    assert judged.phase is Phase.FAILED
    assert judged.reasons[0] == "error_rate=0.05 (broken: error_rate < 0.005)"


def test_probe_fails_a_slow_colour(apps: dict[str, App]) -> None:
    apps["blue"].state.latency = 0.02
    apps["green"].state.latency = 0.06
    judged = judge(build(probe(apps)).measure(TARGET))
    assert judged.phase is Phase.FAILED
    # The value itself is a timing (a busy machine adds to it); the reason must name the p95 that failed.
    assert judged.reasons[0].startswith("p95=") and "broken" in judged.reasons[0], judged.reasons


def test_probe_of_a_colour_that_does_not_answer(apps: dict[str, App]) -> None:
    config = ProbeCheckConfig(
        name="probe", urls={"blue": f"{apps['blue'].url}/", "green": "http://127.0.0.1:9/"}, requests=3
    )
    judged = judge(build(config).measure(TARGET))
    assert judged.phase is Phase.FAILED and judged.reasons[0] == "error_rate=1 (broken: error_rate < 0.005)"


def test_factory_rejects_an_unknown_kind() -> None:
    from bluegreen.config import CheckConfig
    from bluegreen.errors import ConfigError

    with pytest.raises(ConfigError, match="no valid kind 'promethues'"):
        build(CheckConfig(name="x", kind="promethues"))


def test_factory_builds_every_configured_kind_without_a_cluster_where_none_is_needed() -> None:
    config = parse(
        """
checks:
  - {name: smoke, kind: command, command: ['true']}
  - {name: rate, kind: prometheus, url: 'http://127.0.0.1:9', query: up, max: 1}
  - {name: probe, kind: probe, url: 'http://{{color}}.local/'}
  - {name: ready, kind: http, url: 'http://127.0.0.1:9/'}
"""
    )
    assert [build(c).kind for c in config.checks] == ["command", "prometheus", "probe", "http"]
