"""The fuzz suite's Hypothesis profile and its closing line: how many inputs it tried.

The `ci` profile (the default) is derandomized: every run tries the same inputs, so a failure in CI
is reproduced by running the suite again; HYPOTHESIS_PROFILE=explore tries new ones locally.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.counting import PEAKS, TRIED

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "explore", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TRIED:
        return
    local = sum(n for k, n in TRIED.items() if not k.startswith("cluster"))
    cluster = sum(n for k, n in TRIED.items() if k.startswith("cluster"))
    terminalreporter.write_sep("=", "fuzz: generated inputs tried")
    for target, n in sorted(TRIED.items()):
        terminalreporter.write_line(f"  {target:<40} {n:>7}")
    for name, value in sorted(PEAKS.items()):
        terminalreporter.write_line(f"  {name:<40} {value:>7.2f}")
    terminalreporter.write_line(
        f"fuzz: {local} generated inputs against the validation layer, "
        f"{cluster} invalid invocations end to end on the cluster"
    )
