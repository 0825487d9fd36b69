#!/usr/bin/env python3
"""A real node for the local cluster: kubelet, containerd, runc and CNI run the app's pods for real.

The local cluster's pods are data (kwok marks them Ready). This rig adds one real node beside kwok's,
so pods start, pass readiness probes, run preStop hooks, get SIGTERM and are killed at their grace
deadline, and a Service's ClusterIP reaches them through a real kube-proxy (nftables). Everything runs
inside namespaces the rig makes, so the host keeps its addresses, netfilter rules, sysctls and cgroups:

- a network namespace (`ip netns add`): the node's address on a veth, the CNI bridge, kube-proxy's
  tables, the control plane's loopback ports (hack/localcluster.py runs inside, unchanged);
- one persistent mount namespace (`unshare --mount=FILE`), joined with `nsenter` by every part, so
  kubelet's volume mounts are visible to containerd; tmpfs over the paths kubelet and containerd use
  whatever their flags say, and kubelet's wanted sysctl values bind-mounted over /proc/sys entries
  it would otherwise rewrite host-wide;
- a cgroup root of its own in every (v1) hierarchy, removed on the way down.

Images are docker-archive tars made here from one static binary (hack/realnode-app) and imported
with `ctr` (no registry): `bluegreen.local/app:v1`..`v4` (the release in the image's env),
`bluegreen.local/app:crash` (exits at once: `make demo`'s crashing release) and the pinned sandbox
(pause) image. Binaries: hack/build-realnode.sh. Root with CAP_SYS_ADMIN and
CAP_NET_ADMIN only; `unavailable()` says why not.

    python3 hack/realnode.py up [--dir .realnode]     # prints the namespace and the kubeconfig
    python3 hack/realnode.py down [--dir .realnode]
    ip netns exec bluegreen-node-... curl http://<ClusterIP>/

Standard library only, like hack/localcluster.py.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script (python3 hack/realnode.py): make `hack` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hack import namespaces

HACK = Path(__file__).resolve().parent
PREFIX = "bluegreen-node-"
NODE_NAME = "realnode"
VETH, VETH_PEER = "bg0", "bg1"
NODE_IP = "10.250.0.2"
GATEWAY = "10.250.0.1"
POD_SUBNET = "10.244.200.0/24"  # the real node's pods; kwok's take other addresses in 10.244.0.0/16
POD_CIDR = "10.244.0.0/16"
KUBELET_HEALTHZ = "127.0.0.1:10248"
PROXY_HEALTHZ = "127.0.0.1:10256"
PROXY_METRICS = "127.0.0.1:10249"
APP_IMAGE = "bluegreen.local/app"
# Releases of the test app; v3 is a bad one: it answers 500 (the watch's auto-rollback has a reason).
RELEASES = {"v1": [], "v2": [], "v3": ["FAIL_STATUS=500"], "v4": []}
CRASH_IMAGE = f"{APP_IMAGE}:crash"  # its pods exit at once and restart (CrashLoopBackOff)
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.1"
# Paths kubelet and containerd use whatever their flags say: a tmpfs over each, in the rig's mount ns.
TMPFS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/containerd")
# Host-wide sysctls kubelet sets at start: the values it wants, shown to it by a bind mount.
KUBELET_SYSCTLS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}


class NodeUnavailable(Exception):
    """This machine cannot run a real node (not root, no namespaces, binaries missing): why."""


class NodeError(Exception):
    """The real node could not be started; the message says which part and where its log is."""


def unavailable() -> str | None:
    """Why a real node cannot run here, or None when it may (cheap checks; `up` finds the rest)."""
    if sys.platform != "linux":
        return "a real node needs Linux namespaces and cgroups"
    if os.geteuid() != 0:
        return "a real node needs root (namespaces, mounts, cgroups, nftables)"
    effective = int(
        next(
            line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapEff")
        ).split()[1],
        16,
    )
    for bit, name in ((21, "CAP_SYS_ADMIN"), (12, "CAP_NET_ADMIN")):
        if not effective & (1 << bit):
            return f"a real node needs {name} (an unprivileged container cannot run one)"
    for tool, package in (
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("runc", "runc"),
    ):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing: install Debian's {package} (hack/build-realnode.sh does, as root)"
    if not Path("/usr/lib/cni/bridge").exists():
        return "no CNI plugins in /usr/lib/cni: install Debian's containernetworking-plugins"
    if not cgroup_hierarchies():
        return "no cgroup hierarchy mounted under /sys/fs/cgroup"
    return None


def not_built() -> str | None:
    """Why the real node's binaries are not here, or None when they are (never builds: `make demo`)."""
    done = subprocess.run(
        ["bash", str(HACK / "build-realnode.sh"), "--cached-only"],
        capture_output=True,
        text=True,
        check=False,
    )
    return (
        None if done.returncode == 0 else done.stderr.strip().removeprefix("build-realnode: ") or "not built"
    )


