"""The correlation ID, the headers sent to the app, and the JSON log lines (pure logic, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bluegreen import correlation, logs
from bluegreen.github import summary
from bluegreen.history import entry
from bluegreen.model import Result, RunInfo

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_id_is_the_explicit_one_else_the_github_run_and_attempt_else_generated_once() -> None:
    assert correlation.correlation_id({"BLUEGREEN_CORRELATION_ID": "rel-7", "GITHUB_RUN_ID": "1"}) == "rel-7"
    assert correlation.correlation_id({"GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "3"}) == "4242-3"
    assert correlation.correlation_id({"GITHUB_RUN_ID": "4242"}) == "4242-1"
    generated = correlation.correlation_id({})
    assert len(generated) == 32 and correlation.correlation_id({}) == generated  # one per process


def test_headers_carry_the_id_and_a_traceparent_under_the_parent_trace() -> None:
    env = {"BLUEGREEN_CORRELATION_ID": "4242-1", "TRACEPARENT": PARENT}
    first, second = correlation.headers(env), correlation.headers(env)
    assert first["X-Request-Id"] == "4242-1"
    version, trace, span, flags = first["traceparent"].split("-")
    assert (version, trace, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert len(span) == 16 and span != "00f067aa0ba902b7"
    assert second["traceparent"].split("-")[2] != span  # a new span per request


@pytest.mark.parametrize(
    "parent",
    ["", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "01-xyz-00f067aa0ba902b7-01"],
)
def test_without_a_valid_parent_the_trace_id_derives_from_the_correlation_id(parent: str) -> None:
    env = {"BLUEGREEN_CORRELATION_ID": "4242-1", "TRACEPARENT": parent}
    trace = correlation.headers(env)["traceparent"].split("-")[1]
    assert trace == correlation.trace_id("4242-1", {}) and len(trace) == 32 and set(trace) != {"0"}
    assert trace == correlation.headers(env)["traceparent"].split("-")[1]  # the same for every request


def test_a_json_log_line_has_every_field_and_follows_the_stage() -> None:
    written: list[str] = []
    log = logs.JsonReporter(
        written.append,
        app="shop",
        namespace="prod",
        phase="release",
        correlation_id="4242-1",
        clock=lambda: datetime(2026, 12, 1, 22, 0, 1, 250000, tzinfo=UTC),
    )
    log.stage("gate")
    log.progress("round 1: 3 checks passed")
    log.outcome(result="switched", colour="green", summary="shop (prod): release switched", exit_code=0)
    lines = [json.loads(line) for line in written]
    assert lines[1] == {
        "time": "2026-12-01T22:00:01.250Z",
        "level": "info",
        "phase": "release/gate",
        "app": "shop",
        "namespace": "prod",
        "colour": None,
        "message": "round 1: 3 checks passed",
        "correlation_id": "4242-1",
    }
    assert (lines[2]["phase"], lines[2]["colour"], lines[2]["result"]) == ("release", "green", "switched")


def test_an_unknown_log_format_is_a_usage_error() -> None:
    assert logs.log_format("JSON") == "json" and logs.log_format("") == "text"
    with pytest.raises(Exception, match="use one of text, json"):
        logs.log_format("yaml")


def test_the_history_entry_and_the_summary_carry_the_id() -> None:
    run = RunInfo(run_id="4242", correlation_id="4242-1")
    made = entry(
        from_color="blue", to_color="green", images={}, run=run, reason="", action="switch", timings={}
    )
    assert made["correlation_id"] == "4242-1"
    result = Result(phase="switch", result="switched", app="shop", namespace="prod", active_color="green")
    text = summary.markdown(result, None, phase="switch", app="shop", correlation_id="4242-1")
    assert "Correlation ID: `4242-1`" in text


def test_without_an_otlp_endpoint_the_sdk_is_never_imported() -> None:
    import os
    import subprocess
    import sys

    program = (
        "import sys, bluegreen.cli, bluegreen.telemetry as t\n"
        "assert t.start() == ''\n"
        "with t.span('x') as s: assert s is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"
