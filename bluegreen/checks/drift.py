"""`drift`: the colours differ only by the release bluegreen deployed (what `bluegreen diff` says).

Each measurement reads both colours' Deployments and the config copies they reference, and judges
them with bluegreen/drift.py, as `diff` does: a `kubectl edit` or `kubectl set env` of either colour
after the deploy, or a copy changed after bluegreen made it, fails the gate. Measured every interval:
an edit made while the gate runs is seen too.
"""

from __future__ import annotations

import time
from typing import ClassVar

from lightkube import Client

from bluegreen import driftread
from bluegreen.checks.base import Measurement, Target, Threshold
from bluegreen.config import DriftCheckConfig
from bluegreen.drift import Judgement
from bluegreen.errors import ClusterError, NotFoundError

SHOWN = 20  # drift lines kept in a measurement's detail (the count is always whole)


def measurement(name: str, judgement: Judgement, *, target: str, at: float) -> Measurement:
    """What one judgement measures: the number of differences beyond the release, which must be 0."""
    drifted = judgement.drifted
    lines = [f.line() for f in drifted[:SHOWN]]
    if len(drifted) > SHOWN:
        lines.append(f"[... {len(drifted) - SHOWN} more: `bluegreen diff` lists them all]")
    return Measurement(
        check=name,
        kind=DriftCheck.kind,
        target=target,
        values={"drift": len(drifted), "release": len(judgement.findings) - len(drifted)},
        thresholds=(Threshold(metric="drift", op="==", limit=0),),
        detail="\n".join([*lines, judgement.summary()]),
        at=at,
    )


class DriftCheck:
    kind: ClassVar[str] = "drift"
    once: ClassVar[bool] = False

    def __init__(self, config: DriftCheckConfig, *, kube: Client) -> None:
        self.config = config
        self.name = config.name
        self._kube = kube

    def close(self) -> None:
        pass  # the shared client is the caller's

    def measure(self, target: Target) -> Measurement:
        app = target.app
        shown = f"{app.deployment(target.baseline)} and {app.deployment(target.color)} in {app.namespace}"
        at = time.time()
        try:
            judgement = driftread.judged(self._kube, app)
        except NotFoundError as error:
            # One colour only: nothing to compare, which is no evidence either way.
            return Measurement(
                check=self.name, kind=self.kind, target=shown, inconclusive=error.message, at=at
            )
        except ClusterError as error:  # forbidden, unreachable: a measurement error, never a pass
            return Measurement(
                check=self.name,
                kind=self.kind,
                target=shown,
                error=f"cannot read the colours: {error.message}",
                at=at,
            )
        return measurement(self.name, judgement, target=shown, at=at)
