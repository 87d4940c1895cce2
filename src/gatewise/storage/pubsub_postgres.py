"""`PostgresPubSub`: the `PubSub` seam over PostgreSQL LISTEN/NOTIFY, so replicas that share a
PostgreSQL store and no Redis still tell each other at once that a cache entry was invalidated
or a key revoked (otherwise each learns only when its own copy expires).

- **The loop is `storage.pubsub`'s** (`ListenLoop`): reconnect with backoff, `resumed=True`
  after a gap (NOTIFY keeps nothing for a session that was not listening), start-up never
  blocked. This module only says how to connect and listen.
- **One dedicated session per replica, shared by its subscriptions** (`ListenHub`). LISTEN is
  session state: a pooled connection would carry it to whoever borrows it next, and the pool
  may recycle it under us. The breakers, the near cache and key revocation each subscribe; on
  a session each they took three of the server's connections per replica. One reader task per
  session hands each notification to the subscriptions of its channel; a lost session fails
  every subscription on it, each loop reconnects, and the first to ask opens the next session.
  psycopg serialises a connection's operations and the reader holds the connection while it
  waits, so a new LISTEN queues for the connection and then wakes the reader with a NOTIFY on
  the session's own private channel (sent through the pool): the reader's wait ends at once
  and the LISTEN runs next, in a couple of milliseconds. A subscription that is not listening
  yet loses what is published meanwhile, so this wait is kept short, not bounded by `poll_s`.
  Autocommit, since a session hears notifications only between transactions. TCP keepalives
  bound how long a half-open connection (a peer gone without a reset) passes for a live one.
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
import contextlib
import hashlib
import math
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.postgres import PgDatabase
from gatewise.storage.pubsub import Listener, ListeningPubSub
from gatewise.storage.tasks import stop_task

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


class _HubListener:
    """One subscription's view of a shared session: its channel's notifications, queued by
    the session's reader."""

    def __init__(self, session: _Session, channel: str) -> None:
        self.session = session
        self.channel = channel
        self.pending: deque[str] = deque()
        self.wake = asyncio.Event()

    async def get(self, wait_s: float) -> str | None:
        if not self.pending and self.session.failed is None:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self.wake.wait()
        if self.pending:
            return self.pending.popleft()
        if self.session.failed is not None:
            raise self.session.failed
        return None

    async def aclose(self) -> None:
        await self.session.remove(self)


class _Session:
    """A LISTEN session and its reader task (see the module docstring)."""

    def __init__(self, conn: AsyncConnection[Any], wake: str, *, db: PgDatabase,
                 poll_s: float, op_timeout_s: float,
                 errors: tuple[type[BaseException], ...]) -> None:
        self.conn = conn
        self._wake = wake
        self._db = db
        self.failed: BaseException | None = None
        self._listeners: list[_HubListener] = []
        self._poll_s = poll_s
        self._op_timeout_s = op_timeout_s
        self._errors = errors
        self._reader = asyncio.get_running_loop().create_task(self._read(),
                                                              name="gatewise-pubsub-pg-reader")

    async def _read(self) -> None:
        try:
            while True:
                # Run to its end every time: a generator left open keeps the connection's
                # lock (a LISTEN waiting behind it would never run).
                # `stop_after`: a wake-up (or any message) ends the wait, so a queued LISTEN
                # gets the connection; the rest of that packet's notifications still come.
                async for note in self.conn.notifies(timeout=self._poll_s, stop_after=1):
                    for listener in self._listeners:
                        if listener.channel == note.channel:
                            listener.pending.append(note.payload)
                            listener.wake.set()
        except self._errors as exc:
            self._fail(exc)
        except Exception as exc:  # never a silent end: every subscription reconnects
            self._fail(StoreUnavailableError(f"LISTEN reader failed: {type(exc).__name__}"))

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
        for listener in self._listeners:
            listener.wake.set()

    async def add(self, channel: str) -> _HubListener:
        listener = _HubListener(self, channel)
        if not any(other.channel == channel for other in self._listeners):
            listen = asyncio.ensure_future(self._listen(channel))
            await asyncio.sleep(0)  # queued for the connection before the reader wakes
            if not listen.done():
                await self._wake_reader()
            try:
                await listen
            except self._errors as exc:
                self._fail(exc)
                raise
        self._listeners.append(listener)
        return listener

    async def _listen(self, channel: str) -> None:
        from psycopg import sql

        async with asyncio.timeout(self._poll_s + self._op_timeout_s):
            await self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    async def _wake_reader(self) -> None:
        """Ends the reader's wait early (best effort: else it ends within `poll_s`)."""
        with contextlib.suppress(*self._errors):
            async with asyncio.timeout(self._op_timeout_s), self._db.session() as conn:
                await conn.execute("SELECT pg_notify(%s, '')", (self._wake,))

    async def remove(self, listener: _HubListener) -> None:
        if listener not in self._listeners:
            return
        self._listeners.remove(listener)
        if self.failed is None and not any(o.channel == listener.channel for o in self._listeners):
            from psycopg import sql

            # Best effort: a channel heard by nobody only costs dropped notifications.
            with contextlib.suppress(*self._errors):
                async with asyncio.timeout(self._poll_s + self._op_timeout_s):
                    await self.conn.execute(
                        sql.SQL("UNLISTEN {}").format(sql.Identifier(listener.channel)))

    async def aclose(self) -> None:
        self._fail(StoreUnavailableError("the LISTEN session was closed"))
        await stop_task(self._reader, "postgres pubsub reader")
        with contextlib.suppress(*self._errors):
            await self.conn.close()


