#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, for the demo and the integration tests.

etcd, kube-apiserver (RBAC, default admission plugins), kube-controller-manager and kube-scheduler run
as they would in a cluster; kwok stands in for the kubelets, so Deployments really roll out: the
controllers create ReplicaSets and Pods, the scheduler binds them to kwok's nodes, kwok marks them
Running and Ready with pod IPs, and the EndpointSlice controller lists them. Nothing routes to those
pod IPs: they are data, and every connection stays on 127.0.0.1.

    python3 hack/localcluster.py up [--dir .cluster]     # prints the kubeconfig path
    python3 hack/localcluster.py down [--dir .cluster]

Standard library only, so it runs before any virtualenv exists. Each cluster takes free ports, so
several can run at once (one per test session).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HACK = Path(__file__).resolve().parent
STAGES = HACK / "kwok-stages.yaml"
NODE_COUNT = 2
# The ranges Kubernetes allocates from; addresses in them are never connected to.
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.1/16"
NODE_IP = "10.240.0.1"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(Exception):
    """The local cluster could not be started; the message says which part and where its log is."""


@dataclass(frozen=True)
class LocalCluster:
    dir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def server(self) -> str:
        return str(json.loads(self.state_file.read_text())["server"])

    def running(self) -> bool:
        if not self.state_file.exists():
            return False
        pids = json.loads(self.state_file.read_text())["pids"]
        return all(_alive(pid) for pid in pids.values())

    # -- up ---------------------------------------------------------------------------------------

    def up(self, *, die_with_parent: bool = False, quiet: bool = False) -> LocalCluster:
        """Start every component and wait until nodes are Ready; a running cluster is reused."""
        if self.running():
            return self
        self.down()
        started = time.monotonic()
        bin_dir = build_binaries()
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "etcd"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
            (self.dir / sub).mkdir()
        pki = _make_pki(self.dir / "pki")
        # A kubectl of the cluster's own version sits beside the kubeconfig: .cluster/bin/kubectl.
        link = self.dir / "bin"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(bin_dir)
        ports = {name: _free_port() for name in ("etcd", "etcd-peer", "apiserver", "cm", "sched", "kwok")}
        server = f"https://127.0.0.1:{ports['apiserver']}"
        _write_kubeconfig(self.kubeconfig, server, pki)
        pids: dict[str, int] = {}
        self.state_file.write_text(json.dumps({"server": server, "pids": pids, "ports": ports}))

        def start(name: str, args: list[str]) -> None:
            pids[name] = _spawn(bin_dir / name, args, self.dir / "logs" / f"{name}.log", die_with_parent)
            self.state_file.write_text(json.dumps({"server": server, "pids": pids, "ports": ports}))

        try:
            etcd_url = f"http://127.0.0.1:{ports['etcd']}"
            peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
            start(
                "etcd",
                [
                    "--name=local",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=local={peer_url}",
                    # A throwaway test store: durability across power loss buys nothing here.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
            )
            start(
                "kube-apiserver",
                [
                    f"--etcd-servers={etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={ports['apiserver']}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={pki / 'ca.crt'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--authorization-mode=Node,RBAC",
                    # No kubelet or kube-proxy here: nothing would serve the kubernetes Service's endpoints.
                    "--endpoint-reconciler-type=none",
                    "--allow-privileged=true",
                    "--profiling=false",
                ],
            )
            _wait_ready(self, "kube-apiserver", f"{server}/readyz", pki, timeout=90)
            common = [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                "--leader-elect=false",
                "--profiling=false",
            ]
            start(
                "kube-controller-manager",
                [
                    *common,
                    f"--secure-port={ports['cm']}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    "--use-service-account-credentials=false",
                ],
            )
            start("kube-scheduler", [*common, f"--secure-port={ports['sched']}"])
            for index in range(NODE_COUNT):
                _create_node(server, pki, f"kwok-node-{index}")
            start(
                "kwok",
                [
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={STAGES}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    f"--cidr={POD_CIDR}",
                    f"--node-ip={NODE_IP}",
                    f"--server-address=127.0.0.1:{ports['kwok']}",
                    "--node-lease-duration-seconds=40",
                ],
            )
            self._wait_usable(pki, timeout=90)
        except BaseException:
            self.down()
            raise
        if not quiet:
            print(f"local cluster up in {time.monotonic() - started:.1f}s: {server}", file=sys.stderr)
        return self

    def _wait_usable(self, pki: Path, *, timeout: float) -> None:
        """Nodes Ready and the default ServiceAccount made: pods can now be created and scheduled."""
        deadline = time.monotonic() + timeout
        server = self.server
        while time.monotonic() < deadline:
            self._check_alive()
            nodes = _get_json(f"{server}/api/v1/nodes", pki)
            ready = [
                n
                for n in (nodes or {}).get("items", [])
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", [])
                )
            ]
            account = _get_json(f"{server}/api/v1/namespaces/default/serviceaccounts/default", pki)
            if len(ready) == NODE_COUNT and account:
                return
            time.sleep(0.25)
        raise ClusterError(f"nodes not Ready after {timeout:.0f}s; see the logs in {self.dir / 'logs'}")

    def _check_alive(self) -> None:
        pids = json.loads(self.state_file.read_text())["pids"]
        for name, pid in pids.items():
            if not _alive(pid):
                log = self.dir / "logs" / f"{name}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
                raise ClusterError(f"{name} exited during start-up; the end of {log}:\n{tail}")

    # -- down -------------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop every component this directory started and delete its data; safe to repeat."""
        if self.state_file.exists():
            pids = json.loads(self.state_file.read_text())["pids"]
            # Reverse start order: the clients first, etcd last, so nothing logs a lost store.
            for pid in reversed(list(pids.values())):
                _terminate(pid)
            self.state_file.unlink()
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)


