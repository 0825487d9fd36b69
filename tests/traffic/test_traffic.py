"""Real requests through a switch: a steady load of new connections at the Service's ClusterIP.

Each test keeps a bounded load (rate, count and time) running while the `bluegreen` command changes
the Service, then asserts what a user of the app would see: not one failed request, and after the
switch only the target colour answering. Timings are printed by bench/traffic.py, never asserted.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import cast

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from bluegreen.traffic_probe import Sample, TrafficProbe, summarize
from hack.traffic_rig import Rig
from tests.support.admission import refusing, wait_refusing
from tests.support.apps import create_app, deployment, service, wait_available
from tests.support.traffic import (
    Churn,
    KeepAliveClient,
    bluegreen,
    cluster_url,
    wait_answering,
    write_time,
)

pytestmark = pytest.mark.traffic

RATE = 100.0  # new connections per second: steady, and light on a 2-core machine
SETTLE = 2.5  # seconds after a write: beyond kube-proxy's 1 s minimum sync period, with room


def load(url: str, seconds: float) -> TrafficProbe:
    return TrafficProbe(url, rate=RATE, max_requests=int(RATE * seconds), max_seconds=seconds)


def assert_moved(samples: list[Sample], *, write: float, old: str | None, new: str) -> None:
    cut = summarize(samples, write_time=write, old=old, new=new)
    assert cut.failed == 0, f"{cut.failed} failed requests across the switch to {new}: {cut.errors}"
    assert cut.moved, f"traffic did not end on {new} alone: {cut.to_dict()}"
    assert cut.old_after_new == 0, (
        f"{old} answered {cut.old_after_new} times after {new} had: {cut.to_dict()}"
    )


def test_switch_and_rollback_back_and_forth_fail_no_request(
    inside: Rig, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, replicas=2)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    # No deploy recorded a candidate: the switches name their colour. A rollback rejects the release
    # it leaves, so switching back to it again takes --force (intent, not toggles).
    steps = [
        ("green", ("switch", "--to", "green")),
        ("blue", ("rollback",)),
        ("green", ("switch", "--to", "green", "--force")),
        ("blue", ("rollback",)),
    ]
    # One load per step, from a second before its command to SETTLE after it: a step's samples end
    # before the next command starts. (One load across all steps, cut at the next write's timestamp,
    # counted the next switch's answers against this one: that timestamp is taken when the write's
    # response is read, and on a loaded machine kube-proxy had moved traffic up to 51 ms before it.)
    for color, command in steps:
        old = "blue" if color == "green" else "green"
        with load(url, seconds=45) as probe:  # a CLI run took up to 15 s on a busy 2-core machine
            time.sleep(1)
            result = bluegreen(inside, *command, "--app", "shop", "-n", namespace)
            time.sleep(SETTLE)
        samples, write = probe.stop(), write_time(result)
        assert len(samples) > RATE * SETTLE * 0.8, "the load fell far behind its rate"
        assert samples[-1].sent > write + SETTLE / 2, (
            f"the load ended before the switch to {color} had settled: raise its bound"
        )
        assert_moved(samples, write=write, old=old, new=color)


def test_init_adopts_a_plain_deployment_while_requests_flow(
    inside: Rig, kube: Client, namespace: str
) -> None:
    plain = deployment("shop", "blue", replicas=2).to_dict()
    plain["metadata"]["name"] = "shop"
    for labels in (
        plain["metadata"]["labels"],
        plain["spec"]["selector"]["matchLabels"],
        plain["spec"]["template"]["metadata"]["labels"],
    ):
        labels.pop("bluegreen.io/color")
    kube.create(cast(Deployment, Deployment.from_dict(plain)), namespace=namespace)
    kube.create(service("shop", "shop", None), namespace=namespace)
    wait_available(kube, namespace, "shop")
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "")  # the plain pods answer without a colour
    with load(url, seconds=40) as probe:
        time.sleep(1)
        result = bluegreen(inside, "init", "--app", "shop", "-n", namespace)
        time.sleep(SETTLE)
    assert result["result"] == "adopted"
    samples = probe.samples
    failed = [s for s in samples if s.failed]
    assert not failed, f"{len(failed)} of {len(samples)} requests failed while init adopted the app"
    tail = [s.color for s in samples[-int(RATE) :]]
    assert set(tail) == {"blue"}, f"after init, answers came from {set(tail)}"


def test_retire_under_load_and_a_rollback_from_the_retired_colour(
    inside: Rig, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, replicas=2)
    url = cluster_url(kube, namespace, "shop")
    bluegreen(inside, "switch", "--to", "green", "--app", "shop", "-n", namespace)
    wait_answering(url, "green")
    with load(url, seconds=20) as probe:
        time.sleep(1)
        retired = bluegreen(inside, "retire", "--app", "shop", "-n", namespace)
        time.sleep(SETTLE)
    assert retired["result"] == "retired"
    colors = {s.color for s in probe.samples}
    failed = [s for s in probe.samples if s.failed]
    assert not failed and colors == {"green"}, (
        f"while blue was retired: {len(failed)} failed, colours {colors}"
    )

    with load(url, seconds=90) as probe:
        time.sleep(1)
        back = bluegreen(inside, "rollback", "--app", "shop", "-n", namespace)
        time.sleep(SETTLE)
    assert back["result"] == "rolled-back"
    assert_moved(probe.samples, write=write_time(back), old="green", new="blue")


def test_a_group_switch_moves_every_members_traffic(
    inside: Rig, kube: Client, namespace: str, tmp_path: Path
) -> None:
    members = ("cart", "web")
    for app in members:
        create_app(kube, namespace, app, replicas=1)
    urls = {app: cluster_url(kube, namespace, app) for app in members}
    for url in urls.values():
        wait_answering(url, "blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        f"groups:\n  - name: storefront\n    namespace: {namespace}\n    members: [cart, web]\n"
    )
    probes = {app: load(url, seconds=20).start() for app, url in urls.items()}
    try:
        time.sleep(1)
        bluegreen(
            inside, "group", "switch", "--to", "green", "--group", "storefront", "--config", str(config)
        )
        moved_at = time.time()
        time.sleep(SETTLE)
    finally:
        samples = {app: probe.stop() for app, probe in probes.items()}
    for app in members:
        failed = [s for s in samples[app] if s.failed]
        after = {s.color for s in samples[app] if s.sent > moved_at + 1.5}
        assert not failed, f"{app}: {len(failed)} requests failed during the group switch"
        assert after == {"green"}, f"{app} was left behind: answers from {after} after the group switch"


def test_a_group_switch_that_fails_moves_back_with_no_failed_request(
    inside: Rig, kube: Client, namespace: str, tmp_path: Path
) -> None:
    """web's write is refused (an admission policy, as a user's webhook might): cart, moved already,
    is moved back, and neither app's clients see a failed request or end on green."""
    members = ("cart", "web")
    for app in members:
        create_app(kube, namespace, app, replicas=1)
    urls = {app: cluster_url(kube, namespace, app) for app in members}
    for url in urls.values():
        wait_answering(url, "blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        f"groups:\n  - name: storefront\n    namespace: {namespace}\n    members: [cart, web]\n"
    )
    to_green = "has(object.spec.selector) && object.spec.selector['bluegreen.io/color'] == 'green'"
    with refusing(kube, namespace, "web", to_green, f"refuse-{namespace}"):
        wait_refusing(kube, namespace, "web")
        probes = {app: load(url, seconds=20).start() for app, url in urls.items()}
        try:
            time.sleep(1)
            result = bluegreen(
                inside,
                "group",
                *("switch", "--to", "green", "--group", "storefront", "--config", str(config)),
                check=False,
            )
            ended_at = time.time()
            time.sleep(SETTLE)
        finally:
            samples = {app: probe.stop() for app, probe in probes.items()}
    assert result.get("result") == "failed", result
    assert result["details"]["failed"] == [f"{namespace}/web"], result["details"]
    assert f"{namespace}/cart" in result["details"]["moved_back"], result["details"]
    for app in members:
        failed = [s for s in samples[app] if s.failed]
        after = {s.color for s in samples[app] if s.sent > ended_at + 1.5}
        assert not failed, f"{app}: {len(failed)} requests failed during the failed group switch"
        assert after == {"blue"}, (
            f"{app} did not end on blue: answers from {after} after the group moved back"
        )


