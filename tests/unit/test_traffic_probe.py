"""The traffic probe's pure parts: reading the colour, and the cutover it reports."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bluegreen.cli import COMMANDS, Outcome, parser
from bluegreen.errors import UsageError
from bluegreen.github import summary
from bluegreen.github.inputs import parse as parse_inputs
from bluegreen.model import Color, Result
from bluegreen.options import RollbackOptions, SwitchOptions
from bluegreen.phases.switch import _verify_traffic, planes
from bluegreen.report import text
from bluegreen.routers.base import Verification
from bluegreen.traffic_probe import (
    ColorReader,
    ProbeOptions,
    Sample,
    TrafficProbe,
    attach,
    percentile,
    summarize,
)
from entrypoint import outputs
from hack.traffic_rig import serving

WRITE = 1000.0


def answers(*pairs: tuple[float, str | None]) -> list[Sample]:
    """Samples sent `ms` after the write, answered by a colour (None: a failed request)."""
    return [
        Sample(WRITE + ms / 1000, color, "" if color else "ConnectionRefusedError") for ms, color in pairs
    ]


def test_a_clean_cut_reports_the_last_old_answer_and_the_first_new_one() -> None:
    cut = summarize(
        answers((-20, "blue"), (10, "blue"), (30, "blue"), (40, "green"), (50, "green"), (60, "green")),
        write_time=WRITE,
        old="blue",
        new="green",
    )
    assert (cut.requests, cut.failed) == (6, 0)
    assert cut.last_old_ms == 30.0
    assert cut.cutover_ms == 40.0
    assert cut.old_after_new == 0
    assert cut.moved


def test_an_old_answer_after_a_new_one_moves_the_cutover_past_it() -> None:
    cut = summarize(
        answers((10, "green"), (20, "blue"), (30, "green"), (40, "green")),
        write_time=WRITE,
        old="blue",
        new="green",
    )
    assert cut.cutover_ms == 30.0
    assert cut.old_after_new == 1
    assert cut.last_old_ms == 20.0


def test_requests_opened_at_once_are_not_ordered_by_their_stamps() -> None:
    """Seen on the rig under load: a request stamped at -7.4 ms got its port (and its colour) after
    one stamped at -6.9 ms. An old answer counts against the switch only when its connection was
    begun after a connection to the new colour was open."""
    racing = [
        Sample(WRITE - 0.0074, "green", connected=WRITE + 0.0200),
        Sample(WRITE - 0.0069, "blue", connected=WRITE - 0.0010),
        *answers((20, "green"), (30, "green")),
    ]
    assert summarize(racing, write_time=WRITE, old="blue", new="green").old_after_new == 0
    pinned = [*racing, Sample(WRITE + 0.040, "blue", connected=WRITE + 0.041), *answers((50, "green"))]
    cut = summarize(pinned, write_time=WRITE, old="blue", new="green")
    assert cut.old_after_new == 1
    assert cut.last_old_ms == 40.0 and cut.cutover_ms == 50.0


def test_failures_are_counted_by_cause_and_never_move_the_cutover() -> None:
    cut = summarize(
        answers((10, "blue"), (20, None), (30, "green")), write_time=WRITE, old="blue", new="green"
    )
    assert cut.failed == 1
    assert cut.errors == {"ConnectionRefusedError": 1}
    assert cut.cutover_ms == 30.0


def test_traffic_that_never_reached_the_new_colour_has_no_cutover() -> None:
    cut = summarize(answers((10, "blue"), (20, "blue")), write_time=WRITE, old="blue", new="green")
    assert cut.cutover_ms is None
    assert not cut.moved


def test_an_answer_naming_no_colour_after_the_new_one_is_not_a_clean_move() -> None:
    cut = summarize(answers((10, "green"), (20, "green")), write_time=WRITE, old="blue", new="green")
    assert cut.moved
    unknown = [*answers((10, "green")), Sample(WRITE + 0.02, None), *answers((30, "green"))]
    assert summarize(unknown, write_time=WRITE, old="blue", new="green").cutover_ms == 30.0


@pytest.mark.parametrize(
    ("reader", "headers", "body", "expected"),
    [
        (ColorReader(), {"x-color": " Green "}, "", "green"),
        (ColorReader.parse(header="X-Slot"), {"X-Slot": "blue"}, "", "blue"),
        (ColorReader(), {"Server": "x"}, "", None),
        (ColorReader.parse(pattern=r'"color": "(\w+)"'), {}, '{"color": "blue", "pod": "a"}', "blue"),
        (ColorReader.parse(pattern=r"colour=(\w+)"), {"X-Color": "green"}, "nothing", None),
    ],
)
def test_the_colour_is_read_from_the_header_or_the_pattern_the_user_names(
    reader: ColorReader, headers: dict[str, str], body: str, expected: str | None
) -> None:
    assert reader.read(headers, body) == expected


@pytest.mark.parametrize(
    ("pattern", "message"), [("color=(", "not a valid regular expression"), (r"color=\w+", "needs a group")]
)
def test_a_bad_pattern_is_refused_with_the_fix(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColorReader.parse(pattern=pattern)


@pytest.mark.parametrize("url", ["shop.example.com", "ftp://shop/", "http:///path"])
def test_a_probe_url_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        TrafficProbe(url)


def test_percentile_by_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 101)], 95) == 95.0


def test_a_pod_is_served_at_its_ip_and_container_ports_once_it_has_an_ip() -> None:
    pod = {
        "metadata": {"name": "shop-blue-1", "namespace": "ns", "labels": {"bluegreen.io/color": "blue"}},
        "spec": {
            "containers": [{"image": "shop:1", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}]
        },
        "status": {"phase": "Running", "podIP": "10.244.0.7"},
    }
    found = serving(pod)
    assert found is not None
    ip, ports, who = found
    assert (ip, ports, who.color, who.release) == ("10.244.0.7", [8080, 9090], "blue", "shop:1")
    assert serving({**pod, "status": {"phase": "Pending"}}) is None
    assert serving({**pod, "status": {"phase": "Succeeded", "podIP": "10.244.0.7"}}) is None


def switched(previous: str, active: str) -> Result:
    result = Result(phase="switch", result="switched", app="shop", namespace="ns")
    result.previous_color, result.active_color = previous, active
    result.timeline.append(
        (datetime.fromtimestamp(WRITE, UTC).isoformat(timespec="milliseconds"), "switched: x")
    )
    return result


def test_the_probe_reports_its_figures_in_the_result() -> None:
    result = attach(
        switched("blue", "green"),
        answers((-50, "blue"), (12, "blue"), (31, "green"), (60, "green")),
        url="http://shop/",
        fail_on_error=True,
    )
    assert (result.probe_failed, result.probe_cutover_ms, result.result) == (0, 31.0, "switched")
    assert result.details["probe"]["last_old_ms"] == 12.0
    assert "traffic moved to green 31 ms after the write (last blue answer at 12 ms)" in result.messages[-1]


def test_a_failed_probe_request_fails_the_step_only_when_asked() -> None:
    samples = answers((10, "blue"), (20, None), (30, "green"))
    kept = attach(switched("blue", "green"), samples, url="http://shop/", fail_on_error=False)
    assert (kept.result, kept.probe_failed) == ("switched", 1)
    failed = attach(switched("blue", "green"), samples, url="http://shop/", fail_on_error=True)
    assert failed.result == "failed"
    assert "--probe-fail-on-error" in failed.messages[-1]


def test_answers_without_a_colour_tell_the_user_how_to_name_it() -> None:
    nameless = [Sample(WRITE + 0.01, None), Sample(WRITE + 0.02, None)]
    result = attach(switched("blue", "green"), nameless, url="http://shop/", fail_on_error=False)
    assert result.probe_failed == 0
    assert result.probe_cutover_ms is None
    assert "--probe-header" in result.messages[-1]


def action_env(**values: str) -> dict[str, str]:
    return {"BLUEGREEN_PHASE": "switch", "BLUEGREEN_APP": "shop", **values}


@pytest.mark.parametrize("phase", ["switch", "rollback"])
def test_the_action_passes_the_probe_inputs_to_switch_and_rollback(phase: str) -> None:
    inputs = parse_inputs(
        action_env(
            BLUEGREEN_PHASE=phase,
            BLUEGREEN_PROBE_URL="https://shop.example.com/",
            BLUEGREEN_PROBE_PATTERN=r"colour=(\w+)",
            BLUEGREEN_PROBE_FAIL_ON_ERROR="true",
        )
    )
    options = inputs.options(None)
    assert isinstance(options, SwitchOptions | RollbackOptions)
    assert options.probe == ProbeOptions(
        url="https://shop.example.com/", pattern=r"colour=(\w+)", fail_on_error=True
    )


def test_the_cli_flags_make_the_same_probe_options() -> None:
    args = parser().parse_args(
        [
            "rollback",
            "--app",
            "shop",
            "--probe",
            "http://shop/",
            "--probe-header",
            "X-Slot",
            "--probe-after",
            "5s",
        ]
    )
    build = COMMANDS["rollback"].build
    assert build is not None
    built = build(args)
    assert isinstance(built, RollbackOptions)
    assert built.probe == ProbeOptions(url="http://shop/", header="X-Slot", after=5.0)


def test_a_bad_probe_url_is_an_input_problem_before_anything_runs() -> None:
    with pytest.raises(UsageError, match="probe-url: --probe 'shop' is not an http"):
        parse_inputs(action_env(BLUEGREEN_PROBE_URL="shop"))


def test_a_url_that_never_answers_is_not_queued_behind_busy_workers() -> None:
    """Slots with every worker waiting are skipped, so stop() returns within one request timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the kernel; nothing ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        probe = TrafficProbe(url, rate=200, max_requests=100, max_seconds=0.3, timeout=0.5, workers=2).start()
        probe.pause(0.3)
        began = time.monotonic()
        samples = probe.stop()
        assert time.monotonic() - began < 1.5
    assert len(samples) == 2 and all(s.error == "TimeoutError" for s in samples)
    assert probe.skipped > 20