# -- binaries -------------------------------------------------------------------------------------


def build_binaries() -> Path:
    """The cached bin directory, building it first if this machine has not yet."""
    out = subprocess.run(["bash", str(HACK / "build-k8s.sh")], check=False, stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise ClusterError("building the cluster's binaries failed: see the output above (hack/build-k8s.sh)")
    return Path(out.stdout.strip().splitlines()[-1])


# -- processes ------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _spawn(binary: Path, args: list[str], log: Path, die_with_parent: bool) -> int:
    def child_setup() -> None:
        if die_with_parent:
            # A test session that is killed must not leave a control plane behind.
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(binary), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=child_setup,
        )
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _terminate(pid: int, grace: float = 10.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- certificates and kubeconfig ------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _make_pki(pki: Path) -> Path:
    """A CA, the apiserver's serving certificate, an admin client certificate, a ServiceAccount key."""
    if (pki / "done").exists():
        return pki
    shutil.rmtree(pki, ignore_errors=True)
    pki.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(pki / "ca.key"),
        "-out",
        str(pki / "ca.crt"),
        "-subj",
        "/CN=bluegreen-local-ca",
    )
    signed = ["-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key")]
    _openssl(
        "req",
        "-x509",
        *ec,
        *signed,
        "-keyout",
        str(pki / "apiserver.key"),
        "-out",
        str(pki / "apiserver.crt"),
        "-subj",
        "/CN=kube-apiserver",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes.default.svc",
        "-addext",
        "extendedKeyUsage=serverAuth",
    )
    _openssl(
        "req",
        "-x509",
        *ec,
        *signed,
        "-keyout",
        str(pki / "admin.key"),
        "-out",
        str(pki / "admin.crt"),
        "-subj",
        "/O=system:masters/CN=bluegreen-admin",
        "-addext",
        "extendedKeyUsage=clientAuth",
    )
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
    _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for key in pki.glob("*.key"):
        key.chmod(0o600)
    (pki / "done").touch()
    return pki


def _write_kubeconfig(path: Path, server: str, pki: Path) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    # Certificates are embedded, so the file works when copied anywhere (into a container, say).
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "bluegreen-local",
        "clusters": [
            {
                "name": "bluegreen-local",
                "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": "bluegreen-admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [
            {
                "name": "bluegreen-local",
                "context": {"cluster": "bluegreen-local", "user": "bluegreen-admin", "namespace": "default"},
            }
        ],
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML: every client reads it
    path.chmod(0o600)


# -- talking to the apiserver before any client library is installed ------------------------------


def _ssl_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


def _request(method: str, url: str, pki: Path, body: Mapping[str, object] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - our own https URL
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=_ssl_context(pki), timeout=5) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def _get_json(url: str, pki: Path) -> dict[str, Any] | None:
    status, body = _request("GET", url, pki)
    return json.loads(body) if status == 200 else None


def _wait_ready(cluster: LocalCluster, name: str, url: str, pki: Path, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster._check_alive()
        if _request("GET", url, pki)[0] == 200:
            return
        time.sleep(0.2)
    raise ClusterError(f"{name} not ready after {timeout:.0f}s; see {cluster.dir / 'logs' / (name + '.log')}")


def _create_node(server: str, pki: Path, name: str) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }
    status, body = _request("POST", f"{server}/api/v1/nodes", pki, node)
    if status not in (201, 409):
        raise ClusterError(f"creating node {name} failed: HTTP {status} {body[:300]!r}")


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--dir", type=Path, default=Path(".cluster"), help="state, logs and kubeconfig (default .cluster)"
    )
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.dir.resolve())
    try:
        if args.command == "up":
            cluster.up()
            print(cluster.kubeconfig)
        elif args.command == "down":
            cluster.down()
        else:
            print(f"running: {cluster.server}" if cluster.running() else "not running")
            return 0 if cluster.running() else 1
    except ClusterError as error:
        print(f"localcluster: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
