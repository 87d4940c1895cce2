"""Service fixtures for the storage suite: a real Redis and a real PostgreSQL on 127.0.0.1.

Each test gets its own Redis key prefix (`redis_prefix`, in the root conftest) and its own
PostgreSQL schema, removed afterwards. An unreachable service skips the tests that need it,
except in CI (`CI=true`), where they fail. Memory and SQLite parameters never ask for a
service, so they always run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
async def pg_schema(pg_url: str) -> AsyncIterator[str]:
    """A schema of this test's own, dropped (with everything in it) afterwards."""
    import psycopg

    schema = f"gw_test_{os.getpid()}_{os.urandom(4).hex()}"
    yield schema
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def backend_details(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """(name, details) for the backend in `request.param`, asking for a service only when
    it is needed: {"path"} for sqlite, {"url", "prefix"} for redis, {"url", "schema"} for
    postgres. Called from sync fixtures, so async service fixtures can still be set up."""
    name: str = request.param
    if name == "sqlite":
        return name, {"path": tmp_path}
    if name in ("redis", "redis-lean"):
        return name, {"url": request.getfixturevalue("redis_url"),
                      "prefix": request.getfixturevalue("redis_prefix")}
    if name == "postgres":
        return name, {"url": request.getfixturevalue("pg_url"),
                      "schema": request.getfixturevalue("pg_schema")}
    return name, {}
