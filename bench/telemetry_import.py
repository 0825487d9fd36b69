"""What tracing costs at start-up: a process that imports the CLI and sets up telemetry, with
OTEL_EXPORTER_OTLP_ENDPOINT unset (off: the SDK is never imported) and set (on: SDK + OTLP exporter).

Prints the medians of RUNS fresh interpreters each way and their difference. It prints; it never fails
on a number.

    .venv/bin/python bench/telemetry_import.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 9
ROOT = Path(__file__).resolve().parents[1]
PROGRAM = "import bluegreen.cli, bluegreen.telemetry as t; t.start()"


def once(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - started


def main() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    off = [once(base) for _ in range(RUNS)]
    on = [once({**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}) for _ in range(RUNS)]
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"start-up, tracing off: median {m_off * 1000:.0f} ms over {RUNS} runs")
    print(f"start-up, tracing on:  median {m_on * 1000:.0f} ms over {RUNS} runs")
    print(f"tracing costs {1000 * (m_on - m_off):.0f} ms at start ({m_on / m_off:.2f}x)")


if __name__ == "__main__":
    main()
