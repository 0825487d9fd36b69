"""The example alert and recording rules pass promtool (Debian's prometheus ships it, see
hack/install-prometheus.sh): `check rules`, and `test rules` with series for each alert, firing and not.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "examples" / "prometheus"


def promtool(*args: str, cwd: Path = RULES) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("no `promtool` on PATH: run `bash hack/install-prometheus.sh` (or `make deps`)")
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", "bluegreen-rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    done = promtool("test", "rules", "bluegreen-rules.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_unit_tests_catch_a_rule_that_waits_too_long(tmp_path: Path) -> None:
    for name in ("bluegreen-rules.yml", "bluegreen-rules.test.yml"):
        shutil.copy(RULES / name, tmp_path / name)
    rules = tmp_path / "bluegreen-rules.yml"
    rules.write_text(rules.read_text().replace("> 86400", "> 172800"))  # two days instead of one
    done = promtool("test", "rules", "bluegreen-rules.test.yml", cwd=tmp_path)
    assert done.returncode != 0 and "BlueGreenColoursDrifted" in done.stdout + done.stderr
