"""`open_chunk_store`: the knowledge base's store, chosen by `rag.store`.

`auto` follows `storage.database`: PostgreSQL when the gateway's database is (replicas then
share collections and see each other's ingestions), else SQLite in `rag.db` under the state
directory. Like `open_stores`, nothing connects or touches the disk here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gatewise.errors import ConfigError

if TYPE_CHECKING:
    from gatewise.config.loader import ResolvedConfig
    from gatewise.storage.chunks import ChunkStore
    from gatewise.storage.postgres import PgDatabase


def chunk_store_kind(config: ResolvedConfig) -> str:
    kind: str = config.config.rag.store
    if kind == "auto":
        kind = "postgres" if config.config.storage.database == "postgres" else "sqlite"
    return kind


def open_chunk_store(config: ResolvedConfig, *, pg: PgDatabase | None = None,
                     pg_schema: str | None = None) -> ChunkStore:
    """The store `rag.store` asks for. `pg`: a pool to share (the gateway's); `pg_schema`
    overrides `storage.postgres_schema` (tests use one of their own)."""
    kind = chunk_store_kind(config)
    if kind == "memory":
        from gatewise.storage.chunks_memory import MemoryChunkStore

        return MemoryChunkStore()
    if kind == "postgres":
        from gatewise.storage.chunks_postgres import PostgresChunkStore

        if pg is not None:
            return PostgresChunkStore(pg)
        if not config.postgres_url:
            raise ConfigError("rag store 'postgres' needs 'storage.postgres_url'",
                              file=config.file, path="storage.postgres_url")
        return PostgresChunkStore(config.postgres_url,
                                  schema=pg_schema or config.config.storage.postgres_schema)
    from gatewise.storage.chunks_sqlite import SQLiteChunkStore

    return SQLiteChunkStore(Path(config.state_dir) / "rag.db")