# -- the probe as the switch's verification (issue 19: `converged` means traffic) -----------------


def control_plane(ms: float) -> Verification:
    return Verification(ok=True, converged_ms=ms, message="2 endpoints, all green")


def test_a_switch_is_verified_no_earlier_than_its_probe_saw_the_new_colour_alone() -> None:
    # kube-proxy on a busy node: EndpointSlices at 30 ms, packets at its next sync, 800 ms.
    checked, moved = _verify_traffic(
        lambda color, since, timeout: (800.0, f"50 requests, the last 5 answered by {color}"),
        control_plane(30.0),
        Color.GREEN,
        time.time(),
        60.0,
    )
    assert checked.ok and moved == 800.0 and checked.converged_ms == 800.0
    assert planes(30.0, moved, probe=True, reported_apart=True) == {
        "control_plane_ms": 30.0,
        "data_plane_ms": 800.0,
        "data_plane": "probe",
    }
    # A probe stamp earlier than the control plane was seen (the watch's own lag) is not verified earlier.
    early, _ = _verify_traffic(lambda *_: (12.0, "seen"), control_plane(30.0), Color.GREEN, time.time(), 60.0)
    assert early.ok and early.converged_ms == 30.0


def test_a_probe_that_never_saw_the_new_colour_alone_is_not_verified() -> None:
    checked, moved = _verify_traffic(
        lambda *_: (None, "80 requests, the last 0 answered by green"),
        control_plane(30.0),
        Color.GREEN,
        time.time(),
        60.0,
    )
    assert not checked.ok and moved is None
    assert "did not move to green alone" in checked.message and "control plane verified" in checked.message
    details = planes(30.0, moved, probe=True, reported_apart=True)
    assert details["data_plane"] == "probe" and details["data_plane_ms"] is None


