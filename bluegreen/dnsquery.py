"""One question to one DNS server, over UDP: what the dns router's verification asks the zone's
authoritative server (`--dns-server HOST[:PORT]`). dnspython builds and parses the messages; the
option's parsing needs none of it."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

TIMEOUT = 1.0  # seconds per query: a loopback or regional authoritative server answers in ms


class QueryError(Exception):
    """The server did not answer, or answered with an error other than NXDOMAIN."""


@dataclass(frozen=True)
class Answer:
    addresses: tuple[str, ...]  # sorted; empty for NXDOMAIN or no record of the type
    ttl: int | None
    text: str  # for messages: "127.0.20.1" or "NXDOMAIN"


def server(text: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); port 53 when omitted. ValueError if not."""
    match = re.fullmatch(
        r"\[([0-9A-Fa-f:.]+)\](?::([0-9]{1,5}))?|([^\s:\[\]]+)(?::([0-9]{1,5}))?", text.strip()
    )
    host = match and (match.group(1) or match.group(3))
    port = int((match and (match.group(2) or match.group(4))) or 53) if match else 0
    if not host or not 0 < port < 65536 or not (_is_ip(host) or re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host)):
        raise ValueError(f"{text!r} is not a DNS server: write HOST or HOST:PORT (e.g. 10.0.0.53:53)")
    return host, port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def types_for(addresses: Iterable[str]) -> list[str]:
    """The record types that carry these addresses: A, AAAA, or CNAME for a load balancer's hostname."""
    found: set[str] = set()
    for address in addresses:
        if _is_ip(address):
            found.add("A" if ipaddress.ip_address(address).version == 4 else "AAAA")
        else:
            found.add("CNAME")
    return sorted(found) or ["A"]


def query(host: str, port: int, name: str, expected: Iterable[str]) -> Answer:
    """The records of `name` of the types that `expected` addresses need, as `host:port` answers now."""
    # Imported here: dnspython's query module pulls in an HTTP stack (DoH), which the option's
    # parsing (on every command line) must not pay for.
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    addresses: set[str] = set()
    ttls: list[int] = []
    nxdomain = False
    for rdtype in types_for(expected):
        request = dns.message.make_query(name, rdtype)
        try:
            reply = dns.query.udp(request, host, port=port, timeout=TIMEOUT)
        except (dns.exception.DNSException, OSError) as error:
            raise QueryError(f"no answer from {host}:{port} ({type(error).__name__}: {error})") from None
        code = reply.rcode()
        if code == dns.rcode.NXDOMAIN:
            nxdomain = True
            continue
        if code != dns.rcode.NOERROR:
            raise QueryError(f"{host}:{port} answered {dns.rcode.to_text(code)}")
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.from_text(rdtype):
                ttls.append(rrset.ttl)
                addresses.update(item.to_text().rstrip(".") for item in rrset)
    ordered = tuple(sorted(addresses))
    text = ", ".join(ordered) or ("NXDOMAIN" if nxdomain else "no record")
    return Answer(addresses=ordered, ttl=min(ttls) if ttls else None, text=text)
