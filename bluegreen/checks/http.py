"""`http`: one GET to a URL, or to a path on the colour's Service through the apiserver's proxy.

Measures the status code and, when the body is JSON, the values the conditions name (for example
`checks.db == "ok"`, `workers.running >= 1`), so the seed's DB, Redis and worker checks are judged
against what the app itself reports. A refused connection or timeout is FAILED (the app did not
answer), a body that is not JSON while conditions need it is FAILED too: both are the app's fault.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

import httpx2

from bluegreen import correlation
from bluegreen.checks.base import Measurement, Target, Threshold, Value
from bluegreen.config import HttpCheckConfig, render
from bluegreen.verdict import lookup


class HttpCheck:
    kind: ClassVar[str] = "http"
    once: ClassVar[bool] = False

    def __init__(self, config: HttpCheckConfig, *, apiserver: httpx2.Client | None = None) -> None:
        """`apiserver`: an authenticated client whose base URL is the apiserver (for path checks);
        the check owns it and closes it."""
        self.config = config
        self.name = config.name
        self._apiserver = apiserver
        self._http = httpx2.Client(timeout=config.timeout)

    def close(self) -> None:
        self._http.close()
        if self._apiserver is not None:
            self._apiserver.close()

    def url(self, target: Target) -> tuple[httpx2.Client | None, str]:
        c = self.config
        if c.url:
            return self._http, render(c.url, target.variables())
        port = f":{c.port}" if c.port else ""
        proxied = f"/api/v1/namespaces/{target.app.namespace}/services/{target.service}{port}/proxy{c.path}"
        return self._apiserver, proxied

    def measure(self, target: Target) -> Measurement:
        c = self.config
        client, url = self.url(target)
        thresholds = (Threshold(metric="http_status", op="==", limit=c.status), *c.conditions)
        base: dict[str, Any] = {
            "check": c.name,
            "kind": self.kind,
            "target": url,
            "thresholds": thresholds,
            "at": time.time(),
        }
        if client is None:
            return Measurement(**base, error="no apiserver connection for a path check; give `url` instead")
        try:
            response = client.get(url, timeout=c.timeout, headers=correlation.headers())
        except httpx2.HTTPError as error:
            # The app did not answer: a failure of the app, judged FAILED, not a measuring error.
            return Measurement(
                **{**base, "thresholds": (Threshold(metric="answered", op="==", limit=True),)},
                values={"answered": False},
                detail=f"no answer: {type(error).__name__}: {error}",
            )
        values: dict[str, Value] = {"http_status": response.status_code}
        body_text = response.text
        document: object = None
        if c.conditions:
            try:
                document = json.loads(body_text)
            except ValueError:
                values["json_body"] = False
                return Measurement(
                    **{
                        **base,
                        "thresholds": (*thresholds[:1], Threshold(metric="json_body", op="==", limit=True)),
                    },
                    values=values,
                    detail=f"body is not JSON: {body_text[:200]!r}",
                )
            for condition in c.conditions:
                values[condition.metric] = lookup(document, condition.metric)
        return Measurement(**base, values=values, detail=body_text[:500])
