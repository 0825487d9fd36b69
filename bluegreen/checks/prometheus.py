"""`prometheus`: a PromQL query against a Prometheus HTTP API, templated with the colour and window.

Measures one number per colour. `measure: error-rate` is judged against max-error-rate, `p95` against
the baseline colour's p95 from the same query over the same window (times 1 + p95-tolerance),
`saturation` (CPU or memory used over requested or limit) likewise against the baseline's, and under
`max` when given, and
`value` against min/max. No series or NaN (0/0: no traffic) is INCONCLUSIVE; a failed request, a
Prometheus error or more than one series is ERROR: never a pass.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import httpx2

from bluegreen.checks.base import Measurement, Target, Threshold, Value
from bluegreen.config import PrometheusCheckConfig, render
from bluegreen.model import Color


class QueryError(Exception):
    """The query could not be answered; the message says why."""


class NoData(Exception):
    """The query was answered with nothing to judge (no series, or NaN)."""


class PrometheusCheck:
    kind: ClassVar[str] = "prometheus"
    once: ClassVar[bool] = False

    def __init__(self, config: PrometheusCheckConfig) -> None:
        self.config = config
        self.name = config.name
        self._http = httpx2.Client(base_url=config.url.rstrip("/"), timeout=config.timeout)

    def close(self) -> None:
        self._http.close()

    def _data(self, promql: str, at: float | None) -> dict[str, Any]:
        """The `data` of Prometheus's answer to an instant query; QueryError otherwise."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            response = self._http.get("/api/v1/query", params=params)
        except httpx2.HTTPError as error:
            raise QueryError(f"Prometheus at {self.config.url} unreachable: {error}") from None
        try:
            body = response.json()
        except ValueError:
            raise QueryError(f"Prometheus answered {response.status_code} with a non-JSON body") from None
        if response.status_code != 200 or body.get("status") != "success":
            raise QueryError(
                f"Prometheus refused the query ({response.status_code}): {body.get('error', body)}"
            )
        data = body.get("data", {})
        return data if isinstance(data, dict) else {}

    def series(self, promql: str) -> dict[str, float]:
        """Every series `promql` returns now, named by its labels (`pod=shop-blue-1`; "" for none),
        NaN left out; QueryError if it is not a vector or scalar. For queries `by (pod)`."""
        data = self._data(promql, None)
        result_type, result = data.get("resultType"), data.get("result")
        if result_type == "scalar":
            result = [{"metric": {}, "value": result}]
        elif result_type != "vector":
            raise QueryError(f"the query returned a {result_type}; write an instant query")
        found: dict[str, float] = {}
        for item in result or []:
            labels = item.get("metric") or {}
            name = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__")
            try:
                sample: Any = item.get("value")
                value = float(sample[1])
            except (TypeError, ValueError, IndexError):
                raise QueryError(f"unreadable sample {item!r}") from None
            if not math.isnan(value):
                found[name] = value
        return found

    def query(self, promql: str, *, at: float | None = None) -> float:
        """The single number `promql` evaluates to; QueryError or NoData otherwise."""
        data = self._data(promql, at)
        result_type, result = data.get("resultType"), data.get("result")
        sample: Any
        if result_type == "scalar":
            sample = result
        elif result_type == "vector":
            if not result:
                raise NoData("the query returned no series")
            if len(result) > 1:
                raise QueryError(
                    f"the query returned {len(result)} series; aggregate it to one (e.g. with sum())"
                )
            sample = result[0].get("value")
        else:
            raise QueryError(f"the query returned a {result_type}; write an instant query giving one number")
        try:
            value = float(sample[1])
        except (TypeError, ValueError, IndexError):
            raise QueryError(f"unreadable sample {sample!r}") from None
        if math.isnan(value):
            raise NoData("the query returned NaN (no traffic in the window?)")
        return value

    def _for(self, target: Target, color: Color, *, at: float | None = None) -> float:
        promql = render(self.config.query, target.variables(color))
        value = self.query(promql, at=at)
        problem = impossible(self.config.measure, value)
        if problem:
            raise NoData(f"the query {promql!r} returned {value!r}, {problem}: is the query right?")
        return value

    def _baseline(self, target: Target, metric: str) -> float:
        """The baseline colour's number: as recorded at the switch when it was, else queried."""
        recorded = target.recorded.get(self.name, {}).get(metric)
        if recorded is not None:
            return recorded
        return self._for(target, target.baseline, at=target.baseline_at)

    def baseline(self, target: Target) -> dict[str, float]:
        """The target colour's number now, to record at a switch as the watch's baseline ({} if none)."""
        if self.config.measure == "value":
            return {}
        try:
            return {_metric(self.config.measure): self._for(target, target.color)}
        except (QueryError, NoData):
            return {}

    def measure(self, target: Target) -> Measurement:
        c = self.config
        base = Measurement(check=c.name, kind=self.kind, target=str(target.color), at=time.time())
        values: dict[str, Value] = {}
        try:
            values["value" if c.measure == "value" else _metric(c.measure)] = self._for(target, target.color)
        except QueryError as error:
            return _with(base, values, error=str(error))
        except NoData as nothing:
            return _with(base, values, inconclusive=f"{target.color}: {nothing}")
        thresholds: list[Threshold] = []
        if c.measure == "value":
            if c.min is not None:
                thresholds.append(Threshold(metric="value", op=">=", limit=c.min))
            if c.max is not None:
                thresholds.append(Threshold(metric="value", op="<=", limit=c.max))
        elif c.measure == "error-rate":
            limit = c.max if c.max is not None else target.max_error_rate
            thresholds.append(Threshold(metric="error_rate", op="<", limit=limit))
            # The baseline's rate is shown beside it, not judged.
            try:
                values["baseline_error_rate"] = self._baseline(target, "error_rate")
            except (QueryError, NoData):
                values["baseline_error_rate"] = None
        else:  # p95 and saturation: relative to the baseline colour's, from the same query and window
            metric = _metric(c.measure)
            try:
                values[f"baseline_{metric}"] = self._baseline(target, metric)
            except QueryError as error:
                return _with(base, values, error=f"baseline {target.baseline}: {error}")
            except NoData as nothing:
                return _with(base, values, inconclusive=f"baseline {target.baseline}: {nothing}")
            thresholds.append(
                Threshold(
                    metric=metric, op="<=", relative_to=f"baseline_{metric}", factor=1 + target.p95_tolerance
                )
            )
            if c.measure == "saturation" and c.max is not None:  # and under an absolute ceiling
                thresholds.append(Threshold(metric="saturation", op="<=", limit=c.max))
            if c.measure == "p95" and target.max_p95 is not None:
                thresholds.append(Threshold(metric="p95", op="<=", limit=target.max_p95))
        return _with(base, values, thresholds=tuple(thresholds))


def impossible(measure: str, value: float) -> str:
    """Why `value` cannot be a real `measure` ("" when it can): such a value is a broken query, so
    the check is INCONCLUSIVE with that said, never a pass (a -0.5 error rate is not healthy)."""
    if not math.isfinite(value):
        return "which is not a finite number"
    if measure == "error-rate" and not 0 <= value <= 1:
        return "which is not an error rate (a fraction of requests, 0..1)"
    if measure == "p95" and value < 0:
        return "which is a negative latency"
    return ""


def _metric(measure: str) -> str:
    return {"error-rate": "error_rate", "p95": "p95", "saturation": "saturation"}[measure]


def _with(
    base: Measurement,
    values: dict[str, Value],
    *,
    thresholds: tuple[Threshold, ...] = (),
    error: str = "",
    inconclusive: str = "",
) -> Measurement:
    return Measurement(
        check=base.check,
        kind=base.kind,
        target=base.target,
        at=base.at,
        values=values,
        thresholds=thresholds,
        error=error,
        inconclusive=inconclusive,
    )