class ListenHub:
    """The one LISTEN session of a replica, shared by every `PostgresPubSub` built on it
    (`Stores.new_pubsub`); opened on the first subscription, reopened after a loss by the
    first subscription that reconnects, closed by its owner."""

    def __init__(self, db: PgDatabase, *, connect_timeout_s: float = 1.0,
                 op_timeout_s: float = 2.0, keepalive_idle_s: int = 10, poll_s: float = 0.25,
                 application_name: str = "gatewise-pubsub") -> None:
        """`db`: the pool that sends the reader's wake-ups (the session itself is not pooled)."""
        import psycopg

        self._db = db
        self.url = db.url
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error, OSError, TimeoutError)
        self._connect_timeout_s = connect_timeout_s
        self._op_timeout_s = op_timeout_s
        self._keepalive_idle_s = keepalive_idle_s
        self._poll_s = poll_s
        self._application_name = application_name
        self._session: _Session | None = None
        self._lock: asyncio.Lock | None = None
        self._closed = False

    async def listen(self, channel: str) -> Listener:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._closed:
                raise StoreUnavailableError("the LISTEN hub is closed")
            session = self._session
            if session is None or session.failed is not None:
                if session is not None:
                    await session.aclose()
                session = self._session = await self._open()
        return await session.add(channel)

    async def _open(self) -> _Session:
        import psycopg
        from psycopg import sql

        async with asyncio.timeout(self._connect_timeout_s + self._op_timeout_s):
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, application_name=self._application_name,
                # libpq counts whole seconds and takes less than 2 as 2
                connect_timeout=max(2, math.ceil(self._connect_timeout_s)),
                keepalives=1, keepalives_idle=self._keepalive_idle_s,
                keepalives_interval=max(1, self._keepalive_idle_s // 3), keepalives_count=3)
            wake = f"gatewise-wake-{os.urandom(8).hex()}"
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(wake)))
            except BaseException:
                await conn.close()
                raise
        return _Session(conn, wake, db=self._db, poll_s=self._poll_s,
                        op_timeout_s=self._op_timeout_s, errors=self.errors)

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.aclose()


class PostgresPubSub(ListeningPubSub):
    """`PubSub` over LISTEN/NOTIFY. `db` is the stores' `PgDatabase` (publishes borrow its pool,
    which stays open here) or a URL (then a small pool of its own, closed by `aclose`). `hub`:
    the replica's shared LISTEN session (`Stores.new_pubsub` passes one; its owner closes it),
    else one of its own, closed by `aclose`."""

    def __init__(self, db: PgDatabase | str, *, hub: ListenHub | None = None,
                 connect_timeout_s: float = 1.0, op_timeout_s: float = 2.0,
                 keepalive_idle_s: int = 10) -> None:
        super().__init__()
        self._owns_db = isinstance(db, str)
        self._db = PgDatabase(db, min_size=1, max_size=2) if isinstance(db, str) else db
        self._connect_timeout_s = connect_timeout_s
        self._op_timeout_s = op_timeout_s
        self._owns_hub = hub is None
        self._hub = hub if hub is not None else ListenHub(
            self._db, connect_timeout_s=connect_timeout_s, op_timeout_s=op_timeout_s,
            keepalive_idle_s=keepalive_idle_s)
        self.errors = self._hub.errors

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
        return await self._hub.listen(channel)

    async def aclose(self) -> None:
        await self._close_subscriptions()
        if self._owns_hub:
            await self._hub.aclose()
        if self._owns_db:
            await self._db.close()
