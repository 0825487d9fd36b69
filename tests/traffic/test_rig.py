"""The rig itself: a start that fails leaves nothing behind on the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from hack.traffic_rig import Rig, RigError, RigUnavailable, unavailable
from tests.traffic.conftest import host_state, not_here

pytestmark = pytest.mark.traffic


def test_a_rig_whose_kube_proxy_fails_removes_namespace_addresses_and_processes(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        not_here(reason)
    before = host_state()
    rig = Rig(tmp_path / "rig", name="bluegreen-rig-broken")
    with pytest.raises((RigError, RigUnavailable)) as failed:
        rig.up(kube_proxy_args=("--no-such-flag",))
    if isinstance(failed.value, RigUnavailable):
        not_here(str(failed.value))
    assert "kube-proxy exited during start-up" in str(failed.value)
    assert not rig.exists(), "the network namespace was left behind"
    assert host_state() == before, "an address or an nftables table was left on the host"
    leftovers = [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path).encode() in _cmdline(p)]
    assert not leftovers, f"processes of the failed rig still run: {leftovers}"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""