def cgroup_hierarchies() -> list[Path]:
    """Every cgroup mount under /sys/fs/cgroup (v1 controllers, or the single v2 root)."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, where, kind, *_ = line.split()
        if kind in ("cgroup", "cgroup2") and where.startswith("/sys/fs/cgroup"):
            found.append(Path(where))
    return found


def bin_dir() -> Path:
    """The real node's binaries (built once per machine by hack/build-realnode.sh)."""
    done = subprocess.run(
        ["bash", str(HACK / "build-realnode.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise NodeUnavailable(f"hack/build-realnode.sh failed:\n{done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _run(args: list[str], what: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NodeError(f"{what}: `{' '.join(args)}` failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


# -- images ----------------------------------------------------------------------------------------


def docker_archive(app: Path, images: dict[str, tuple[list[str], list[str]]]) -> bytes:
    """A docker-archive tar: one layer holding `app` as /app, one image config per tag.

    `images` maps a tag to the image's entrypoint and env; every image gets RELEASE=<its tag>."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(app), arcname="app")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755
        with app.open("rb") as binary:
            tar.addfile(info, binary)
        for directory in ("tmp", "etc"):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(entry)
    layer_bytes = layer.getvalue()
    diff_id = hashlib.sha256(layer_bytes).hexdigest()
    out = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))

        add(f"{diff_id}/layer.tar", layer_bytes)
        for tag, (entrypoint, env) in images.items():
            release = tag.rsplit(":", 1)[1]
            config = {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": entrypoint, "Env": ["PATH=/", f"RELEASE={release}", *env]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            }
            config_bytes = json.dumps(config, sort_keys=True).encode()
            config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
            add(config_name, config_bytes)
            manifest.append({"Config": config_name, "RepoTags": [tag], "Layers": [f"{diff_id}/layer.tar"]})
        add("manifest.json", json.dumps(manifest).encode())
    return out.getvalue()


# -- the node ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RealNode:
    dir: Path
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "dir", self.dir.resolve())
        if not self.name:
            # The creating process's pid in the name: a node whose creator died is found and removed.
            object.__setattr__(self, "name", f"{PREFIX}{os.getpid()}")

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "cluster" / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def mount_ns(self) -> Path:
        return self.dir / "ns" / "mnt"

    @property
    def cgroup_name(self) -> str:
        return self.name

    def inside(self) -> contextlib.AbstractContextManager[None]:
        return namespaces.netns(self.name, NodeError)

    def exec_args(self, *command: str) -> list[str]:
        """A command line that runs `command` in the node's network and mount namespaces."""
        return ["nsenter", f"--mount={self.mount_ns}", f"--net=/run/netns/{self.name}", "--", *command]

    # -- up ---------------------------------------------------------------------------------------

    def up(self, *, timeout: float = 180) -> RealNode:
        """Namespaces, cluster, containerd, kubelet, kube-proxy; on any failure all is removed."""
        reason = unavailable()
        if reason:
            raise NodeUnavailable(reason)
        binaries = bin_dir()
        remove_orphans()
        self.down()
        made = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            raise NodeUnavailable(f"`ip netns add` failed here: {made.stderr.strip()}")
        try:
            self._start(binaries, time.monotonic() + timeout)
        except BaseException:
            self.down()
            raise
        return self

    def _start(self, binaries: Path, deadline: float) -> None:
        ip = ["ip", "-n", self.name]
        _run([*ip, "link", "set", "lo", "up"], "network")
        _run([*ip, "link", "add", VETH, "type", "veth", "peer", "name", VETH_PEER], "network")
        _run([*ip, "addr", "add", f"{NODE_IP}/24", "dev", VETH], "network")
        _run([*ip, "link", "set", VETH, "up"], "network")
        _run([*ip, "link", "set", VETH_PEER, "up"], "network")
        _run([*ip, "route", "add", "default", "via", GATEWAY, "dev", VETH, "onlink"], "network")
        self.logs.mkdir(parents=True, exist_ok=True)
        self._mount_namespace()
        for hierarchy in cgroup_hierarchies():
            (hierarchy / self.cgroup_name).mkdir(exist_ok=True)

        cluster = subprocess.run(
            self.exec_args(
                sys.executable, str(HACK / "localcluster.py"), "up", "--dir", str(self.dir / "cluster")
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if cluster.returncode != 0:
            raise NodeError(f"the cluster did not start in namespace {self.name}:\n{cluster.stderr.strip()}")
        kubectl = str(Path(os.path.realpath(self.dir / "cluster" / "bin")) / "kubectl")
        # kwok's nodes stay for other tests' pods, cordoned: the app's pods must land on the real node.
        for node in ("kwok-node-0", "kwok-node-1"):
            subprocess.run(
                self.exec_args(kubectl, f"--kubeconfig={self.kubeconfig}", "cordon", node),
                capture_output=True,
                check=False,
            )

        self._write_configs()
        env = {**os.environ, "PATH": f"{binaries}:/usr/sbin:/usr/bin:/sbin:/bin"}
        self._spawn(
            "containerd", [str(binaries / "containerd"), "--config", str(self.dir / "containerd.toml")], env
        )
        socket = Path("/run/containerd/containerd.sock")
        self._wait("containerd", lambda: self._in_ns_exists(socket), deadline)
        app = next(binaries.glob("app-*"))
        images = {f"{APP_IMAGE}:{r}": (["/app"], env) for r, env in RELEASES.items()}
        images[CRASH_IMAGE] = (["/app", "sleep", "0"], [])
        images[SANDBOX_IMAGE] = (["/app", "pause"], [])
        archive = self.dir / "images.tar"
        archive.write_bytes(docker_archive(app, images))
        _run(
            self.exec_args(
                str(binaries / "ctr"),
                "--address",
                str(socket),
                "-n",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "native",
                "--platform",
                "linux/amd64",
                str(archive),
            ),
            "importing the images",
        )
        self._spawn(
            "kubelet",
            [
                str(binaries / "kubelet"),
                f"--config={self.dir / 'kubelet.yaml'}",
                f"--kubeconfig={self.kubeconfig}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                "--v=1",
            ],
            env,
        )
        self._spawn(
            "kube-proxy",
            [
                str(binaries / "kube-proxy"),
                f"--kubeconfig={self.kubeconfig}",
                "--proxy-mode=nftables",
                f"--hostname-override={NODE_NAME}",
                f"--cluster-cidr={POD_CIDR}",
                f"--metrics-bind-address={PROXY_METRICS}",
                f"--healthz-bind-address={PROXY_HEALTHZ}",
                # The conntrack sysctls are read-only here; 0 leaves them as they are.
                "--conntrack-max-per-core=0",
                "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0",
            ],
            env,
        )
        with self.inside():
            self._wait("kubelet", lambda: _http_ok(f"http://{KUBELET_HEALTHZ}/healthz"), deadline)
            self._wait("kube-proxy", lambda: _http_ok(f"http://{PROXY_HEALTHZ}/healthz"), deadline)
        self._wait("kubelet", lambda: self._node_ready(kubectl), deadline)

    def _mount_namespace(self) -> None:
        """One mount namespace for every part, private to the rig, with tmpfs and sysctl stand-ins."""
        ns_dir = self.mount_ns.parent
        ns_dir.mkdir(parents=True, exist_ok=True)
        # The file a mount namespace is bound to must sit on a private mount.
        _run(["mount", "--bind", str(ns_dir), str(ns_dir)], "mount namespace")
        _run(["mount", "--make-private", str(ns_dir)], "mount namespace")
        self.mount_ns.touch()
        _run(["unshare", f"--mount={self.mount_ns}", "--propagation", "private", "true"], "mount namespace")
        sysctl_dir = self.dir / "sysctl"
        sysctl_dir.mkdir(exist_ok=True)
        script = ["set -e"]
        for path in (*TMPFS, str(self.dir / "containerd")):
            script.append(f"mkdir -p {path} && mount -t tmpfs -o mode=0755 tmpfs {path}")
        for key, value in KUBELET_SYSCTLS.items():
            stand_in = sysctl_dir / key.replace("/", ".")
            stand_in.write_text(f"{value}\n")
            script.append(f"mount --bind {stand_in} /proc/sys/{key}")
        _run(
            ["nsenter", f"--mount={self.mount_ns}", "--", "sh", "-c", "\n".join(script)],
            "preparing the mount namespace",
        )

    def _write_configs(self) -> None:
        cni = self.dir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        (cni / "net.d" / "10-bluegreen.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "bluegreen",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "hairpinMode": True,
                            "ipMasq": False,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_SUBNET}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(cni / "ipam"),
                            },
                        }
                    ],
                },
                indent=1,
            )
        )
        (self.dir / "containerd.toml").write_text(
            f"""version = 3
root = "{self.dir / "containerd"}"
state = "/run/containerd/state"
[grpc]
  address = "/run/containerd/containerd.sock"
# The native snapshotter copies: it works on any filesystem, and the images are one small binary.
[plugins.'io.containerd.transfer.v1.local']
  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
    platform = "linux/amd64"
    snapshotter = "native"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "native"
  image_pull_progress_timeout = "1m"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{SANDBOX_IMAGE}"
[plugins.'io.containerd.cri.v1.runtime']
  # Root here may lack CAP_SYS_RESOURCE: runc could not lower oom_score_adj for the sandbox.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  # The pods are the test app's: no AppArmor profile to load on hosts that have AppArmor (Ubuntu CI).
  disable_apparmor = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{cni / "net.d"}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{shutil.which("runc")}"
"""
        )
        (self.dir / "kubelet.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "failCgroupV1": False,
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{self.cgroup_name}",
                    "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
                    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                    "authorization": {"mode": "AlwaysAllow"},
                    "address": NODE_IP,
                    "readOnlyPort": 0,
                    "healthzBindAddress": KUBELET_HEALTHZ.split(":")[0],
                    "healthzPort": int(KUBELET_HEALTHZ.split(":")[1]),
                    "failSwapOn": False,
                    "resolvConf": "",
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "evictionHard": {
                        "memory.available": "0%",
                        "nodefs.available": "0%",
                        "imagefs.available": "0%",
                    },
                    "localStorageCapacityIsolation": False,
                    "protectKernelDefaults": False,
                    "serializeImagePulls": False,
                    "nodeStatusReportFrequency": "10s",
                    "maxPods": 40,
                }
            )
        )

    def _in_ns_exists(self, path: Path) -> bool:
        return (
            subprocess.run(
                ["nsenter", f"--mount={self.mount_ns}", "--", "test", "-S", str(path)], check=False
            ).returncode
            == 0
        )

    def _node_ready(self, kubectl: str) -> bool:
        done = subprocess.run(
            self.exec_args(
                kubectl,
                f"--kubeconfig={self.kubeconfig}",
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() == "True"

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                self.exec_args(*command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        (self.dir / f"{name}.pid").write_text(str(process.pid))

    def _wait(self, name: str, ready: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            pid = int((self.dir / f"{name}.pid").read_text())
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not namespaces.alive(pid):
                raise NodeError(f"{name} exited during start-up; the end of its log:\n{self._tail(name)}")
            if ready():
                return
            time.sleep(0.2)
        raise NodeError(f"{name} not ready in time; the end of its log:\n{self._tail(name)}")

    def _tail(self, name: str) -> str:
        log = self.logs / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else "(no log)"

    # -- down -------------------------------------------------------------------------------------

    def exists(self) -> bool:
        return namespaces.exists(self.name)

    def _cgroup_pids(self) -> list[int]:
        pids: set[int] = set()
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / self.cgroup_name
            if root.exists():
                for procs in root.rglob("cgroup.procs"):
                    with contextlib.suppress(OSError):
                        pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def down(self) -> None:
        """Kill the pods' and the node's processes, remove namespaces, mounts and cgroups; re-runnable.

        The pods are killed, not stopped gracefully: the tests are over, and a graceful stop of every
        pod would add their grace periods to each run."""
        for pid in self._cgroup_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        namespaces.stop_processes(self.name)
        # Pod processes live in network namespaces of their own: kill them by cgroup, until none is left.
        end = time.monotonic() + 10
        while (left := self._cgroup_pids()) and time.monotonic() < end:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / self.cgroup_name
            if root.exists():
                # Deepest first: a cgroup can only be removed once its children are.
                for group in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    with contextlib.suppress(OSError):
                        group.rmdir()
                with contextlib.suppress(OSError):
                    root.rmdir()
        if self.exists():
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        ns_dir = self.mount_ns.parent
        if _is_mount(ns_dir):
            subprocess.run(["umount", str(self.mount_ns)], capture_output=True, check=False)
            subprocess.run(["umount", "--lazy", str(ns_dir)], capture_output=True, check=False)
        for path in (self.dir / "cluster" / "state.json",):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.dir / "cluster" / "etcd", ignore_errors=True)

    def __enter__(self) -> RealNode:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _is_mount(path: Path) -> bool:
    target = str(path.resolve())
    return any(line.split()[1] == target for line in Path("/proc/self/mounts").read_text().splitlines())


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback in the namespace
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def remove_orphans() -> list[str]:
    """Remove real nodes whose creating process is gone (a test run that was killed): their names."""
    return namespaces.remove_orphans(PREFIX, lambda name: RealNode(Path("/nonexistent"), name).down())


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "check"))
    parser.add_argument(
        "--dir", type=Path, default=Path(".realnode"), help="state, logs and kubeconfig (default .realnode)"
    )
    args = parser.parse_args(argv)
    node_dir = args.dir.resolve()
    if args.command == "check":
        reason = unavailable()
        print(reason or "a real node can run here")
        return 1 if reason else 0
    saved = node_dir / "name"
    if args.command == "down":
        if saved.exists():
            RealNode(node_dir, saved.read_text().strip()).down()
        for name in remove_orphans():
            print(f"removed orphaned real node {name}", file=sys.stderr)
        return 0
    # Started from the command line, it outlives this process: named after the directory.
    node = RealNode(node_dir, PREFIX + re.sub(r"[^a-z0-9-]", "-", node_dir.name.lower()).strip("-")[:20])
    node_dir.mkdir(parents=True, exist_ok=True)
    try:
        node.up()
    except NodeUnavailable as error:
        print(f"real node: cannot run here: {error}", file=sys.stderr)
        return 1
    except NodeError as error:
        print(f"real node: {error}", file=sys.stderr)
        return 1
    saved.write_text(node.name)
    print(f"namespace {node.name}; kubeconfig {node.kubeconfig}")
    print(f"run a command inside: {' '.join(node.exec_args('COMMAND'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
