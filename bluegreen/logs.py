"""Structured logs: one JSON object a line (docs/schemas/log-line.schema.json), for log pipelines.

`--log-format json` or BLUEGREEN_LOG_FORMAT=json; text stays the default. Every line carries the
release's correlation ID (bluegreen.correlation), so one ID finds it in the pipeline.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
ENV = "BLUEGREEN_LOG_FORMAT"


def log_format(text: str) -> str:
    """An argparse `type`: the value of --log-format or BLUEGREEN_LOG_FORMAT, checked."""
    value = text.strip().lower() or "text"
    if value not in FORMATS:
        raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(FORMATS)} (--log-format, ${ENV})")
    return value


class JsonLog:
    """Writes log lines with the fields every line shares; `phase` follows a release's stages."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        app: str,
        namespace: str,
        phase: str,
        correlation_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.write = write
        self.app = app
        self.namespace = namespace
        self.phase = phase
        self.current_stage = ""
        self.correlation_id = correlation_id
        self.clock = clock

    def line(self, level: str, message: str, *, colour: str | None = None, **extra: Any) -> None:
        record: dict[str, Any] = {
            "time": self.clock().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "phase": f"{self.phase}/{self.current_stage}" if self.current_stage else self.phase,
            "app": self.app,
            "namespace": self.namespace,
            "colour": colour,
            "message": message,
            "correlation_id": self.correlation_id,
            **extra,
        }
        self.write(json.dumps(record, separators=(",", ":"), default=str))


class JsonReporter(JsonLog):
    """The engine's Reporter (progress, warnings, stages) as JSON lines."""

    def progress(self, message: str) -> None:
        self.line("info", message)

    def warning(self, message: str) -> None:
        self.line("warning", message)

    def stage(self, name: str) -> None:
        self.current_stage = name
        self.line("info", f"stage {name}")

    def outcome(
        self,
        *,
        result: str,
        colour: str | None,
        summary: str,
        exit_code: int,
        remedy: str = "",
    ) -> None:
        """The last line: what the phase ended in (an error's line carries its remedy)."""
        self.current_stage = ""
        level = "error" if exit_code not in (0, 1) else "warning" if exit_code == 1 else "info"
        extra: dict[str, Any] = {"result": result, "exit_code": exit_code}
        if remedy:
            extra["remedy"] = remedy
        self.line(level, summary, colour=colour, **extra)
