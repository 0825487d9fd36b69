"""What tracing costs at start-up: importing the CLI and setting up telemetry, with
OTEL_EXPORTER_OTLP_ENDPOINT unset (off: the SDK is never imported) and set (on: SDK + the OTLP span
and metric exporters).

Prints the medians of RUNS fresh interpreters each way and their difference. It prints; it never fails
on a number.

    .venv/bin/python bench/telemetry_import.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

RUNS = 9
ROOT = Path(__file__).resolve().parents[1]
# Timed inside the child, so the interpreter's own start (and a busy machine's scheduling of it) is left out.
PROGRAM = (
    "import time; t0 = time.perf_counter()\n"
    "import bluegreen.cli, bluegreen.telemetry as t; t.start()\n"
    "print(time.perf_counter() - t0)"
)


def once(env: dict[str, str]) -> float:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, check=True, capture_output=True)
    return float(done.stdout)


def main() -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    off = [once(base) for _ in range(RUNS)]
    on = [once({**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}) for _ in range(RUNS)]
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"import + set-up, tracing off: median {m_off * 1000:.0f} ms over {RUNS} runs")
    print(f"import + set-up, tracing on:  median {m_on * 1000:.0f} ms over {RUNS} runs")
    print(f"tracing costs {1000 * (m_on - m_off):.0f} ms at start ({m_on / m_off:.2f}x)")


if __name__ == "__main__":
    main()