def switched_with(verification: dict[str, object]) -> Result:
    result = Result(phase="switch", result="switched", app="shop", namespace="shop")
    result.active_color, result.previous_color = "green", "blue"
    result.api_ms, result.converged_ms = 6.0, 800.0
    result.details["verification"] = verification
    return result


def test_the_report_and_the_outputs_give_each_plane_apart() -> None:
    probed = switched_with(planes(30.0, 800.0, probe=True, reported_apart=True))
    lines = text(probed)
    assert "control plane (stored objects, EndpointSlices): 30 ms" in lines
    assert "data plane (--probe requests answered by the new colour alone): 800 ms" in lines
    out = outputs(Outcome(exit_code=0, result=probed))
    assert (out["control-plane-ms"], out["data-plane-ms"], out["converged-ms"]) == ("30.0", "800.0", "800.0")
    assert "| write to the data plane verified (probe: the new colour alone) | 800 | |" in summary.timings(
        probed
    )
    # Every output the entrypoint writes is declared in action.yml, and none declared is missing.
    declared = yaml.safe_load((Path(__file__).resolve().parents[2] / "action.yml").read_text())["outputs"]
    assert set(out) == set(declared)


def test_without_a_probe_the_report_says_the_data_plane_was_not_checked() -> None:
    plain = switched_with(planes(30.0, None, probe=False, reported_apart=False))
    assert "data plane: NOT CHECKED (no --probe)" in text(plain)
    assert outputs(Outcome(exit_code=0, result=plain))["data-plane-ms"] == ""