def test_keep_alive_connections_stay_on_the_old_colour_after_a_switch(
    inside: Rig, kube: Client, namespace: str
) -> None:
    """What a user sees without a drain: a selector switch moves new connections only.

    HTTP/1.1 keep-alive (and gRPC) clients keep the connection they opened, so they go on reaching
    the old colour, which keeps running, until they reconnect.
    """
    create_app(kube, namespace, replicas=2)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    clients = [KeepAliveClient(url) for _ in range(4)]
    try:
        assert {c.get().color for c in clients} == {"blue"}
        bluegreen(inside, "switch", "--to", "green", "--app", "shop", "-n", namespace)
        wait_answering(url, "green")  # new connections have moved
        pinned = [c.get() for _ in range(20) for c in clients]
    finally:
        for c in clients:
            c.close()
    assert not [s for s in pinned if s.failed]
    assert {s.color for s in pinned} == {"blue"}, "keep-alive connections moved without reconnecting"


def test_the_switch_probe_sees_the_cutover_through_the_clusterip(
    inside: Rig, kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, replicas=2)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    result = bluegreen(
        inside,
        "switch",
        "--to",
        "green",
        "--app",
        "shop",
        "-n",
        namespace,
        "--probe",
        url,
        "--probe-rate",
        "50",
        "--probe-after",
        "2s",
    )
    assert result["result"] == "switched"
    probe = result["details"]["probe"]
    assert result["probe_failed"] == 0, probe
    assert result["probe_cutover_ms"] is not None, probe
    assert probe["old_after_new"] == 0 and set(probe["answers"]) == {"blue", "green"}, probe


