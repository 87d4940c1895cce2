"""Shared fixtures: fake upstreams over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.server import FakeServer


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[FakeServer]:
    from tests.fakes.openai_fake import make_app

    with FakeServer(make_app) as srv:
        yield srv
