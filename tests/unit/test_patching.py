"""Keeping the rollback target patched (pure): what may be patched, what changes, what is recorded."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen import history, intent, patching
from bluegreen.errors import NotFoundError, RefusedError, UsageError
from bluegreen.github import summary
from bluegreen.model import Color, Result

BLUE, GREEN = Color.BLUE, Color.GREEN
LABEL = "bluegreen.io/color"


def dep(color: str, images: dict[str, str], *, seq: int = 0, rejected: bool = False) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": "shop", LABEL: color}},
        "spec": {"containers": [{"name": n, "image": i} for n, i in images.items()]},
    }
    annotations: dict[str, str] = {}
    hash_ = intent.template_hash(template, LABEL)
    if seq:
        annotations[intent.CANDIDATE] = intent.encode({"hash": hash_, "seq": seq, "run_id": "41"})
    if rejected:
        annotations[intent.REJECTED] = intent.encode({"hash": hash_, "time": "t"})
    return {"metadata": {"name": f"shop-{color}", "annotations": annotations}, "spec": {"template": template}}


def plan(live: Color, blue: dict[str, Any] | None, green: dict[str, Any] | None, **kw: Any) -> patching.Plan:
    kw.setdefault("image", None)
    kw.setdefault("set_images", {})
    return patching.plan(live, {BLUE: blue, GREEN: green}, color_label=LABEL, **kw)


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("shop", "shop"),
        ("shop:1.4", "shop"),
        ("ghcr.io/acme/shop:1.4", "ghcr.io/acme/shop"),
        ("registry.local:5000/shop", "registry.local:5000/shop"),
        ("registry.local:5000/shop:1.4@sha256:" + "a" * 64, "registry.local:5000/shop"),
    ],
)
def test_the_repository_is_the_image_without_tag_and_digest(image: str, repo: str) -> None:
    assert patching.repository(image) == repo


def test_the_previous_release_on_the_idle_colour_is_patched_images_only() -> None:
    found = plan(
        GREEN,
        dep("blue", {"app": "shop:1.0", "proxy": "envoy:1"}, seq=1),
        dep("green", {"app": "shop:2.0", "proxy": "envoy:1"}, seq=2),
        set_images={"proxy": "envoy:1-p1"},
    )
    assert found.color is BLUE
    assert found.changed == {"proxy": ("envoy:1", "envoy:1-p1")}
    assert [c["image"] for c in found.template["spec"]["containers"]] == ["shop:1.0", "envoy:1-p1"]
    assert found.release.seq == 1


def test_the_same_images_are_nothing_to_patch() -> None:
    found = plan(
        GREEN,
        dep("blue", {"app": "shop:1.0"}, seq=1),
        dep("green", {"app": "shop:2.0"}, seq=2),
        image="shop:1.0",
    )
    assert found.changed == {}


def test_an_app_never_deployed_by_bluegreen_can_be_patched() -> None:
    assert plan(
        BLUE, dep("blue", {"app": "shop:1"}), dep("green", {"app": "shop:1"}), image="shop:1-p1"
    ).changed


@pytest.mark.parametrize(
    ("blue", "error", "said"),
    [
        (None, NotFoundError, "no Deployment"),
        (dep("blue", {"app": "shop:3.0"}, seq=3), RefusedError, "never promoted"),
        (dep("blue", {"app": "shop:3.0"}, seq=3, rejected=True), RefusedError, "rolled back from"),
    ],
)
def test_an_idle_colour_that_is_no_rollback_target_is_refused(
    blue: dict[str, Any] | None, error: type[Exception], said: str
) -> None:
    with pytest.raises(error, match=said):
        plan(GREEN, blue, dep("green", {"app": "shop:2.0"}, seq=2), image="shop:3.0-p1")


def test_another_repository_is_another_release_and_unknown_containers_are_usage_errors() -> None:
    blue, green = dep("blue", {"app": "shop:1.0"}, seq=1), dep("green", {"app": "shop:2.0"}, seq=2)
    with pytest.raises(RefusedError, match="keeps each image's repository"):
        plan(GREEN, blue, green, image="other:1.0")
    with pytest.raises(UsageError, match="no container named web"):
        plan(GREEN, blue, green, set_images={"web": "shop:1.0-p1"})


def test_the_candidate_keeps_its_release_and_describes_the_patched_template() -> None:
    before = {"hash": "old", "sent": "old", "seq": 4, "run_id": "41", "images": ["shop:1.0"]}
    after = patching.patched_candidate(before, "new", ["shop:1.0-p1"])
    assert after == {"hash": "new", "sent": "new", "seq": 4, "run_id": "41", "images": ["shop:1.0-p1"]}


def test_last_patched_holds_only_while_the_colour_runs_the_patched_template() -> None:
    blue = dep("blue", {"app": "shop:1.0-p1"}, seq=1)
    hash_ = intent.template_hash(blue["spec"]["template"], LABEL)
    blue["metadata"]["annotations"][patching.PATCHED] = patching.encode({"hash": hash_, "time": "T"})
    assert (patching.last_patched(blue, LABEL) or {}).get("time") == "T"
    blue["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:3.0"  # a later deploy
    assert patching.last_patched(blue, LABEL) is None
    assert patching.last_patched(None, LABEL) is None


def test_a_patch_is_recorded_once_by_its_id() -> None:
    first = {"id": "a1", "action": "patch", "to": "blue"}
    text = history.with_patch({}, first)
    assert text is not None
    assert history.with_patch({history.PATCHES: text}, first) is None  # a re-run: not twice
    second = history.with_patch({history.PATCHES: text}, {"id": "b2", "action": "patch", "to": "blue"})
    assert [e["id"] for e in history.patches({history.PATCHES: second or ""})] == ["b2", "a1"]
    assert history.parse({history.PATCHES: second or ""}) == []  # not in the switch history


def test_the_job_summary_shows_the_patch_and_that_traffic_stayed() -> None:
    result = Result(phase="patch", result="patched", app="shop", namespace="shop", active_color="green")
    result.details["patch"] = {"color": "blue", "changed": {"app": {"from": "shop:1.0", "to": "shop:1.0-p1"}}}
    shown = summary.markdown(result, None, phase="patch", app="shop")
    assert "rollback target patched, traffic not moved" in shown
    assert "### Patch of blue (the rollback target)" in shown
    assert "it stays on green" in shown
    assert "| app | `shop:1.0` | `shop:1.0-p1` |" in shown


def test_the_status_summary_says_when_each_colour_was_last_patched() -> None:
    result = Result(phase="status", result="status", app="shop", namespace="shop")
    result.details["colors"] = {
        "blue": {"deployment": "shop-blue", "last_patched": "2026-12-02T04:00:00+00:00"},
        "green": {"deployment": "shop-green", "last_patched": None},
    }
    shown = summary.markdown(result, None, phase="status", app="shop")
    assert "| blue | 2026-12-02T04:00:00+00:00 |" in shown
    assert "| green | not since its deploy |" in shown


def test_the_releases_a_colour_ran_before_its_patches_hold_only_with_its_stamp() -> None:
    green = dep("green", {"app": "shop:2.0-p2"}, seq=1)
    hash_ = intent.template_hash(green["spec"]["template"], LABEL)
    stamp = {"hash": hash_, "released_as": ["h-2.0", "h-2.0-p1", 7]}
    green["metadata"]["annotations"][patching.PATCHED] = patching.encode(stamp)
    assert patching.released_as(green, LABEL) == ["h-2.0", "h-2.0-p1"]
    green["spec"]["template"]["spec"]["containers"][0]["image"] = "shop:3.0"  # replaced by a release
    assert patching.released_as(green, LABEL) == []
