"""The dns router through its real data plane: external-dns (RFC 2136, TSIG) publishing the colour
Services into BIND 9, and the authoritative answer sampled while bluegreen switches.

A sampler asks BIND every 10 ms (bounded by a deadline) for the app's name. Across a switch and a
rollback the answers must go blue -> green -> blue: the new address only, never empty, never both.
The measured delays are printed (pytest -s), never asserted: they belong to bench/ and docs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from lightkube import Client

from bluegreen.cli import execute
from bluegreen.dnsquery import QueryError
from bluegreen.model import AppSpec, Color, NullReporter
from bluegreen.options import Target, Writes, context
from bluegreen.phases import switch
from bluegreen.routers.dns import HOSTNAME, TTL
from hack.localcluster import LocalCluster
from tests.support.admission import refusing, wait_refusing
from tests.support.dnsrig import ZONE, Bind, ExternalDns, color_lb

BLUE_IP, GREEN_IP = "127.0.20.1", "127.0.20.2"
SAMPLE_EVERY = 0.01
SAMPLE_FOR_AT_MOST = 300.0  # seconds: the sampler's bound, whatever the test does


class Sampler:
    """The authoritative answers over time: (monotonic time, answer text, TTL)."""

    def __init__(self, bind: Bind, name: str) -> None:
        self.bind, self.name = bind, name
        self.samples: list[tuple[float, str, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + SAMPLE_FOR_AT_MOST
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                answer = self.bind.answer(self.name, [BLUE_IP])
                self.samples.append((time.monotonic(), answer.text, answer.ttl))
            except QueryError as error:
                self.samples.append((time.monotonic(), f"error: {error}", None))
            time.sleep(SAMPLE_EVERY)

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=10)

    def changes(self) -> list[str]:
        """The distinct answers in order (repeats folded)."""
        out: list[str] = []
        for _, text, _ in self.samples:
            if not out or out[-1] != text:
                out.append(text)
        return out

    def first(self, text: str, after: float) -> float | None:
        return next((t for t, got, _ in self.samples if t >= after and got == text), None)


def hostname(namespace: str) -> str:
    return f"{namespace}.{ZONE}"


def wait_answer(bind: Bind, name: str, want: str, external_dns: ExternalDns, timeout: float = 60) -> float:
    """Seconds until BIND answers `want` (bounded)."""
    start = time.monotonic()
    while True:
        answer = bind.answer(name, [BLUE_IP])
        if answer.text == want:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(
                f"BIND answers {answer.text}, not {want}; external-dns:\n{external_dns.log()[-3000:]}"
            )
        time.sleep(0.05)


def cli(cluster: LocalCluster, namespace: str, bind: Bind, *args: str) -> Any:
    common = ["--router", "dns", "--dns-server", bind.server, "--app", "shop", "-n", namespace]
    return execute([*args, *common, "--kubeconfig", str(cluster.kubeconfig), "-o", "json"])


@pytest.mark.parametrize("external_dns", ["fast", "defaults"], indirect=True)
def test_switch_and_rollback_move_the_authoritative_answer_to_the_new_address_only(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec, bind: Bind, external_dns: ExternalDns
) -> None:
    name = hostname(namespace)
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: name, TTL: "5"})
    color_lb(kube, namespace, "green", GREEN_IP, {TTL: "30"})  # stale, from an earlier switch
    published = wait_answer(bind, name, BLUE_IP, external_dns)
    measured: list[str] = [f"first publication {published:.1f} s after the colour Services were made"]

    with Sampler(bind, name).running() as sampler:
        for command, to in (("switch", Color.GREEN), ("rollback", Color.BLUE)):
            sent = time.monotonic()
            outcome = cli(
                cluster, namespace, bind, command, *(["--to", "green"] if command == "switch" else [])
            )
            assert outcome.exit_code == 0, (outcome.error, outcome.result, external_dns.log()[-3000:])
            plane = outcome.result.details["data_plane"]
            assert plane["checked"] is True and plane["data_plane_ms"] is not None, plane
            want = GREEN_IP if to is Color.GREEN else BLUE_IP
            seen = sampler.first(want, sent)
            assert seen is not None, sampler.changes()  # verified means the server answered it
            measured.append(
                f"{command}: write {outcome.result.api_ms:.0f} ms; control plane {plane['control_plane_ms']:.0f} ms; "
                f"authoritative answer {plane['data_plane_ms']:.0f} ms (sampler: {1000 * (seen - sent):.0f} ms "
                f"after the command started); served TTL {plane.get('ttl')} s"
            )
    assert sampler.changes() == [BLUE_IP, GREEN_IP, BLUE_IP], sampler.changes()  # never empty, never both
    assert {ttl for _, text, ttl in sampler.samples if text == GREEN_IP} == {5}  # the live TTL travelled
    config = " ".join(a for a in external_dns.args if "interval" in a or a == "--events")
    print(
        "\n".join(["", f"dns data plane, external-dns {config} ({len(sampler.samples)} samples):", *measured])
    )


def test_external_dns_stopped_is_not_verified_and_says_why(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec, bind: Bind, external_dns: ExternalDns
) -> None:
    name = hostname(namespace)
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: name})
    color_lb(kube, namespace, "green", GREEN_IP)
    wait_answer(bind, name, BLUE_IP, external_dns)
    external_dns.stop()
    target = Target(
        app="shop",
        namespace=namespace,
        kubeconfig=str(cluster.kubeconfig),
        router="dns",
        dns_server=bind.server,
    )
    ctx = context(target, Writes(), NullReporter())
    with Sampler(bind, name).running() as sampler:
        result = switch.run(ctx, to=Color.GREEN, verify_timeout=8)
    assert result.result == "failed", result.messages
    assert result.details["data_plane"]["data_plane_ms"] is None
    assert any("still answers" in m and "is external-dns running" in m for m in result.messages), (
        result.messages
    )
    assert sampler.changes() == [BLUE_IP]  # DNS never moved, and the report does not say it did


def test_no_address_is_refused_and_dns_keeps_serving_the_live_colour(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec, bind: Bind, external_dns: ExternalDns
) -> None:
    name = hostname(namespace)
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: name})
    color_lb(kube, namespace, "green", None)
    wait_answer(bind, name, BLUE_IP, external_dns)
    with Sampler(bind, name).running() as sampler:
        outcome = cli(cluster, namespace, bind, "switch", "--to", "green")
        time.sleep(3)  # external-dns syncs every second: anything it would publish, it has
    assert outcome.exit_code == 1 and "no load-balancer address" in outcome.error.message
    assert sampler.changes() == [BLUE_IP]


def test_a_refused_second_write_is_undone_and_dns_never_serves_both(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec, bind: Bind, external_dns: ExternalDns
) -> None:
    name = hostname(namespace)
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: name})
    color_lb(kube, namespace, "green", GREEN_IP)
    wait_answer(bind, name, BLUE_IP, external_dns)
    loses_hostname = (
        f"'{HOSTNAME}' in oldObject.metadata.annotations && "
        f"!(has(object.metadata.annotations) && '{HOSTNAME}' in object.metadata.annotations)"
    )
    with Sampler(bind, name).running() as sampler:
        with refusing(kube, namespace, "shop-blue", loses_hostname, f"refuse-{namespace}"):
            wait_refusing(kube, namespace, "shop-blue")
            refused = cli(cluster, namespace, bind, "switch", "--to", "green")
            time.sleep(3)
        assert refused.exit_code == 1, refused.error
        assert "stopped at write 2 of 3" in refused.error.message and "undone" in refused.error.message
        again = cli(cluster, namespace, bind, "switch", "--to", "green")
        assert again.exit_code == 0, again.error
    assert sampler.changes() == [BLUE_IP, GREEN_IP], sampler.changes()


def test_a_split_is_seen_in_dns_refused_without_to_and_settled_with_it(
    kube: Client, cluster: LocalCluster, namespace: str, app: AppSpec, bind: Bind, external_dns: ExternalDns
) -> None:
    name = hostname(namespace)
    color_lb(kube, namespace, "blue", BLUE_IP, {HOSTNAME: name})
    color_lb(kube, namespace, "green", GREEN_IP, {HOSTNAME: name})
    wait_answer(bind, name, f"{BLUE_IP}, {GREEN_IP}", external_dns)  # what the router calls a split
    refused = cli(cluster, namespace, bind, "switch")
    assert refused.exit_code == 1 and "a split" in refused.error.message
    settled = cli(cluster, namespace, bind, "switch", "--to", "green")
    assert settled.exit_code == 0, settled.error
    assert bind.answer(name, [GREEN_IP]).text == GREEN_IP
