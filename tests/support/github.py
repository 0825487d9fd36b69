"""Reading back what the Action wrote for the runner: the output file and the workflow commands."""

from __future__ import annotations

import re
from pathlib import Path

_HEREDOC = re.compile(r"^([^<\n]+)<<(\S+)\n(.*?)\n\2$", re.S | re.M)
_COMMAND = re.compile(r"^::(\w[\w-]*)(?: ([^:]*))?::(.*)$")


def unescape(text: str) -> str:
    return (
        text.replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def read_outputs(path: Path) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it (name<<DELIMITER ... DELIMITER)."""
    return {name: value for name, _, value in _HEREDOC.findall(path.read_text())}


def commands(stdout: str, name: str) -> list[tuple[dict[str, str], str]]:
    """Each `::name props::message` line as (properties, message), unescaped."""
    found = []
    for line in stdout.splitlines():
        match = _COMMAND.match(line)
        if match and match.group(1) == name:
            props = dict(p.split("=", 1) for p in (match.group(2) or "").split(",") if "=" in p)
            found.append(({k: unescape(v) for k, v in props.items()}, unescape(match.group(3))))
    return found
