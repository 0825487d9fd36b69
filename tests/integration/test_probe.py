"""`--probe URL` on switch and rollback, against a real sample app on loopback.

The sample app does not follow the cluster's Service (kwok's pods serve nothing): these tests show what
the probe reports and how it fails a step; the cutover through a real data plane is in tests/traffic.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lightkube import Client

from bluegreen.cli import execute
from hack.localcluster import LocalCluster
from tests.integration.test_engine import selector_color
from tests.integration.test_entrypoint import Step
from tests.support.apps import create_app
from tests.support.sampleapp import running

pytestmark = pytest.mark.cluster

BODY_COLOUR = r'"color": "(\w+)"'


def switch(cluster: LocalCluster, namespace: str, *flags: str) -> tuple[int, dict[str, object]]:
    outcome = execute(
        [
            "switch",
            "--to",
            "green",  # no deploy recorded a candidate: an explicit move
            "--app",
            "shop",
            "-n",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-o",
            "json",
            *flags,
        ]
    )
    if outcome.result is None:
        assert outcome.error is not None
        return outcome.exit_code, {"error": outcome.error.message}
    return outcome.exit_code, outcome.result.to_dict()


def test_a_probe_that_never_sees_the_new_colour_leaves_the_switch_not_verified(
    kube: Client, cluster: LocalCluster, namespace: str
) -> None:
    """The probe is the verification for the service router too: EndpointSlices on green are not
    "verified" while requests through the probe's URL are still answered by blue."""
    create_app(kube, namespace, replicas=1)
    with running("blue") as apps:
        code, result = switch(
            cluster, namespace, "--probe", f"{apps['blue'].url}/", "--probe-pattern", BODY_COLOUR,
            "--probe-rate", "50", "--probe-after", "1s", "--timeout", "2s",
        )  # fmt: skip
    assert code == 1, result
    assert result["result"] == "failed"
    probe = result["details"]["probe"]  # type: ignore[index]
    assert result["probe_failed"] == 0
    assert probe["answers"] == {"blue": probe["requests"]} and probe["requests"] >= 50
    # The URL kept answering blue although the Service moved: no cutover seen from outside, and said so.
    assert result["probe_cutover_ms"] is None
    assert any("green never answered alone" in m for m in result["messages"])  # type: ignore[attr-defined]
    verification = result["details"]["verification"]  # type: ignore[index]
    assert verification["data_plane"] == "probe" and verification["data_plane_ms"] is None, verification
    assert verification["control_plane_ms"] > 0, verification
    assert not any(e["event"].startswith("verified") for e in result["timeline"]), result["timeline"]  # type: ignore[attr-defined]
    assert any("did not move to green alone" in m for m in result["messages"])  # type: ignore[attr-defined]
    # Not written back (the service router's switch is never undone): left on green, said so.
    assert selector_color(kube, namespace, "shop") == "green"
    assert any("run `bluegreen rollback`" in m for m in result["messages"])  # type: ignore[attr-defined]


def test_probe_fail_on_error_fails_the_step_when_a_request_fails(
    kube: Client, cluster: LocalCluster, namespace: str
) -> None:
    create_app(kube, namespace, replicas=1)
    with running("blue") as apps:
        apps["blue"].set(error_rate=0.2, latency=0.0)
        code, result = switch(
            cluster, namespace, "--probe", f"{apps['blue'].url}/", "--probe-pattern", BODY_COLOUR,
            "--probe-rate", "50", "--probe-after", "1s", "--probe-fail-on-error", "--timeout", "2s",
        )  # fmt: skip
    assert code == 1, result
    assert result["result"] == "failed"
    assert isinstance(result["probe_failed"], int) and result["probe_failed"] > 0
    assert result["details"]["probe"]["errors"] == {"HTTP 500": result["probe_failed"]}  # type: ignore[index]


def test_a_probe_url_that_does_not_answer_refuses_the_switch_before_any_change(
    kube: Client, cluster: LocalCluster, namespace: str
) -> None:
    create_app(kube, namespace, replicas=1)
    code, result = switch(cluster, namespace, "--probe", "http://127.0.0.1:9/")
    assert code == 2, result
    assert "did not answer before the switch" in str(result["error"])
    assert selector_color(kube, namespace, "shop") == "blue"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--probe", "shop.example.com"], "not an http(s) URL"),
        (["--probe", "http://127.0.0.1:9/", "--probe-pattern", "color=\\w+"], "needs a group"),
        (["--probe", "http://127.0.0.1:9/", "--probe-rate", "0"], "out of range"),
    ],
)
def test_bad_probe_flags_are_usage_errors_before_the_cluster_is_asked(
    cluster: LocalCluster, flags: list[str], message: str
) -> None:
    code, result = switch(cluster, "no-such-namespace", *flags)
    assert code == 2 and message in str(result["error"])


def test_the_action_step_reports_the_probe_in_outputs_and_summary(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_app(kube, namespace, replicas=1)
    with running("blue") as apps:
        apps["blue"].set(error_rate=0.25, latency=0.0)
        code, out, summary, stdout = Step(tmp_path, cluster, capsys).run(
            phase="switch",
            to="green",
            app="shop",
            namespace=namespace,
            probe_url=f"{apps['blue'].url}/",
            probe_pattern=BODY_COLOUR,
            probe_fail_on_error="true",
            timeout="2s",  # the probe's bound: blue never moves, so it is not verified
        )
    assert code == 1, stdout
    assert out["result"] == "failed" and int(out["probe-failed"]) > 0
    assert out["probe-cutover-ms"] == ""  # the sample app never answered green
    assert "| probe: failed requests |" in summary
    assert "| write to the data plane verified (probe: the new colour alone) | not seen |" in summary
    assert out["data-plane-ms"] == "" and float(out["control-plane-ms"]) > 0
