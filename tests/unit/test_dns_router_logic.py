"""The dns router's pure parts: what external-dns would publish for the colour Services, and the order
of the writes that move it, each intermediate state replayed the way external-dns reads it."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen import dnsquery
from bluegreen.errors import NotAdoptedError
from bluegreen.model import AppSpec, Color
from bluegreen.routers import dns

APP = AppSpec(name="shop", namespace="prod")
BLUE_IP, GREEN_IP = "192.0.2.1", "192.0.2.2"
NAME = "shop.example.test"


def lb(
    ip: str | None, annotations: dict[str, str] | None = None, *, kind: str = "LoadBalancer"
) -> dict[str, Any]:
    return {
        "metadata": {"name": "x", "resourceVersion": "1", "annotations": dict(annotations or {})},
        "spec": {"type": kind},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}] if ip else []}},
    }


def applied(service: dict[str, Any], changes: dict[str, str | None]) -> dict[str, Any]:
    """The Service after a merge patch of these annotations (None deletes), as the apiserver stores it."""
    annotations = dict(service["metadata"]["annotations"])
    for key, value in changes.items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    return {**service, "metadata": {**service["metadata"], "annotations": annotations}}


def replay(services: dict[Color, dict[str, Any]], to: Color) -> list[tuple[tuple[str, ...], str | None]]:
    """The record (addresses, TTL) before and after each planned write."""
    states = [(dns.record(services), dns.ttl_of(services))]
    for color, changes in dns.plan(services, to):
        services = {**services, color: applied(services[color], changes)}
        states.append((dns.record(services), dns.ttl_of(services)))
    assert dns.plan(services, to) == [], "a second plan after the writes must have nothing left to do"
    assert dns.active_of(services) is to
    return states


def test_every_intermediate_record_serves_one_colour_the_old_until_one_write_flips_it() -> None:
    services = {Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME, dns.TTL: "5"}), Color.GREEN: lb(GREEN_IP)}
    assert dns.active_of(services) is Color.BLUE
    states = replay(services, Color.GREEN)
    records = [addresses for addresses, _ in states]
    assert records == [(BLUE_IP,), (BLUE_IP,), (BLUE_IP,), (GREEN_IP,)]  # never both, never none
    assert len(dns.plan(services, Color.GREEN)) == 3


def test_the_live_ttl_travels_and_a_stale_one_on_the_target_does_not_win() -> None:
    services = {
        Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME, dns.TTL: "5"}),
        Color.GREEN: lb(GREEN_IP, {dns.TTL: "30"}),  # left by an earlier switch
    }
    assert {ttl for _, ttl in replay(services, Color.GREEN)} == {"5"}
    no_ttl = {Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME}), Color.GREEN: lb(GREEN_IP, {dns.TTL: "30"})}
    assert {ttl for _, ttl in replay(no_ttl, Color.GREEN)} == {None}  # the provider's default, as before


def test_an_interrupted_move_reads_as_the_old_colour_and_a_rerun_finishes_it() -> None:
    services = {Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME}), Color.GREEN: lb(GREEN_IP)}
    first, second, _ = dns.plan(services, Color.GREEN)
    for made in ([first], [first, second]):
        state = dict(services)
        for color, changes in made:
            state[color] = applied(state[color], changes)
        assert dns.active_of(state) is Color.BLUE, dns.detail_of(APP, state)
        assert [r for r, _ in replay(state, Color.GREEN)][-1] == (GREEN_IP,)
        assert {r for r, _ in replay(state, Color.GREEN)} <= {(BLUE_IP,), (GREEN_IP,)}
        # ... or goes back, again through states that serve one colour only
        assert {r for r, _ in replay(state, Color.BLUE)} == {(BLUE_IP,)}


def test_undoing_the_writes_in_reverse_restores_each_service_as_it_was() -> None:
    services = {Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME, dns.TTL: "5"}), Color.GREEN: lb(GREEN_IP)}
    state, undo = dict(services), []
    for color, changes in dns.plan(services, Color.GREEN)[:2]:
        undo.append((color, dns.undo_of(state[color], changes)))
        state[color] = applied(state[color], changes)
    for color, changes in reversed(undo):
        state[color] = applied(state[color], changes)
        assert dns.record(state) == (BLUE_IP,)
    assert {c: s["metadata"]["annotations"] for c, s in state.items()} == {
        c: s["metadata"]["annotations"] for c, s in services.items()
    }


def test_both_colours_publishing_is_a_split_that_no_switch_guesses() -> None:
    both = {Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME}), Color.GREEN: lb(GREEN_IP, {dns.HOSTNAME: NAME})}
    assert dns.active_of(both) is None
    assert "both colours: a split" in dns.detail_of(APP, both)
    # Settled with --to: the other colour's address leaves in one write; the target's stays.
    assert replay(both, Color.GREEN)[-1][0] == (GREEN_IP,)


def test_a_record_with_no_address_or_a_foreign_one_is_no_colour() -> None:
    clusterip = {Color.BLUE: lb(None, {dns.HOSTNAME: NAME}, kind="ClusterIP"), Color.GREEN: lb(GREEN_IP)}
    assert dns.active_of(clusterip) is None
    assert "no address" in dns.detail_of(APP, clusterip)
    pinned = {
        Color.BLUE: lb(BLUE_IP, {dns.HOSTNAME: NAME, dns.TARGET: "198.51.100.7"}),
        Color.GREEN: lb(GREEN_IP),
    }
    assert dns.active_of(pinned) is None and "neither colour" in dns.detail_of(APP, pinned)
    with pytest.raises(NotAdoptedError):
        dns.plan({Color.BLUE: lb(BLUE_IP), Color.GREEN: lb(GREEN_IP)}, Color.GREEN)


def test_what_external_dns_cannot_publish_is_named_with_what_to_create() -> None:
    assert dns.unpublishable(APP, {Color.GREEN: lb(GREEN_IP)}, Color.GREEN) is None
    assert "does not exist" in (dns.unpublishable(APP, {Color.GREEN: {"metadata": {}}}, Color.GREEN) or "")
    cluster_ip = dns.unpublishable(APP, {Color.GREEN: lb(None, kind="ClusterIP")}, Color.GREEN) or ""
    assert "type ClusterIP" in cluster_ip
    assert "no load-balancer address" in (dns.unpublishable(APP, {Color.GREEN: lb(None)}, Color.GREEN) or "")
    assert "type LoadBalancer" in dns.create_remedy(APP, Color.GREEN)
    external = lb(None)
    external["spec"]["externalIPs"] = ["203.0.113.9"]
    assert dns.own_addresses(external) == ("203.0.113.9",)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10.0.0.53", ("10.0.0.53", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("ns1.example.test:53", ("ns1.example.test", 53)),
    ],
)
def test_dns_server_option(text: str, parsed: tuple[str, int]) -> None:
    assert dnsquery.server(text) == parsed


@pytest.mark.parametrize("text", ["", "127.0.0.1:0", "127.0.0.1:70000", "a b:53", "http://ns:53", "[::1"])
def test_dns_server_option_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST or HOST:PORT"):
        dnsquery.server(text)


def test_query_types_follow_the_addresses() -> None:
    assert dnsquery.types_for(["192.0.2.1"]) == ["A"]
    assert dnsquery.types_for(["2001:db8::1"]) == ["AAAA"]
    assert dnsquery.types_for(["lb.example.net"]) == ["CNAME"]
