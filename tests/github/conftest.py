from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prism import Recorder, prism


@pytest.fixture(scope="session")
def prism_server() -> Iterator[Recorder]:
    with prism() as recorder:
        yield recorder


@pytest.fixture
def github_api(prism_server: Recorder) -> Recorder:
    """The session's Prism with an empty record and no refusal, for one test."""
    prism_server.exchanges.clear()
    prism_server.refuse = None
    return prism_server
