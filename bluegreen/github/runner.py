"""The runner's file and workflow-command protocol, in a few lines of our own.

Outputs go to $GITHUB_OUTPUT and the job summary to $GITHUB_STEP_SUMMARY (files the runner reads
after the step); annotations, masks and log groups are `::command::` lines on stdout. Outside a
runner (no such variables) outputs and summary are simply not written.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO

Level = Literal["error", "warning", "notice"]


@dataclass(frozen=True, kw_only=True)
class Annotation:
    """One `::error`/`::warning`/`::notice` line; also a check-run annotation when it names a file."""

    level: Level
    title: str
    message: str
    file: str = ""
    line: int = 0


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, properties: Mapping[str, str] | None = None) -> str:
    props = ",".join(f"{key}={escape_property(value)}" for key, value in (properties or {}).items() if value)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


class Runner:
    """Talks to the Actions runner through `env` (os.environ by default) and `out` (stdout)."""

    def __init__(self, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> None:
        self.env = os.environ if env is None else env
        self.out = out or sys.stdout

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def mask(self, secret: str) -> None:
        # The runner masks line by line: a multi-line secret is masked as its lines.
        for part in secret.splitlines():
            if len(part.strip()) >= 4:
                self.line(command("add-mask", part.strip()))

    def annotate(self, note: Annotation) -> None:
        props = {"title": note.title, "file": note.file, "line": str(note.line) if note.line else ""}
        self.line(command(note.level, note.message, props))

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.line(command("group", title))
        try:
            yield
        finally:
            self.line("::endgroup::")

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if not path:
            return
        with Path(path).open("a", encoding="utf-8") as file:
            for name, value in outputs.items():
                # The heredoc form takes any value; a random delimiter cannot occur inside it.
                delimiter = f"ghadelimiter_{secrets.token_hex(8)}"
                file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")

    def summary(self, markdown: str) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not path:
            return
        with Path(path).open("a", encoding="utf-8") as file:
            file.write(markdown.rstrip("\n") + "\n")
