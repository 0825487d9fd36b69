"""Group decisions and the `groups` section of bluegreen.yaml, without a cluster."""

from __future__ import annotations

import pytest
import yaml

from bluegreen.errors import ConfigError, RefusedError
from bluegreen.group import (
    Group,
    GroupResult,
    Member,
    MemberOutcome,
    decide_target,
    find,
    parse_groups,
    skew_ms,
)
from bluegreen.model import Color


def test_all_on_one_colour_move_to_the_other() -> None:
    assert decide_target("switch", {"a": Color.BLUE, "b": Color.BLUE}) is Color.GREEN
    assert decide_target("rollback", {"a": Color.GREEN, "b": Color.GREEN}) is Color.BLUE


def test_split_group_is_refused_naming_each_member_unless_told() -> None:
    with pytest.raises(RefusedError, match=r"ns/a on blue, ns/b on green") as caught:
        decide_target("switch", {"ns/a": Color.BLUE, "ns/b": Color.GREEN})
    assert "--to" in caught.value.remedy
    with pytest.raises(RefusedError, match="no single colour"):
        decide_target("rollback", {"ns/a": None})
    assert decide_target("switch", {"ns/a": Color.BLUE, "ns/b": Color.GREEN}, Color.GREEN) is Color.GREEN


def test_skew_is_first_to_last_write() -> None:
    assert skew_ms([10.0, 10.2, 10.05]) == pytest.approx(200)
    assert skew_ms([5.0]) == 0.0


def test_parse_groups_with_defaults_and_short_members() -> None:
    raw = yaml.safe_load(
        """
        - name: storefront
          namespace: shop
          members:
            - cart
            - {app: web, router: gateway, object: web-route, namespace: edge}
        """
    )
    groups, problems = parse_groups(raw, default_namespace="default")
    assert problems == []
    assert groups == (
        Group(
            name="storefront",
            members=(
                Member(app="cart", namespace="shop", router=""),  # not named: the recorded one, else service
                Member(app="web", namespace="edge", router="gateway", object="web-route"),
            ),
        ),
    )
    assert find(groups, "storefront") is groups[0]
    with pytest.raises(ConfigError, match="storefront"):
        find(groups, "checkout")


def test_parse_groups_reports_every_problem() -> None:
    raw = yaml.safe_load(
        """
        - name: a
          members: [{app: x, router: nginx}, {app: x}, {router: gateway}]
          colour: blue
        - name: a
          members: []
        """
    )
    _, problems = parse_groups(raw, default_namespace="ns")
    text = "\n".join(f"{where}: {what}" for _, where, what in problems)
    assert "groups[0].members[0].router: unknown router 'nginx'" in text
    assert "groups[0].members[1]: ns/x is already a member" in text
    assert "groups[0].members[2].app: required" in text
    assert "groups[0].colour: unknown key" in text
    assert "groups[1].name: duplicate group 'a'" in text
    assert "groups[1].members: required" in text


def test_report_names_what_failed_and_what_moved_back() -> None:
    a, b = Member(app="a", namespace="ns"), Member(app="b", namespace="ns", router="gateway")
    result = GroupResult(
        group="g",
        action="switch",
        target=Color.GREEN,
        members=[
            MemberOutcome(
                member=a, before=Color.BLUE, target=Color.GREEN, changed=True, verified=True, moved_back=True
            ),
            MemberOutcome(
                member=b,
                before=Color.BLUE,
                target=Color.GREEN,
                changed=True,
                verified=False,
                message="HTTPRoute ns/b: Accepted=False",
            ),
        ],
        failed=["ns/b"],
        moved_back=["ns/a"],
    )
    text = result.text()
    assert "FAILED (ns/b)" in text and "moved back: ns/a" in text and "Accepted=False" in text
    assert result.as_dict()["members"][1]["verified"] is False


def test_bluegreen_yaml_groups_section_with_lines() -> None:
    from bluegreen import config

    parsed = config.parse(
        "namespace: shop\ngroups:\n  - name: g\n    members: [cart, {app: web, router: istio}]\n"
    )
    assert parsed.groups[0].members[1] == Member(app="web", namespace="shop", router="istio")
    with pytest.raises(
        ConfigError, match=r"bluegreen.yaml:5: groups\[0\]\.members\[0\]\.router: unknown router 'nginx'"
    ):
        config.parse(
            "namespace: shop\ngroups:\n  - name: g\n    members:\n      - {app: cart, router: nginx}\n"
        )


def test_a_group_switch_without_to_follows_every_members_newest_candidate() -> None:
    from bluegreen.group import decide_intended
    from bluegreen.intent import Release

    def member(live: Color, candidate_on: Color | None) -> tuple[Color | None, dict[Color, Release]]:
        releases = {
            c: Release(
                color=c, hash=f"{c}-h", candidate={"hash": f"{c}-h", "seq": 2} if c is candidate_on else None
            )
            for c in Color
        }
        return live, releases

    # Both deployed to green: green; one already promoted (live on its candidate) still agrees.
    assert (
        decide_intended({"a": member(Color.BLUE, Color.GREEN), "b": member(Color.GREEN, Color.GREEN)})
        is Color.GREEN
    )
    # A re-run: every candidate live: the same colour, so nothing moves.
    assert (
        decide_intended({"a": member(Color.GREEN, Color.GREEN), "b": member(Color.GREEN, Color.GREEN)})
        is Color.GREEN
    )
    with pytest.raises(RefusedError, match="not on one colour"):
        decide_intended({"a": member(Color.BLUE, Color.GREEN), "b": member(Color.GREEN, Color.BLUE)})
    with pytest.raises(RefusedError, match="b: no candidate is recorded"):
        decide_intended({"a": member(Color.BLUE, Color.GREEN), "b": member(Color.BLUE, None)})
