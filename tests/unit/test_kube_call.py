"""kube.call on an answer cut short mid-body (found by the fault suite: Toxiproxy's limit_data closed
the connection inside a Lease's JSON, and the CLI crashed with a traceback)."""

from __future__ import annotations

import msgspec
import pytest

from bluegreen import kube
from bluegreen.errors import UnreachableError


def truncated() -> None:
    msgspec.json.decode(b'{"metadata": {"name": "bluegreen-sh')


def test_a_read_whose_answer_was_cut_short_is_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "BACKOFF", 0.0)
    calls: list[int] = []

    def read() -> str:
        calls.append(1)
        if len(calls) == 1:
            truncated()
        return "the Lease"

    assert kube.call("reading the Lease", read) == "the Lease"
    assert len(calls) == 2


def test_a_write_whose_answer_was_cut_short_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube, "BACKOFF", 0.0)
    sent: list[str] = []

    def write() -> None:
        sent.append("PUT")
        truncated()

    with pytest.raises(UnreachableError, match="answer was cut short"):
        kube.call("taking the Lease", write, idempotent=False, guard=False)
    assert sent == ["PUT"]  # it may have landed: never sent twice
