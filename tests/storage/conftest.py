"""Service fixtures for the storage suite: a real Redis and a real PostgreSQL on 127.0.0.1.

Each test gets its own Redis key prefix and its own PostgreSQL schema, removed afterwards.
An unreachable service skips the tests that need it, except in CI (`CI=true`), where they
fail. Memory and SQLite parameters never ask for a service, so they always run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_USERS = ("postgres", "root")


def _unavailable(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


def _redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _pg_url() -> str | None:
    """The first URL whose user the server lets in (trust auth): `postgres`, else `root`."""
    import psycopg

    for user in PG_USERS:
        url = f"postgresql://{user}@{PG_HOST}:{PG_PORT}/test"
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.Error:
            continue
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _redis_up():
        _unavailable(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = _pg_url()
    if url is None:
        _unavailable(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (db test, trust auth "
                     f"as {' or '.join(PG_USERS)})")
    assert url is not None
    return url


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    import redis.asyncio as aioredis

    p = f"gatewise-test:{os.getpid()}:{os.urandom(4).hex()}:"
    yield p
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{p}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


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
