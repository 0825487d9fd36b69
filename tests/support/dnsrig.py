"""The dns router's real data plane: BIND 9 (Debian's `named`, hack/install-bind.sh) as the zone's
authoritative server on a loopback port, and external-dns (hack/build-external-dns.sh) publishing the
colour Services into it over RFC 2136 with a TSIG key.

Everything lives in a temporary directory the caller owns (config, zone, journal, logs) and runs as
the current user: no system service, no port below 1024, no file outside that directory. Each process
is started here and stopped here, by its own pid.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lightkube import Client
from lightkube.models.core_v1 import ServicePort, ServiceSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType

from bluegreen.dnsquery import Answer, QueryError, query
from tests.support.apps import COLOR_LABEL, NAME_LABEL
from tests.support.toxiproxy import ROOT, free_port

ZONE = "example.test"
KEY = "bluegreen-test"
ALGORITHM = "hmac-sha256"


def named_binary() -> str | None:
    return shutil.which("named") or ("/usr/sbin/named" if os.access("/usr/sbin/named", os.X_OK) else None)


def external_dns_binary() -> Path | None:
    """The cached external-dns, or None when it was never built (`make deps` builds it: ~7 min cold)."""
    script = (ROOT / "hack" / "build-external-dns.sh").read_text()
    found = re.search(r"^EXTERNAL_DNS_VERSION=(\S+)$", script, re.MULTILINE)
    assert found, "hack/build-external-dns.sh names no EXTERNAL_DNS_VERSION"
    cache = os.environ.get("BLUEGREEN_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bluegreen"
    )
    path = Path(cache) / f"external-dns-{found.group(1)}" / "external-dns"
    return path if os.access(path, os.X_OK) else None


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


class Bind:
    """One `named` serving zone example.test on 127.0.0.1:<port>, updatable with the TSIG key."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 20) -> Bind:
        binary = named_binary()
        assert binary, "named is not installed (hack/install-bind.sh)"
        d = self.dir
        (d / f"{ZONE}.zone").write_text(
            f"$TTL 60\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 60 60 600 5\n@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n"
        )
        (d / "named.conf").write_text(
            f"""options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  managed-keys-directory "{d}";
  listen-on port {self.port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
}};
controls {{ }};
key "{KEY}" {{ algorithm {ALGORITHM}; secret "{self.secret}"; }};
zone "{ZONE}" {{
  type primary;
  file "{d}/{ZONE}.zone";
  allow-update {{ key "{KEY}"; }};
  allow-transfer {{ key "{KEY}"; }};
}};
"""
        )
        log = (d / "named.log").open("wb")
        # -g: foreground, logging to stderr; -4: IPv4 only; no -u: it stays the user that started it.
        self.process = subprocess.Popen(
            [binary, "-g", "-4", "-c", str(d / "named.conf")], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                query("127.0.0.1", self.port, f"ns.{ZONE}", ["127.0.0.1"])
                return self
            except QueryError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"named did not start: {self.log()[-2000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        path = self.dir / "named.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def answer(self, name: str, expected: list[str] | tuple[str, ...] = ("127.0.0.1",)) -> Answer:
        return query("127.0.0.1", self.port, name, expected)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


class ExternalDns:
    """external-dns watching one namespace's Services and writing example.test in `bind` over RFC 2136."""

    def __init__(
        self, binary: Path, kubeconfig: Path, namespace: str, bind: Bind, workdir: Path, *, fast: bool = True
    ) -> None:
        self.args = [
            str(binary),
            "--source=service",
            "--provider=rfc2136",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={namespace}",
            f"--domain-filter={ZONE}",
            "--registry=txt",
            f"--txt-owner-id={namespace}",
            "--policy=sync",
            "--events",
            # fast: the quickest it goes, a sync on every Service event at most one a second, and one
            # a second anyway; else its defaults with --events: 5 s between event syncs, 1 min interval.
            *(["--min-event-sync-interval=1s", "--interval=1s"] if fast else []),
            "--rfc2136-host=127.0.0.1",
            f"--rfc2136-port={bind.port}",
            f"--rfc2136-zone={ZONE}",
            f"--rfc2136-tsig-keyname={KEY}",
            f"--rfc2136-tsig-secret={bind.secret}",
            f"--rfc2136-tsig-secret-alg={ALGORITHM}",
            "--rfc2136-tsig-axfr",
            f"--metrics-address=127.0.0.1:{free_port()}",
            "--log-level=debug",
        ]
        self.logfile = workdir / f"external-dns-{namespace}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ExternalDns:
        log = self.logfile.open("ab")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


def color_lb(
    kube: Client,
    namespace: str,
    color: str,
    address: str | None,
    annotations: dict[str, str] | None = None,
    *,
    app: str = "shop",
    kind: str = "LoadBalancer",
) -> None:
    """`<app>-<color>` selecting that colour's pods, as the user makes it for the dns router: of type
    LoadBalancer, its address set the way a load-balancer controller sets it (the status)."""
    service = Service(
        metadata=ObjectMeta(name=f"{app}-{color}", labels={NAME_LABEL: app}, annotations=annotations or {}),
        spec=ServiceSpec(
            type=kind,
            selector={NAME_LABEL: app, COLOR_LABEL: color},
            ports=[ServicePort(name="http", port=80, targetPort=8080)],
        ),
    )
    kube.create(service, namespace=namespace)
    if address and kind == "LoadBalancer":
        set_address(kube, namespace, f"{app}-{color}", address)


def set_address(kube: Client, namespace: str, name: str, address: str) -> None:
    status = {"status": {"loadBalancer": {"ingress": [{"ip": address}]}}}
    kube.patch(Service.Status, name, status, namespace=namespace, patch_type=PatchType.MERGE)
