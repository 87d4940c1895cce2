"""Shared fixtures: fake upstreams over real HTTP on 127.0.0.1, one per wire format."""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.server import FakeServer
from tests.fakes.services import drop_redis_prefix, require_pg, require_redis


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Gateways keep their SQLite state and ledger journal here, never in the home folder."""
    old = os.environ.get("GATEWISE_STATE_DIR")
    os.environ["GATEWISE_STATE_DIR"] = str(tmp_path_factory.mktemp("gatewise-state"))
    yield
    if old is None:
        os.environ.pop("GATEWISE_STATE_DIR", None)
    else:
        os.environ["GATEWISE_STATE_DIR"] = old


def _fake(module: str) -> Iterator[FakeServer]:
    make_app = importlib.import_module(f"tests.fakes.{module}").make_app
    with FakeServer(make_app) as srv:
        yield srv


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[FakeServer]:
    yield from _fake("openai_fake")


@pytest.fixture(scope="session")
def anthropic_fake() -> Iterator[FakeServer]:
    yield from _fake("anthropic_fake")


@pytest.fixture(scope="session")
def gemini_fake() -> Iterator[FakeServer]:
    yield from _fake("gemini_fake")


@pytest.fixture(scope="session")
def ollama_fake() -> Iterator[FakeServer]:
    yield from _fake("ollama_fake")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A real Redis; skips without one, fails in CI (`tests.fakes.services`)."""
    return require_redis()


@pytest.fixture(scope="session")
def pg_url() -> str:
    return require_pg()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    p = f"gatewise-test:{os.getpid()}:{os.urandom(4).hex()}:"
    yield p
    await drop_redis_prefix(redis_url, p)