def test_on_a_busy_cluster_traffic_still_moves_with_no_failed_request(
    inside: Rig, kube: Client, namespace: str
) -> None:
    """Another Service's endpoints change every 0.3 s: kube-proxy applies ours at its next sync
    (up to its 1 s min sync period after the write, long after converged_ms), and no request fails."""
    create_app(kube, namespace, replicas=2)
    create_app(kube, namespace, "noise", replicas=1)
    kube.create(service("noise-churn", "noise", "blue"), namespace=namespace)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    churn = Churn(kube, namespace, "noise-churn", max_seconds=60).start()
    try:
        with load(url, seconds=30) as probe:
            time.sleep(1)
            result = bluegreen(inside, "switch", "--to", "green", "--app", "shop", "-n", namespace)
            time.sleep(SETTLE)
    finally:
        flips = churn.stop()
    assert flips > 5, "the cluster was not busy"
    assert_moved(probe.samples, write=write_time(result), old="blue", new="green")


def test_keep_alive_connections_move_once_the_switch_drains_the_old_colour(
    inside: Rig, kube: Client, namespace: str, tmp_path: Path
) -> None:
    """The documented remedy: with a `drain` hook in bluegreen.yaml, the switch tells each pod of the
    old colour to drain (POST /drain through the apiserver's pod proxy); it then answers
    `Connection: close`, so each keep-alive client reconnects after one more answer, and reaches the
    new colour. The result names the pods drained."""
    create_app(kube, namespace, replicas=2)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        "checks: []  # no gate: this test is about the drain\n"
        "drain: {http: {path: /drain, port: 8080, method: POST}, timeout: 3s}\n"
    )
    blue = sorted(
        p.metadata.name
        for p in kube.list(Pod, namespace=namespace, labels={"bluegreen.io/color": "blue"})
        if p.metadata is not None and p.metadata.name
    )
    clients = [KeepAliveClient(url) for _ in range(4)]
    try:
        assert {c.get().color for c in clients} == {"blue"}
        result = bluegreen(
            inside, "switch", "--to", "green", "--app", "shop", "-n", namespace, "--config", str(config)
        )
        wait_answering(url, "green")
        last_blue = [c.get() for c in clients]  # each ends its connection with this answer
        after = [c.get() for _ in range(5) for c in clients]
    finally:
        for c in clients:
            c.close()
    marks = {e["event"].split(":")[0]: e["time"] for e in result["timeline"]}
    print(f"\ndrain hook: {result['details']['drain_hook']}, timeline: {marks}")
    assert result["result"] == "switched", result
    assert result["details"]["drain_hook"] == {"color": "blue", "drained": blue, "failed": {}}, result
    assert not [s for s in last_blue + after if s.failed]
    assert {s.color for s in last_blue} == {"blue"}
    assert {s.color for s in after} == {"green"}, (
        "keep-alive clients still reach the old colour after the drain"
    )


