"""`open_stores` picks each backend from `storage:` and does no I/O until first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gatewise.config.loader import ResolvedConfig, parse_config, resolve_config
from gatewise.storage.base import Reservation, TeamRecord, UsageRecord
from gatewise.storage.factory import open_stores


def _config(storage: dict[str, Any], env: dict[str, str] | None = None) -> ResolvedConfig:
    cfg, warnings = parse_config({"models": {"a": [{"model": "openai/gpt-4o", "api_key": "x"}]},
                                  "storage": storage})
    return resolve_config(cfg, None, env or {}, warnings)


async def _exercise(stores: Any) -> None:
    """One real operation per store: each backend answers."""
    await stores.kv.set("t:k", b"v")
    assert await stores.kv.get("t:k") == b"v"
    r = await stores.counters.reserve("t:b", 2, limit=5)
    assert isinstance(r, Reservation) and await stores.counters.settle(r, 1) == 1
    assert (await stores.windows.hit("t:rpm", 1, limit=1, window_s=60)).allowed
    assert await stores.ledger.append([UsageRecord("r1", 1.0, "t", "a", "d", "success")]) == 1
    await stores.governance.put_team(TeamRecord("t1", "One"))
    assert await stores.governance.get_team("t1") == TeamRecord("t1", "One")
    await stores.conversations.append("t", "c", [{"role": "user", "content": "hi"}])
    assert len(await stores.conversations.history("t", "c")) == 1


async def test_memory_database_is_all_in_process() -> None:
    stores = open_stores(_config({"database": "memory"}))
    names = [type(s).__name__ for s in (stores.kv, stores.counters, stores.windows, stores.ledger,
                                        stores.governance, stores.conversations)]
    assert names == ["MemoryKV", "MemoryCounters", "MemoryWindow", "MemoryLedger",
                     "MemoryGovernance", "MemoryConversations"]
    await _exercise(stores)
    await stores.aclose()


async def test_sqlite_opens_files_under_state_dir_only_on_first_use(tmp_path: Path) -> None:
    state = tmp_path / "state"
    stores = open_stores(_config({"database": "sqlite", "state_dir": str(state)}))
    assert type(stores.counters).__name__ == "SQLiteCounters"
    assert type(stores.windows).__name__ == "SQLiteWindow"
    assert not state.exists()  # construction touched nothing
    await _exercise(stores)
    assert (state / "gatewise.db").exists() and (state / "counters.db").exists()
    await stores.aclose()


async def test_counters_can_stay_in_memory_with_a_sqlite_database(tmp_path: Path) -> None:
    stores = open_stores(_config({"database": "sqlite", "counters": "memory",
                                  "state_dir": str(tmp_path)}))
    assert type(stores.counters).__name__ == "MemoryCounters"
    assert type(stores.governance).__name__ == "SQLiteGovernance"
    await stores.aclose()


async def test_postgres_with_redis_shares_one_pool_and_one_client(
        pg_url: str, pg_schema: str, redis_url: str, redis_prefix: str) -> None:
    stores = open_stores(_config({"database": "postgres", "postgres_url": pg_url,
                                  "redis_url": redis_url}),
                         pg_schema=pg_schema, redis_prefix=redis_prefix)
    names = [type(s).__name__ for s in (stores.kv, stores.counters, stores.windows, stores.ledger,
                                        stores.governance, stores.conversations)]
    # With Redis, conversations live there (they expire when idle): `memory.store: auto`.
    assert names == ["RedisKV", "RedisCounters", "RedisWindow", "PostgresLedger",
                     "PostgresGovernance", "RedisConversations"]
    await _exercise(stores)
    await stores.aclose()


async def test_postgres_without_redis_keeps_counters_and_windows_in_postgres(
        pg_url: str, pg_schema: str) -> None:
    stores = open_stores(_config({"database": "postgres", "postgres_url": pg_url}),
                         pg_schema=pg_schema)
    assert type(stores.counters).__name__ == "PostgresCounters"
    assert type(stores.windows).__name__ == "PostgresWindow"
    assert type(stores.kv).__name__ == "PostgresKV"
    await _exercise(stores)
    await stores.aclose()
