"""Intent, not toggles: which release a switch promotes, and the history's bounds (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bluegreen import history, intent
from bluegreen.errors import RefusedError, UsageError
from bluegreen.intent import Release, decide, template_hash
from bluegreen.model import Color, RunInfo

BLUE, GREEN = Color.BLUE, Color.GREEN


def release(
    color: Color, hash_: str, *, seq: int = 0, gate: str | None = None, rejected: str | None = None
) -> Release:
    return Release(
        color=color,
        hash=hash_,
        candidate={"hash": hash_, "seq": seq} if seq else None,
        gate={"hash": gate} if gate else None,
        rejected={"hash": rejected, "time": "t", "reason": "errors up"} if rejected else None,
    )


def pair(blue: Release, green: Release) -> dict[Color, Release]:
    return {BLUE: blue, GREEN: green}


def test_the_template_hash_is_the_same_release_on_either_colour_and_changes_with_the_image() -> None:
    def template(color: str, image: str) -> dict[str, Any]:
        return {
            "metadata": {"labels": {"app": "shop", "bluegreen.io/color": color}},
            "spec": {"containers": [{"name": "app", "image": image}]},
        }

    label = "bluegreen.io/color"
    assert template_hash(template("blue", "a:1"), label) == template_hash(template("green", "a:1"), label)
    assert template_hash(template("blue", "a:1"), label) != template_hash(template("blue", "a:2"), label)


def test_switch_without_to_promotes_the_newest_candidate() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2))
    assert decide(BLUE, releases).target is GREEN


def test_a_re_run_when_the_candidate_is_live_is_a_noop_never_a_flip_back() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2))
    decision = decide(GREEN, releases)
    assert decision.target is None
    assert "already live" in decision.why


def test_without_any_recorded_candidate_switch_needs_to() -> None:
    with pytest.raises(RefusedError, match="no candidate is recorded"):
        decide(BLUE, pair(release(BLUE, "a"), release(GREEN, "b")))
    assert decide(BLUE, pair(release(BLUE, "a"), release(GREEN, "b")), to=GREEN).target is GREEN


def test_the_candidate_hash_promotes_that_release_and_refuses_one_replaced_or_older() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2))
    assert decide(BLUE, releases, candidate="new").target is GREEN
    assert decide(GREEN, releases, candidate="new").target is None
    with pytest.raises(RefusedError, match="deployed on neither colour"):
        decide(BLUE, releases, candidate="gone")
    with pytest.raises(RefusedError, match="older than the live release"):
        decide(GREEN, releases, candidate="old")
    with pytest.raises(UsageError, match="disagree"):
        decide(BLUE, releases, candidate="new", to=BLUE)


def test_a_rejected_release_needs_force_and_the_decision_records_it() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2, rejected="new"))
    with pytest.raises(RefusedError, match="rejected") as refused:
        decide(BLUE, releases)
    assert "--force" in refused.value.remedy
    forced = decide(BLUE, releases, force=True)
    assert forced.target is GREEN
    assert forced.forced and forced.forced[0].startswith("rejected")


def test_a_rejection_of_another_template_does_not_stick_to_a_new_deploy() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "newer", seq=3, rejected="new"))
    assert decide(BLUE, releases).target is GREEN


def test_a_template_changed_after_its_gate_is_refused_naming_both_hashes() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "edited", seq=2, gate="judged"))
    with pytest.raises(RefusedError) as refused:
        decide(BLUE, releases)
    assert "judged" in refused.value.message and "edited" in refused.value.message
    forced = decide(BLUE, releases, force=True)
    assert forced.ungated and forced.target is GREEN


def test_a_gate_is_required_only_when_configured_and_only_to_promote() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2))
    with pytest.raises(RefusedError, match="never passed a gate"):
        decide(BLUE, releases, gate_required=True)
    gated = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2, gate="new"))
    assert decide(BLUE, gated, gate_required=True).target is GREEN
    # Going back to the older release (a rollback) needs no gate.
    assert decide(GREEN, releases, to=BLUE, gate_required=True).target is BLUE
    assert decide(GREEN, releases, to=BLUE, gate_required=True, rollback=True).target is BLUE


def test_a_rollback_to_a_rejected_release_is_refused_without_force() -> None:
    releases = pair(release(BLUE, "old", seq=1), release(GREEN, "new", seq=2, rejected="new"))
    with pytest.raises(RefusedError, match="rejected"):
        decide(BLUE, releases, to=GREEN, rollback=True)


def test_a_long_reason_is_cut_and_the_history_stays_under_its_size_bound() -> None:
    huge = "x" * 200_000
    entries = [
        history.entry(
            from_color="blue",
            to_color="green",
            images={"green": [f"registry.local/sidecar-{i}:{'1' * 100}" for i in range(40)]},
            run=RunInfo(),
            reason=huge,
            action="switch",
            timings={},
        )
        for _ in range(history.KEEP)
    ]
    assert len(entries[0]["reason"]) < history.MAX_REASON + 100
    assert "cut from 200000" in entries[0]["reason"]
    text = history.encoded(entries)
    assert len(text.encode()) <= history.MAX_BYTES
    kept = json.loads(text)
    assert 1 <= len(kept) < history.KEEP and kept[0]["id"] == entries[0]["id"]  # oldest dropped first


def test_the_switch_annotations_carry_state_history_and_clear_the_intent() -> None:
    new = {"id": "n", "to": "green"}
    written = history.switched_annotations(
        {history.HISTORY: json.dumps([{"id": "o"}]), history.SWITCHING_TO: "green"},
        new,
        active="green",
        previous="blue",
    )
    assert written[history.ACTIVE] == "green" and written[history.PREVIOUS] == "blue"
    assert written[history.SWITCHING_TO] is None
    assert [e["id"] for e in json.loads(written[history.HISTORY] or "[]")] == ["n", "o"]


def test_the_history_lags_when_an_intent_is_left_or_the_recorded_colour_differs() -> None:
    assert history.lags({history.ACTIVE: "green"}, "green") == ""
    assert "history says blue" in history.lags({history.ACTIVE: "blue"}, "green")
    assert "write landed" in history.lags({history.ACTIVE: "blue", history.SWITCHING_TO: "green"}, "green")
    assert "did not land" in history.lags({history.ACTIVE: "blue", history.SWITCHING_TO: "green"}, "blue")


def test_damaged_stamps_read_as_absent() -> None:
    assert intent.stamp({intent.GATE: "{not json"}, intent.GATE) is None
    assert intent.stamp({intent.GATE: '{"result": "passed"}'}, intent.GATE) is None
