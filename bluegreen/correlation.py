"""One ID per release, to follow it across logs, Events, history, the job summary and the app's logs.

The ID is BLUEGREEN_CORRELATION_ID when set, else the GitHub run and attempt (`<run id>-<attempt>`),
else one generated per process. Requests bluegreen sends to the app carry it as `X-Request-Id`, with
a W3C `traceparent` whose trace ID is the parent's (TRACEPARENT, so a CI trace includes the release)
or derived from the correlation ID, so the app's traces of gate traffic are found from the release.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

ENV = "BLUEGREEN_CORRELATION_ID"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def correlation_id(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    explicit = env.get(ENV, "").strip()
    if explicit:
        return explicit
    run_id = env.get("GITHUB_RUN_ID", "").strip()
    if run_id:
        return f"{run_id}-{env.get('GITHUB_RUN_ATTEMPT', '').strip() or '1'}"
    return _generated()


@functools.cache
def _generated() -> str:
    # Once per process: the logs, the history and the headers of one run must agree. 128 random bits
    # as 32 hex digits, as uuid4().hex, without importing uuid (and platform, hashlib) for it.
    return os.urandom(16).hex()


def parent(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(trace id, span id) of a valid TRACEPARENT in the environment; None when absent or malformed."""
    env = os.environ if env is None else env
    found = _TRACEPARENT.match(env.get("TRACEPARENT", "").strip().lower())
    if not found or set(found[1]) == {"0"} or set(found[2]) == {"0"}:
        return None
    return found[1], found[2]


def trace_id(cid: str, env: Mapping[str, str] | None = None) -> str:
    """The release's trace ID: the parent trace's, else derived from the correlation ID (stable)."""
    inherited = parent(env)
    if inherited:
        return inherited[0]
    if re.fullmatch(r"[0-9a-f]{32}", cid) and set(cid) != {"0"}:
        return cid
    import hashlib

    return hashlib.sha256(cid.encode()).hexdigest()[:32]


def headers(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of one request bluegreen sends to the app: a new span ID per request."""
    from bluegreen import telemetry

    cid = correlation_id(env)
    traced = telemetry.traceparent()  # with tracing on: the current span (a check round) is the parent
    return {
        "X-Request-Id": cid,
        "traceparent": traced or f"00-{trace_id(cid, env)}-{os.urandom(8).hex()}-01",
    }
