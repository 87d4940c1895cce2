"""The fake Ollama host for this folder's tests, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import FakeServer


@pytest.fixture(scope="session")
def ollama_fake() -> Iterator[FakeServer]:
    from tests.fakes.ollama_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv
