"""The real services tests use: Redis and PostgreSQL on 127.0.0.1 (this machine kind runs
both). An unreachable service skips the tests that need it, except in CI (`CI=true`), where
it fails them: a backend must never pass CI untested."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_USERS = ("postgres", "root")


def unavailable(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


def redis_up() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def find_pg_url() -> str | None:
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


def require_redis() -> str:
    if not redis_up():
        unavailable(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}")
    return REDIS_URL


def require_pg() -> str:
    url = find_pg_url()
    if url is None:
        unavailable(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (db test, trust auth "
                    f"as {' or '.join(PG_USERS)})")
    assert url is not None
    return url


async def drop_redis_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
