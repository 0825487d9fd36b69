"""The engine's pure decisions, on plain dicts: rollout status, pod reasons, images, history, lock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bluegreen import history
from bluegreen.cli import execute, exit_code_for
from bluegreen.lock import MODE, PREEMPTIBLE, describe, judge, micro_time
from bluegreen.model import Color, Result
from bluegreen.phases.retire import seconds_left
from bluegreen.rollout import fully_available, pod_problems, rollout_status, valid_image, with_images
from bluegreen.routers.service import ready_addresses, ready_pod_ips


def deployment(
    *,
    replicas: int = 3,
    updated: int = 3,
    available: int = 3,
    total: int = 3,
    generation: int = 2,
    observed: int = 2,
    deadline_exceeded: bool = False,
) -> dict[str, Any]:
    conditions = [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}] if deadline_exceeded else []
    return {
        "metadata": {"name": "shop-green", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "replicas": total,
            "conditions": conditions,
        },
    }


@pytest.mark.parametrize(
    ("state", "done", "failed", "says"),
    [
        (deployment(), True, False, "3 of 3 replicas available"),
        (deployment(observed=1), False, False, "new spec to be observed"),
        (deployment(updated=1), False, False, "1 of 3 new replicas updated"),
        (deployment(total=4), False, False, "1 old replicas pending termination"),
        (deployment(available=2), False, False, "2 of 3 updated replicas available"),
        (deployment(updated=1, deadline_exceeded=True), False, True, "exceeded its progress deadline"),
    ],
)
def test_rollout_status_follows_kubectls_rules(
    state: dict[str, Any], done: bool, failed: bool, says: str
) -> None:
    status = rollout_status(state)
    assert (status.done, status.failed) == (done, failed)
    assert says in status.message


def test_a_colour_scaled_to_zero_cannot_take_traffic() -> None:
    assert fully_available(deployment())
    assert not fully_available(deployment(replicas=0, updated=0, available=0, total=0))
    assert not fully_available(None)


def pod(
    *,
    waiting: str | None = None,
    running_unready: bool = False,
    unschedulable: str | None = None,
    restarts: int = 0,
    deleting: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running", "conditions": []}
    if unschedulable:
        status = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": unschedulable,
                }
            ],
        }
    elif waiting:
        status["containerStatuses"] = [
            {
                "name": "app",
                "restartCount": restarts,
                "state": {"waiting": {"reason": waiting, "message": "m"}},
            }
        ]
    elif running_unready:
        status["containerStatuses"] = [{"name": "app", "ready": False, "state": {"running": {}}}]
    meta: dict[str, Any] = {"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {}
    return {"metadata": meta, "status": status}


def test_pod_problems_are_one_line_per_reason_with_counts() -> None:
    lines = pod_problems(
        [
            pod(waiting="CrashLoopBackOff", restarts=4),
            pod(waiting="CrashLoopBackOff", restarts=4),
            pod(waiting="ImagePullBackOff"),
            pod(unschedulable="0/2 nodes are available: 2 Insufficient cpu."),
            pod(running_unready=True),
            pod(waiting="CrashLoopBackOff", deleting=True),  # on its way out: not a reason
        ]
    )
    assert lines == [
        "2 pods: CrashLoopBackOff (container app, 4 restarts): m",
        "1 pod: ImagePullBackOff (container app): m",
        "1 pod: Unschedulable: 0/2 nodes are available: 2 Insufficient cpu.",
        "1 pod: readiness probe failing (container app running, not Ready)",
    ]


@pytest.mark.parametrize(
    ("reference", "valid"),
    [
        ("nginx", True),
        ("ghcr.io/acme/shop:1.4.2", True),
        ("localhost:5000/shop@sha256:" + "a" * 64, True),
        ("registry.local/shop:", False),
        ("Shop Image", False),
        ("shop:1:2", False),
        ("", False),
    ],
)
def test_image_references(reference: str, valid: bool) -> None:
    assert valid_image(reference) is valid


def test_new_images_replace_only_what_was_named() -> None:
    template = {
        "spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "sidecar", "image": "s:1"}]}
    }
    changed = with_images(template, {"app": "a:2"}, None)
    assert [c["image"] for c in changed["spec"]["containers"]] == ["a:2", "s:1"]
    assert template["spec"]["containers"][0]["image"] == "a:1"  # the live template is not touched
    with pytest.raises(ValueError, match="2 containers"):
        with_images(template, {}, "a:2")
    with pytest.raises(ValueError, match="no container named web"):
        with_images(template, {"web": "w:2"}, None)


def test_history_keeps_the_newest_entries_first_and_survives_damage() -> None:
    annotations: dict[str, str] = {}
    for n in range(25):
        annotations[history.HISTORY] = history.appended(annotations, {"n": n})
    kept = json.loads(annotations[history.HISTORY])
    assert [e["n"] for e in kept] == list(range(24, 4, -1))
    assert history.parse({history.HISTORY: "{not json"}) == []


def lease(
    holder: str | None, renewed: datetime, version: str = "1", *, preemptible: bool = False
) -> dict[str, Any]:
    """A Lease as the apiserver sends it."""
    metadata: dict[str, Any] = {"resourceVersion": version}
    if preemptible:
        metadata["annotations"] = {MODE: PREEMPTIBLE}
    spec: dict[str, Any] = {"renewTime": micro_time(renewed), "leaseDurationSeconds": 60}
    if holder is not None:
        spec["holderIdentity"] = holder
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


def test_a_lease_is_judged_by_the_readers_clock_never_by_the_holders() -> None:
    wall = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    # Renewed "an hour ago" by the holder's clock: still held until WE see it unchanged for 60s.
    stale_by_its_clock = lease("run 6", wall - timedelta(hours=1))
    holder, seen = judge(stale_by_its_clock, None, now=100.0)
    assert holder is not None and holder.identity == "run 6" and holder.left == 60
    holder, seen = judge(stale_by_its_clock, seen, now=159.0)
    assert holder is not None and round(holder.left) == 1
    assert judge(stale_by_its_clock, seen, now=160.0)[0] is None  # 60s of our clock unchanged: gone
    # A holder whose clock runs an hour ahead, renewing: every renewal restarts our count.
    ahead = lease("run 7", wall + timedelta(hours=1), "5")
    holder, seen = judge(ahead, seen, now=170.0)
    renewed = lease("run 7", wall + timedelta(hours=1, seconds=20), "6")
    holder, seen = judge(renewed, seen, now=225.0)
    assert holder is not None and holder.left == 60  # changed at 225: 60s from there
    assert judge(renewed, seen, now=284.0)[0] is not None
    # Released, missing: free at once.
    assert judge(lease(None, wall), None, now=0.0) == (None, None)
    assert judge(None, None, now=0.0) == (None, None)
    # A watch's Lease says a rollback may take it over.
    held, _ = judge(lease("watch", wall, preemptible=True), None, now=0.0)
    assert held is not None and held.preemptible and "rollback takes it over" in describe(held)


def test_retire_waits_out_the_window_after_the_last_switch() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert seconds_left((now - timedelta(minutes=10)).isoformat(), 1800, now) == pytest.approx(1200)
    assert seconds_left((now - timedelta(hours=1)).isoformat(), 1800, now) == 0
    assert seconds_left(None, 1800, now) == 0


def test_verification_compares_ready_addresses_with_ready_pods() -> None:
    slices = [
        {
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                {"addresses": ["10.0.0.3"]},
            ]
        }
    ]
    assert ready_addresses(slices) == {"10.0.0.1", "10.0.0.3"}
    pods: list[dict[str, Any]] = [
        {
            "metadata": {},
            "status": {"podIP": "10.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]},
        },
        {
            "metadata": {},
            "status": {"podIP": "10.0.0.2", "conditions": [{"type": "Ready", "status": "False"}]},
        },
        {
            "metadata": {"deletionTimestamp": "x"},
            "status": {"podIP": "10.0.0.4", "conditions": [{"type": "Ready", "status": "True"}]},
        },
    ]
    assert ready_pod_ips(pods) == {"10.0.0.1"}


@pytest.mark.parametrize(
    ("phase", "result", "code"),
    [
        ("switch", "switched", 0),
        ("switch", "noop", 0),
        ("rollback", "rolled-back", 0),
        ("release", "rolled-back", 1),
        ("gate", "failed", 1),
        ("gate", "inconclusive", 1),
        ("gate", "error", 3),
    ],
)
def test_exit_codes_follow_the_result(phase: str, result: str, code: int) -> None:
    assert exit_code_for(Result(phase=phase, result=result, app="a", namespace="n")) == code


def test_bad_flags_are_usage_errors_before_any_cluster_access() -> None:
    outcome = execute(["switch", "--app", "shop", "--to", "purple", "--kubeconfig", "/nonexistent"])
    assert outcome.exit_code == 2
    assert outcome.error is not None and "unknown colour 'purple'" in outcome.error.message
    missing = execute(["status", "--app", "shop", "--kubeconfig", "/nonexistent/kubeconfig"])
    assert missing.exit_code == 2
    assert missing.error is not None and "does not exist" in missing.error.message


def test_colour_names() -> None:
    assert Color.parse(" Green ") is Color.GREEN
    assert Color.BLUE.other is Color.GREEN
    with pytest.raises(ValueError, match="use 'blue' or 'green'"):
        Color.parse("purple")
