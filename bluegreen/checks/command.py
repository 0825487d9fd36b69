"""`command`: a smoke test run as an argument list (never through a shell); passes on exit 0.

Arguments may name {{color}}, {{namespace}}, {{app}} and {{window}}; the environment also gets
BLUEGREEN_COLOR, BLUEGREEN_NAMESPACE, BLUEGREEN_APP and BLUEGREEN_SERVICE. The tail of its combined
output goes into the report. A command that cannot start is ERROR; one that runs past its timeout
is killed and FAILED.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import ClassVar

from bluegreen.checks.base import Measurement, Target, Threshold, tail
from bluegreen.config import CommandCheckConfig, format_duration, render


class CommandCheck:
    kind: ClassVar[str] = "command"
    once: ClassVar[bool] = True

    def __init__(self, config: CommandCheckConfig) -> None:
        self.config = config
        self.name = config.name

    def close(self) -> None:
        pass

    def measure(self, target: Target) -> Measurement:
        c = self.config
        argv = [render(arg, target.variables()) for arg in c.command]
        env = {
            **os.environ,
            "BLUEGREEN_COLOR": str(target.color),
            "BLUEGREEN_NAMESPACE": target.app.namespace,
            "BLUEGREEN_APP": target.app.name,
            "BLUEGREEN_SERVICE": target.service,
        }
        thresholds = (
            Threshold(metric="finished", op="==", limit=True),
            Threshold(metric="exit_code", op="==", limit=0),
        )
        at = time.time()
        shown = " ".join(argv)
        try:
            done = subprocess.run(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=c.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            output = expired.output.decode(errors="replace") if expired.output else ""
            return Measurement(
                check=c.name,
                kind=self.kind,
                target=shown,
                values={"finished": False},
                thresholds=thresholds[:1],
                detail=f"killed after {format_duration(c.timeout)}\n{tail(output, c.tail_lines)}".rstrip(),
                at=at,
            )
        except OSError as error:
            return Measurement(
                check=c.name, kind=self.kind, target=shown, error=f"cannot run {argv[0]}: {error}", at=at
            )
        output = done.stdout.decode(errors="replace")
        return Measurement(
            check=c.name,
            kind=self.kind,
            target=shown,
            values={"finished": True, "exit_code": done.returncode},
            thresholds=thresholds,
            detail=tail(output, c.tail_lines) or "(no output)",
            at=at,
        )
