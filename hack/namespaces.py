"""Network namespaces and the processes in them: what the traffic rig and the real node share.

Standard library only, like the rigs that import it (they also run as scripts).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

_CLONE_NEWNET = 0x40000000


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (exited, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def is_etcd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/etcd")
    except OSError:
        return False


@contextlib.contextmanager
def netns(name: str, error: type[Exception]) -> Iterator[None]:
    """Run the calling thread inside network namespace `name`: its new sockets, threads and children.

    A network namespace is a per-thread attribute in Linux, so this changes only the calling thread
    (and the threads and processes it starts meanwhile); it is restored on the way out. A failure
    raises `error`, the caller's own exception type.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    with open("/proc/thread-self/ns/net", "rb") as home, open(f"/run/netns/{name}", "rb") as target:
        if libc.setns(target.fileno(), _CLONE_NEWNET) != 0:
            raise error(f"entering network namespace {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                # A thread stuck in the wrong namespace would send every later request astray.
                raise error(f"leaving network namespace {name}: {os.strerror(ctypes.get_errno())}")


def exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def pids(name: str) -> list[int]:
    """The processes in namespace `name` (none when it does not exist)."""
    if not exists(name):
        return []
    listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(p) for p in listed.stdout.split() if p.isdigit()]


def stop_processes(name: str) -> None:
    """Stop every process in namespace `name`: SIGTERM, then SIGKILL, 5 s apart at most."""
    # etcd last: an apiserver that loses its store first takes many seconds to stop.
    for sig, spare_etcd in ((signal.SIGTERM, True), (signal.SIGTERM, False), (signal.SIGKILL, False)):
        left = [p for p in pids(name) if not (spare_etcd and is_etcd(p))]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        end = time.monotonic() + 5
        while left and time.monotonic() < end:
            for pid in left:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
            left = [p for p in left if alive(p)]
            time.sleep(0.05)


def remove_orphans(prefix: str, remove: Callable[[str], None]) -> list[str]:
    """Remove the namespaces named `<prefix><pid>` whose creating process is gone (a test run that was
    killed) with `remove(name)`: their names."""
    netns_dir = Path("/run/netns")
    removed = []
    for entry in netns_dir.glob(f"{prefix}*") if netns_dir.exists() else []:
        owner = entry.name.removeprefix(prefix)
        if owner.isdigit() and not alive(int(owner)):
            remove(entry.name)
            removed.append(entry.name)
    return removed
