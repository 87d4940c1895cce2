"""`PostgresPubSub`: the `PubSub` seam over PostgreSQL LISTEN/NOTIFY, so replicas that share a
PostgreSQL store and no Redis still tell each other at once that a cache entry was invalidated
or a key revoked (otherwise each learns only when its own copy expires).

- **The loop is `storage.pubsub`'s** (`ListenLoop`): reconnect with backoff, `resumed=True`
  after a gap (NOTIFY keeps nothing for a session that was not listening), start-up never
  blocked. This module only says how to connect and listen.
- **One dedicated session per subscription.** LISTEN is session state: a pooled connection
  would carry it to whoever borrows it next, and the pool may recycle it under us. Autocommit,
  since a session hears notifications only between transactions. TCP keepalives bound how long
  a half-open connection (a peer gone without a reset) passes for a live one.
- **No SQL built from a channel name.** Publishing is `SELECT pg_notify(%s, %s)`, the channel a
  bound parameter; LISTEN takes only an identifier, quoted by `psycopg.sql.Identifier`. A
  channel must fit an identifier (63 bytes): LISTEN would silently truncate a longer one while
  `pg_notify` refuses it, so the two would never meet. A longer name (a long `redis_prefix`)
  is shortened the same way on every replica: its head and a hash of the whole name.
- **Payloads over 7999 bytes fail clearly** (`MessageTooLargeError`, before anything is sent)
  rather than being chunked: delivery is at most once, so a message sent in parts can arrive in
  part (a listener reconnecting between two parts), and every reader would need a reassembly
  protocol with a failure mode of its own. The one producer of long messages, the near cache's
  key lists, splits them at key boundaries into messages that each stand alone (`cache/near.py`).
- A listening backend that the server ends (`pg_terminate_backend`, a restart, a failover)
  shows up as an `OperationalError` on the next read: the loop reconnects.

psycopg is imported only when a `PostgresPubSub` is built (the `postgres` extra).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import deque
from typing import TYPE_CHECKING, Any

from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.postgres import PgDatabase
from gatewise.storage.pubsub import Listener, ListeningPubSub

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more (BLCKSZ - NAMEDATALEN - 128).
MAX_PAYLOAD_BYTES = 7999
# A channel is an identifier: NAMEDATALEN - 1 bytes.
MAX_CHANNEL_BYTES = 63


class MessageTooLargeError(ValueError):
    """A message longer than NOTIFY carries; nothing was sent."""


def pg_channel(channel: str) -> str:
    """`channel` as a PostgreSQL channel name: as it is when it fits, else its head and a hash
    of the whole (so two long names with one head stay apart); `ValueError` if empty or NUL."""
    raw = channel.encode()
    if not raw or b"\x00" in raw:
        raise ValueError("a PostgreSQL channel name is not empty and has no NUL")
    if len(raw) <= MAX_CHANNEL_BYTES:
        return channel
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[:MAX_CHANNEL_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}#{digest}"


class _PgListener:
    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn
        self._pending: deque[str] = deque()

    async def get(self, wait_s: float) -> str | None:
        # The generator is always run to its end: one packet may carry several notifications
        # past `stop_after`, and a generator left open keeps the connection's lock and loses
        # the rest of its batch.
        if not self._pending:
            async for note in self._conn.notifies(timeout=wait_s, stop_after=1):
                self._pending.append(note.payload)
        return self._pending.popleft() if self._pending else None

    async def aclose(self) -> None:
        await self._conn.close()


class PostgresPubSub(ListeningPubSub):
    """`PubSub` over LISTEN/NOTIFY. `db` is the stores' `PgDatabase` (publishes borrow its pool,
    which stays open here) or a URL (then a small pool of its own, closed by `aclose`)."""

    def __init__(self, db: PgDatabase | str, *, connect_timeout_s: float = 1.0,
                 op_timeout_s: float = 2.0, keepalive_idle_s: int = 10) -> None:
        import psycopg

        super().__init__()
        self._owns_db = isinstance(db, str)
        self._db = PgDatabase(db, min_size=1, max_size=2) if isinstance(db, str) else db
        self._connect_timeout_s = connect_timeout_s
        self._op_timeout_s = op_timeout_s
        self._keepalive_idle_s = keepalive_idle_s
        self.errors = (psycopg.Error, OSError, TimeoutError)

    async def publish(self, channel: str, message: str) -> None:
        name = pg_channel(channel)
        size = len(message.encode())
        if size > MAX_PAYLOAD_BYTES or "\x00" in message:
            raise MessageTooLargeError(
                f"a message on {channel!r} has {size} bytes (or a NUL); PostgreSQL NOTIFY "
                f"carries at most {MAX_PAYLOAD_BYTES} bytes of text")
        try:
            async with asyncio.timeout(self._connect_timeout_s + self._op_timeout_s), \
                    self._db.session() as conn:
                await conn.execute("SELECT pg_notify(%s, %s)", (name, message))
        except self.errors as exc:
            raise StoreUnavailableError(f"publish on {channel!r} failed: {type(exc).__name__}") \
                from exc

    def _channel_name(self, channel: str) -> str:
        return pg_channel(channel)

    async def _listen(self, channel: str) -> Listener:
        import psycopg
        from psycopg import sql

        async with asyncio.timeout(self._connect_timeout_s + self._op_timeout_s):
            conn = await psycopg.AsyncConnection.connect(
                self._db.url, autocommit=True, application_name="gatewise-pubsub",
                # libpq counts whole seconds and takes less than 2 as 2
                connect_timeout=max(2, math.ceil(self._connect_timeout_s)),
                keepalives=1, keepalives_idle=self._keepalive_idle_s,
                keepalives_interval=max(1, self._keepalive_idle_s // 3), keepalives_count=3)
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            except BaseException:
                await conn.close()
                raise
        return _PgListener(conn)

    async def aclose(self) -> None:
        await self._close_subscriptions()
        if self._owns_db:
            await self._db.close()
