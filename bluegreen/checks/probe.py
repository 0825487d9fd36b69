"""`probe`: the gate's own requests to both colours, for a comparative gate without Prometheus.

Each measurement sends `requests` GETs to the colour under test and as many to the baseline colour,
one after another, and measures each one's error rate (5xx, timeouts and refused connections) and
p95 latency. Judged like the seed's switching gate: error rate < max-error-rate, and p95 within
p95-tolerance of the baseline's p95 over the same moment. The request count per interval is fixed,
so the load does not grow with the gate's or the watch's duration.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import httpx2

from bluegreen import correlation
from bluegreen.checks.base import Measurement, Target, Threshold, Value
from bluegreen.config import ProbeCheckConfig


def p95(latencies: list[float]) -> float | None:
    """The 95th percentile by nearest rank; None for no samples."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class ProbeCheck:
    kind: ClassVar[str] = "probe"
    once: ClassVar[bool] = False

    def __init__(self, config: ProbeCheckConfig) -> None:
        self.config = config
        self.name = config.name
        self._http = httpx2.Client(timeout=config.timeout)

    def close(self) -> None:
        self._http.close()

    def sample(self, url: str) -> tuple[float, float | None, str]:
        """(error rate, p95 seconds of the successful requests, first error seen) for `url`."""
        errors, latencies, first = 0, [], ""
        for _ in range(self.config.requests):
            started = time.perf_counter()
            try:
                response = self._http.get(url, headers=correlation.headers())
            except httpx2.HTTPError as error:
                errors += 1
                first = first or f"{type(error).__name__}: {error}"
                continue
            elapsed = time.perf_counter() - started
            if response.status_code >= 500:
                errors += 1
                first = first or f"HTTP {response.status_code}"
            else:
                latencies.append(elapsed)
        return errors / self.config.requests, p95(latencies), first

    def measure(self, target: Target) -> Measurement:
        url = self.config.url_for(str(target.color))
        baseline_url = self.config.url_for(str(target.baseline))
        at = time.time()
        rate, latency, first = self.sample(url)
        base_rate, base_latency, base_first = self.sample(baseline_url)
        values: dict[str, Value] = {
            "requests": self.config.requests,
            "error_rate": rate,
            "p95": latency,
            "baseline_error_rate": base_rate,
            "baseline_p95": base_latency,
        }
        thresholds = [
            Threshold(metric="error_rate", op="<", limit=target.max_error_rate),
            Threshold(metric="p95", op="<=", relative_to="baseline_p95", factor=1 + target.p95_tolerance),
        ]
        if target.max_p95 is not None:
            thresholds.append(Threshold(metric="p95", op="<=", limit=target.max_p95))
        detail = "; ".join(
            part
            for part in (
                f"{target.color} {url}: {first}" if first else "",
                f"{target.baseline} {baseline_url}: {base_first}" if base_first else "",
            )
            if part
        )
        inconclusive = ""
        if latency is None:
            # Every request failed: no latency to compare, but the error rate alone fails the check.
            thresholds = thresholds[:1]
        elif base_latency is None:
            inconclusive = (
                f"baseline {target.baseline} answered no request ({base_first}): nothing to compare p95 with"
            )
        return Measurement(
            check=self.name,
            kind=self.kind,
            target=f"{target.color} {url}",
            values=values,
            thresholds=tuple(thresholds),
            inconclusive=inconclusive if rate < target.max_error_rate else "",
            detail=detail,
            at=at,
        )
