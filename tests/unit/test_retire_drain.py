"""retire's drain report: killed at the grace deadline or not, and what it tells the user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bluegreen.phases.retire import Drain, killed_at_deadline

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def pod(deadline: datetime | None = None, exit_code: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "shop-blue-1"}
    if deadline is not None:
        meta["deletionTimestamp"] = deadline.isoformat().replace("+00:00", "Z")
    status: dict[str, Any] = {}
    if exit_code is not None:
        status["containerStatuses"] = [{"state": {"terminated": {"exitCode": exit_code}}}]
    return {"metadata": meta, "status": status}


def test_a_pod_before_its_grace_deadline_is_draining_not_killed() -> None:
    assert not killed_at_deadline(pod(NOW + timedelta(seconds=10)), NOW)
    assert not killed_at_deadline(pod(), NOW)


def test_a_pod_still_there_past_its_grace_deadline_was_killed() -> None:
    assert killed_at_deadline(pod(NOW - timedelta(seconds=2)), NOW)
    # Within a second of the deadline a pod that exited on time may still be listed.
    assert not killed_at_deadline(pod(NOW - timedelta(seconds=0.5)), NOW)


def test_a_container_ended_by_sigkill_was_killed() -> None:
    assert killed_at_deadline(pod(NOW + timedelta(seconds=10), exit_code=137), NOW)
    assert not killed_at_deadline(pod(NOW + timedelta(seconds=10), exit_code=0), NOW)


def test_the_message_says_how_long_and_who_was_killed_with_the_fix() -> None:
    clean = Drain(pods=2, seconds=6.04)
    assert clean.message("shop-blue") == "drained shop-blue: 2 pods gone in 6.0s"
    cut = Drain(pods=2, seconds=2.3, killed=["shop-blue-b", "shop-blue-a"])
    text = cut.message("shop-blue")
    assert "2 killed at the grace deadline (shop-blue-a, shop-blue-b)" in text
    assert "terminationGracePeriodSeconds" in text
    stuck = Drain(pods=2, seconds=600, left=["shop-blue-a"])
    assert stuck.message("shop-blue").startswith("shop-blue: 1 of 2 pods still terminating after 600s")
    assert stuck.to_dict()["left"] == ["shop-blue-a"]
