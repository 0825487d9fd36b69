#!/usr/bin/env python3
"""A real data plane for the local cluster: requests to a Service's ClusterIP reach the pods' colour.

The local cluster's pod IPs are data: kwok writes them, nothing answers there. The rig makes them real
inside a network namespace of its own (root only):

- `ip netns add`, its `lo` up, and a veth pair with an address and a default route `via ... onlink`:
  locally sent packets need a route before kube-proxy's NAT applies to them;
- the whole control plane (hack/localcluster.py) started inside, so it binds the namespace's 127.0.0.1;
- kube-proxy in nftables mode, as on a node (`--hostname-override` one of kwok's nodes);
- one HTTP stand-in server per pod and container port, bound at `<podIP>:<port>` (each pod IP is added
  to the namespace's `lo`), answering with the pod's colour, name and release (its image). A watch on
  Pods keeps them in step with kwok: servers start as pods get an IP and stop as pods go, closing
  the connections they held, as a dying pod would. Keep-alive is honoured; `POST /drain` makes a pod
  end each connection after its next answer (`Connection: close`), as an app's drain hook would.

Everything runs in the namespace, so a client must too: `ip netns exec NAME ...` for a command,
`Rig.inside()` for the calling thread. Down kills every process in the namespace and deletes it, which
takes its addresses and nftables tables along: nothing is left on the host.

    python3 hack/traffic_rig.py up [--dir .rig]     # prints the namespace and the kubeconfig
    python3 hack/traffic_rig.py down [--dir .rig]
    sudo ip netns exec bluegreen-rig-... curl http://<ClusterIP>/

Standard library only, like hack/localcluster.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run as a script (python3 hack/traffic_rig.py): make `hack` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hack import namespaces

HACK = Path(__file__).resolve().parent
PREFIX = "bluegreen-rig-"
VETH = "bg0"
VETH_PEER = "bg1"
# An address for the veth: only routing needs it; no packet ever leaves through it.
VETH_ADDRESS = "10.250.0.2/24"
GATEWAY = "10.250.0.1"
POD_CIDR = "10.244.0.0/16"
KUBE_PROXY_NODE = "kwok-node-0"
HEALTHZ = "127.0.0.1:10256"  # fixed ports are fine: the namespace has a loopback of its own
METRICS = "127.0.0.1:10249"
COLOR_LABEL = "bluegreen.io/color"


class RigUnavailable(Exception):
    """This machine cannot run the rig (not root, no network namespaces, no kube-proxy): why."""


class RigError(Exception):
    """The rig could not be started; the message says which part and where its log is."""


def unavailable() -> str | None:
    """Why the rig cannot run here, or None when it can (cheap checks; `up` finds the rest)."""
    if sys.platform != "linux":
        return "the traffic rig needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the traffic rig needs root (ip netns add, addresses, nftables)"
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing: install Debian's {package} (make deps does, as root)"
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespaces (/proc/self/ns/net)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RigError(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


@dataclass(frozen=True)
class Rig:
    dir: Path
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            # The creating process's pid in the name: a rig whose creator died is found and removed.
            object.__setattr__(self, "name", f"{PREFIX}{os.getpid()}")

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "cluster" / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    def inside(self) -> contextlib.AbstractContextManager[None]:
        return namespaces.netns(self.name, RigError)

    def exec_args(self, *command: str) -> list[str]:
        """A command line that runs `command` inside the rig's namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    # -- up ---------------------------------------------------------------------------------------

    def up(self, *, kube_proxy_args: tuple[str, ...] = (), timeout: float = 120) -> Rig:
        """Namespace, cluster, kube-proxy and pod servers; on any failure everything is removed."""
        reason = unavailable()
        if reason:
            raise RigUnavailable(reason)
        remove_orphans()
        self.down()
        made = _ip("netns", "add", self.name, check=False)
        if made.returncode != 0:
            raise RigUnavailable(f"`ip netns add` failed here: {made.stderr.strip()}")
        try:
            self._start(kube_proxy_args, timeout)
        except BaseException:
            self.down()
            raise
        return self

    def _start(self, kube_proxy_args: tuple[str, ...], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ns = ["-n", self.name]
        _ip(*ns, "link", "set", "lo", "up")
        veth = _ip(*ns, "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER, check=False)
        if veth.returncode != 0:
            raise RigUnavailable(f"no veth pair in a network namespace here: {veth.stderr.strip()}")
        _ip(*ns, "addr", "add", VETH_ADDRESS, "dev", VETH)
        _ip(*ns, "link", "set", VETH, "up")
        _ip(*ns, "link", "set", VETH_PEER, "up")
        _ip(*ns, "route", "add", "default", "via", GATEWAY, "dev", VETH, "onlink")
        self.logs.mkdir(parents=True, exist_ok=True)

        cluster = subprocess.run(
            self.exec_args(
                sys.executable, str(HACK / "localcluster.py"), "up", "--dir", str(self.dir / "cluster")
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if cluster.returncode != 0:
            raise RigError(f"the cluster did not start in namespace {self.name}:\n{cluster.stderr.strip()}")
        bin_dir = Path(os.path.realpath(self.dir / "cluster" / "bin"))
        if not (bin_dir / "kube-proxy").exists():
            # build-k8s.sh builds it with the cluster's binaries: missing means a broken cache, not a machine limit
            raise RigError(f"no kube-proxy in {bin_dir}: run `bash hack/build-k8s.sh` (make deps)")

        proxy = self._spawn(
            "kube-proxy",
            [
                str(bin_dir / "kube-proxy"),
                f"--kubeconfig={self.kubeconfig}",
                "--proxy-mode=nftables",
                f"--hostname-override={KUBE_PROXY_NODE}",
                f"--cluster-cidr={POD_CIDR}",
                f"--metrics-bind-address={METRICS}",
                f"--healthz-bind-address={HEALTHZ}",
                # The conntrack sysctls are read-only in a container; 0 leaves them as they are.
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
                *kube_proxy_args,
            ],
        )
        pods = self._spawn(
            "pods", [sys.executable, str(Path(__file__).resolve()), "serve-pods", "--dir", str(self.dir)]
        )
        with self.inside():
            self._wait("kube-proxy", proxy, f"http://{HEALTHZ}/healthz", deadline)
            self._wait("pods", pods, None, deadline)

    def _spawn(self, name: str, command: list[str]) -> int:
        """Start `command` in the namespace: its pid (`ip netns exec` execs it, keeping the pid)."""
        with (self.logs / f"{name}.log").open("wb") as log:
            return subprocess.Popen(
                self.exec_args(*command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ).pid

    def _wait(self, name: str, pid: int, url: str | None, deadline: float) -> None:
        ready = self.dir / "pods.ready"
        while time.monotonic() < deadline:
            # By its pid, not by a look at the namespace's processes: on a busy machine a process just
            # started may not have entered the namespace yet (seen on CI as "exited during start-up").
            if not namespaces.alive(pid):
                raise RigError(f"{name} exited during start-up; the end of its log:\n{self._tail(name)}")
            if url is None and ready.exists():
                return
            if url is not None:
                with (
                    contextlib.suppress(OSError, urllib.error.URLError),
                    urllib.request.urlopen(url, timeout=1) as answer,  # noqa: S310 - loopback
                ):
                    if answer.status == 200:
                        return
            time.sleep(0.2)
        raise RigError(f"{name} not ready in time; the end of its log:\n{self._tail(name)}")

    def _tail(self, name: str) -> str:
        log = self.logs / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else "(no log)"

    # -- down -------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return namespaces.exists(self.name)

    def pids(self) -> list[int]:
        return namespaces.pids(self.name)

    def down(self) -> None:
        """Kill every process in the namespace, delete it and the cluster's data; safe to repeat."""
        namespaces.stop_processes(self.name)
        if self.exists():
            _ip("netns", "del", self.name, check=False)
        for path in (self.dir / "cluster" / "state.json", self.dir / "pods.ready"):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.dir / "cluster" / "etcd", ignore_errors=True)

    def __enter__(self) -> Rig:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def remove_orphans() -> list[str]:
    """Remove rigs whose creating process is gone (a test run that was killed): their names."""
    return namespaces.remove_orphans(PREFIX, lambda name: Rig(Path("/nonexistent"), name).down())


# -- the pods' stand-in servers (runs inside the namespace: `serve-pods`) --------------------------


@dataclass(frozen=True)
class PodIdentity:
    pod: str
    namespace: str
    color: str
    release: str


def serving(pod: dict[str, Any]) -> tuple[str, list[int], PodIdentity] | None:
    """Where a pod would answer (IP and container ports) and who it is; None while it has no IP."""
    status = pod.get("status") or {}
    ip = status.get("podIP")
    if not ip or status.get("phase") not in ("Pending", "Running"):
        return None
    containers = (pod.get("spec") or {}).get("containers") or []
    ports = sorted(
        {p["containerPort"] for c in containers for p in c.get("ports") or [] if "containerPort" in p}
    )
    meta = pod.get("metadata") or {}
    identity = PodIdentity(
        pod=meta.get("name", ""),
        namespace=meta.get("namespace", ""),
        color=(meta.get("labels") or {}).get(COLOR_LABEL, ""),
        release=",".join(c.get("image", "") for c in containers),
    )
    return ip, ports or [8080], identity


class PodServers:
    """One asyncio server per (pod IP, port), started and stopped to match the pods the watch sees."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.servers: dict[tuple[str, int], asyncio.Server] = {}
        self.who: dict[str, PodIdentity] = {}
        self.connections: dict[str, set[asyncio.StreamWriter]] = {}
        # Pods told to drain (POST /drain): every answer ends its connection, so keep-alive clients
        # reconnect and the Service sends them to the colour it selects now.
        self.draining: set[str] = set()

    async def sync(self, pods: list[dict[str, Any]]) -> None:
        wanted: dict[tuple[str, int], PodIdentity] = {}
        for pod in pods:
            found = serving(pod)
            if found:
                ip, ports, identity = found
                for port in ports:
                    wanted[(ip, port)] = identity
        for key in [k for k in self.servers if k not in wanted]:
            await self._stop(key)
        for key, identity in wanted.items():
            ip = key[0]
            if self.who.get(ip) not in (None, identity):
                # The IP went to another pod (kwok reuses them): the old pod's connections end with it.
                self._drop_connections(ip)
                self.draining.discard(ip)
            self.who[ip] = identity
            if key not in self.servers:
                await self._start(key)
        for ip in [ip for ip in self.who if ip not in {k[0] for k in wanted}]:
            del self.who[ip]
            self.draining.discard(ip)
            self._drop_connections(ip)
            _ip("addr", "del", f"{ip}/32", "dev", "lo", check=False)

    async def _start(self, key: tuple[str, int]) -> None:
        ip, port = key
        added = _ip("addr", "add", f"{ip}/32", "dev", "lo", check=False)
        if added.returncode != 0 and "exists" not in added.stderr:
            print(f"adding {ip} to lo: {added.stderr.strip()}", flush=True)
            return
        try:
            self.servers[key] = await asyncio.start_server(
                lambda r, w: self._handle(ip, r, w), ip, port, reuse_address=True
            )
        except OSError as error:
            print(f"serving {ip}:{port}: {error}", flush=True)
            return
        print(f"serving {ip}:{port} for {self.who[ip]}", flush=True)

    async def _stop(self, key: tuple[str, int]) -> None:
        server = self.servers.pop(key)
        server.close()
        print(f"stopped {key[0]}:{key[1]}", flush=True)

    def _drop_connections(self, ip: str) -> None:
        for writer in self.connections.pop(ip, set()):
            writer.close()

    async def _handle(self, ip: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.setdefault(ip, set()).add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, version = [*lines[0].split(" "), "", "", ""][:3]
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)
                }
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                who = self.who.get(ip)
                if who is None:
                    break
                if method == "POST" and path == "/drain":
                    self.draining.add(ip)
                body = (
                    json.dumps(
                        {
                            "color": who.color,
                            "pod": who.pod,
                            "release": who.release,
                            "draining": ip in self.draining,
                        }
                    ).encode()
                    + b"\n"
                )
                close = (
                    headers.get("connection", "").lower() == "close"
                    or version == "HTTP/1.0"
                    or ip in self.draining
                )
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"X-Color: {who.color}\r\nX-Pod: {who.pod}\r\nX-Release: {who.release}\r\n".encode()
                    + f"Content-Length: {len(body)}\r\n".encode()
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\n"
                    + body
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            self.connections.get(ip, set()).discard(writer)
            writer.close()


class PodWatch:
    """Lists and watches every Pod through the apiserver (stdlib HTTPS, the cluster's admin cert)."""

    def __init__(self, cluster_dir: Path) -> None:
        state = json.loads((cluster_dir / "state.json").read_text())
        self.server = str(state["server"])
        pki = cluster_dir / "pki"
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def _open(self, path: str, timeout: float) -> Any:
        return urllib.request.urlopen(f"{self.server}{path}", context=self.context, timeout=timeout)  # noqa: S310

    def run(self, publish: Callable[[list[dict[str, Any]]], None], stop: threading.Event) -> None:
        """Call publish(list of pods) after the first list and after every change, until stop."""
        while not stop.is_set():
            try:
                with self._open("/api/v1/pods", 10) as answer:
                    listed = json.load(answer)
                pods = {p["metadata"]["uid"]: p for p in listed["items"]}
                publish(list(pods.values()))
                version = listed["metadata"]["resourceVersion"]
                query = f"/api/v1/pods?watch=1&allowWatchBookmarks=false&resourceVersion={version}&timeoutSeconds=300"
                with self._open(query, 330) as stream:
                    for line in stream:
                        if stop.is_set():
                            return
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break  # e.g. 410 Gone: list again
                        obj = event["object"]
                        if event["type"] == "DELETED":
                            pods.pop(obj["metadata"]["uid"], None)
                        else:
                            pods[obj["metadata"]["uid"]] = obj
                        publish(list(pods.values()))
            except (OSError, urllib.error.URLError, ValueError, KeyError) as error:
                print(f"pod watch: {error}; listing again", flush=True)
                stop.wait(0.5)


def serve_pods(rig_dir: Path) -> int:
    """The `serve-pods` process: keep a server at every pod's IP and port until SIGTERM."""
    loop = asyncio.new_event_loop()
    servers = PodServers(loop)
    stop = threading.Event()
    ready = rig_dir / "pods.ready"

    def publish(pods: list[dict[str, Any]]) -> None:
        asyncio.run_coroutine_threadsafe(servers.sync(pods), loop).result()
        ready.touch()

    watch = threading.Thread(target=PodWatch(rig_dir / "cluster").run, args=(publish, stop), daemon=True)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    watch.start()
    loop.run_forever()
    stop.set()
    return 0


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "serve-pods", "check"))
    parser.add_argument(
        "--dir", type=Path, default=Path(".rig"), help="state, logs and kubeconfig (default .rig)"
    )
    args = parser.parse_args(argv)
    rig_dir = args.dir.resolve()
    if args.command == "serve-pods":
        return serve_pods(rig_dir)
    if args.command == "check":
        reason = unavailable()
        print(reason or "the traffic rig can run here")
        return 1 if reason else 0
    saved = rig_dir / "name"
    if args.command == "down":
        if saved.exists():
            Rig(rig_dir, saved.read_text().strip()).down()
        for name in remove_orphans():
            print(f"removed orphaned rig {name}", file=sys.stderr)
        return 0
    # A rig started from the command line outlives this process: name it after the directory.
    rig = Rig(rig_dir, PREFIX + re.sub(r"[^a-z0-9-]", "-", rig_dir.name.lower()).strip("-")[:20])
    try:
        rig.up()
    except RigUnavailable as error:
        print(f"traffic rig: cannot run here: {error}", file=sys.stderr)
        return 1
    except RigError as error:
        print(f"traffic rig: {error}", file=sys.stderr)
        return 1
    saved.write_text(rig.name)
    print(f"namespace {rig.name}; kubeconfig {rig.kubeconfig}")
    print(f"run a command inside: ip netns exec {rig.name} COMMAND")
    return 0


if __name__ == "__main__":
    sys.exit(main())