def test_a_drain_hook_the_pods_refuse_is_a_warning_not_a_failed_switch(
    inside: Rig, kube: Client, namespace: str, tmp_path: Path
) -> None:
    """A pod that does not answer the drain call (here: nothing listens on the port) is named in the
    result; traffic has moved, so the switch stands."""
    create_app(kube, namespace, replicas=1)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    config = tmp_path / "bluegreen.yaml"
    config.write_text(
        "checks: []  # no gate: this test is about the drain\n"
        "drain: {http: {path: /drain, port: 9, method: POST}, timeout: 2s}\n"
    )
    result = bluegreen(
        inside, "switch", "--to", "green", "--app", "shop", "-n", namespace, "--config", str(config)
    )
    assert result["result"] == "switched", result
    hook = result["details"]["drain_hook"]
    assert hook["drained"] == [] and len(hook["failed"]) == 1, hook
    assert any(m.startswith("drain: 0 blue pods drained; failed: ") for m in result["messages"]), result


def test_on_a_busy_cluster_a_probed_switch_is_verified_only_once_traffic_moved(
    inside: Rig, kube: Client, namespace: str
) -> None:
    """kube-proxy applies our EndpointSlices at its next sync, up to 1 s after they list the new pods:
    with --probe, the service router's switch and rollback say "verified" only once the probe's requests
    are answered by the new colour alone; a separate load sees no old-colour answer after that."""
    create_app(kube, namespace, replicas=2)
    create_app(kube, namespace, "noise", replicas=1)
    kube.create(service("noise-churn", "noise", "blue"), namespace=namespace)
    url = cluster_url(kube, namespace, "shop")
    wait_answering(url, "blue")
    probe = ("--probe", url, "--probe-rate", "50", "--probe-after", "1s")
    churn = Churn(kube, namespace, "noise-churn", max_seconds=90).start()
    try:
        with load(url, seconds=60) as watching:
            time.sleep(1)
            switched = bluegreen(inside, "switch", "--to", "green", "--app", "shop", "-n", namespace, *probe)
            time.sleep(SETTLE)
            rolled = bluegreen(
                inside, "rollback", "--app", "shop", "-n", namespace, "--reason", "test", *probe
            )
            time.sleep(SETTLE)
    finally:
        flips = churn.stop()
    assert flips > 5, "the cluster was not busy"
    back = write_time(rolled) - 0.2  # the rollback's write was sent before it returned
    for result, old, new, end in ((switched, "blue", "green", back), (rolled, "green", "blue", 1e12)):
        assert result["result"] in ("switched", "rolled-back"), result
        planes = result["details"]["verification"]
        assert planes["data_plane"] == "probe" and planes["data_plane_ms"] is not None, planes
        # converged_ms is the later of the two (the details are rounded to 0.1 ms).
        assert result["converged_ms"] >= max(planes["data_plane_ms"], planes["control_plane_ms"]) - 0.1, (
            result
        )
        verified = next(
            datetime.fromisoformat(e["time"]).timestamp()
            for e in result["timeline"]
            if e["event"].startswith("verified")
        )
        # What "verified" promises a user: from then on no new connection reaches the old colour.
        late = [s for s in watching.samples if verified <= s.sent < end and (s.failed or s.color != new)]
        assert late == [], f"{old} or failures after {new} was verified: {late[:5]}"
        print(
            f"\n{result['phase']} to {new} on a busy cluster: control plane {planes['control_plane_ms']:.0f} ms, "
            f"data plane (probe) {planes['data_plane_ms']:.0f} ms, verified at {result['converged_ms']:.0f} ms"
        )
    before = [s for s in watching.samples if s.sent < back]
    assert_moved(before, write=write_time(switched), old="blue", new="green")
    after = [s for s in watching.samples if s.sent >= back]
    assert_moved(after, write=write_time(rolled), old="green", new="blue")
