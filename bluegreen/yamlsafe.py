"""Safe YAML: PyYAML's SafeLoader without aliases and with bounded nesting (bluegreen/validate.py
states the bounds). A module of its own so that only what reads YAML imports PyYAML."""

from __future__ import annotations

from typing import Any

import yaml

from bluegreen.validate import MAX_DEPTH, MAX_YAML_BYTES


class YamlLimitError(yaml.MarkedYAMLError):
    """A document outside our limits: an alias, too deep."""


class BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases (no "billion laughs") and nesting deeper than MAX_DEPTH.

    PyYAML composes nodes recursively, so a deep document would end in RecursionError; counting
    depth here stops it after MAX_DEPTH levels, long before that.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlLimitError(
                problem="aliases (*name) are not allowed in this file: write the value out",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(
                    problem=f"nested more than {MAX_DEPTH} levels deep",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load(text: str, loader: type[BoundedLoader] = BoundedLoader) -> Any:
    """One YAML document through `loader`: yaml.YAMLError for anything refused."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlLimitError(problem=f"longer than {MAX_YAML_BYTES // 1024} KiB")
    return yaml.load(text, Loader=loader)  # noqa: S506  # a SafeLoader subclass
