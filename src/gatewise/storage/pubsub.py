"""Pub/sub behind the `PubSub` protocol: in process (`MemoryPubSub`) and across replicas
(`RedisPubSub` here, `PostgresPubSub` in `pubsub_postgres.py` for deployments without Redis).

Why one module owns the reconnect loop (`ListenLoop`): key revocation, the near cache and
shared breakers all need "listen to a channel, survive the backend going away, resync after a
gap", and each used to carry its own copy of that loop. The loop here is the only one; a
backend gives it a `listen(channel)` that connects and subscribes (a `Listener`), nothing more.
What the loop learnt:

- after every re-subscription the subscriber hears `on_connect(resumed=True)`, because messages
  published while it was away are lost for good (neither Redis pub/sub nor PostgreSQL NOTIFY
  keeps anything for an absent listener);
- start-up never blocks on the backend: the subscription is "ready" after the first success or
  the first failure, and keeps retrying with backoff (0.2 s doubling to 5 s);
- redis-py can swallow a cancel that lands inside one of its reads (the read just returns, or
  fails with its own timeout), so the loop also asks whether its task is being cancelled, and
  `aclose()` cancels again until the task really ends (bounded, so a shutdown never hangs).

redis-py is imported only when a `RedisPubSub` is built (the `redis` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.tasks import stop_task

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("gatewise.storage.pubsub")

_MIN_BACKOFF_S = 0.2
_MAX_BACKOFF_S = 5.0
_IDLE_WAIT_S = 1.0


def _text(data: Any) -> str:
    return data.decode() if isinstance(data, bytes) else str(data)


class _MemorySubscription:
    def __init__(self, owner: MemoryPubSub, channel: str, on_message: Callable[[str], None],
                 on_connect: Callable[[bool], Awaitable[None]] | None) -> None:
        self._owner = owner
        self.channel = channel
        self.on_message = on_message
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if on_connect is None:
            self._ready.set()
        else:
            self._task = asyncio.get_running_loop().create_task(self._connect(on_connect))

    async def _connect(self, on_connect: Callable[[bool], Awaitable[None]]) -> None:
        try:
            await on_connect(False)
        finally:
            self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def aclose(self) -> None:
        self._owner._drop(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class MemoryPubSub:
    """`PubSub` for a single process: `publish` hands the message to every subscriber's
    `on_message` before it returns. Never loses a message, so `on_connect` runs once, with
    `resumed=False`, and `on_tick` never runs (there is nothing to resync with)."""

    def __init__(self) -> None:
        self._subs: dict[str, list[_MemorySubscription]] = {}

    async def publish(self, channel: str, message: str) -> None:
        for sub in list(self._subs.get(channel, ())):
            sub.on_message(message)

    def subscribe(self, channel: str, on_message: Callable[[str], None], *,
                  on_connect: Callable[[bool], Awaitable[None]] | None = None,
                  on_error: Callable[[BaseException], None] | None = None,
                  tick_s: float | None = None,
                  on_tick: Callable[[], Awaitable[None]] | None = None) -> _MemorySubscription:
        sub = _MemorySubscription(self, channel, on_message, on_connect)
        self._subs.setdefault(channel, []).append(sub)
        return sub

    def _drop(self, sub: _MemorySubscription) -> None:
        subs = self._subs.get(sub.channel, [])
        if sub in subs:
            subs.remove(sub)

    async def aclose(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.aclose()
        self._subs.clear()


class Listener(Protocol):
    """One live subscription on a backend's connection: all a backend gives the loop."""

    async def get(self, wait_s: float) -> str | None:
        """The next message, or None when none came within `wait_s` seconds; raises one of
        the backend's errors when the connection is lost."""
        ...

    async def aclose(self) -> None: ...


class ListenLoop:
    """The reconnect loop (see the module docstring), over any backend: `listen(channel)`
    connects and subscribes, and returns once messages published from then on are heard."""

    def __init__(self, channel: str, listen: Callable[[str], Awaitable[Listener]],
                 errors: tuple[type[BaseException], ...], on_message: Callable[[str], None],
                 on_connect: Callable[[bool], Awaitable[None]] | None,
                 on_error: Callable[[BaseException], None] | None,
                 tick_s: float | None, on_tick: Callable[[], Awaitable[None]] | None, *,
                 on_close: Callable[[ListenLoop], None]) -> None:
        self._channel = channel
        self._listen = listen
        self._errors = errors
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_error = on_error
        self._tick_s = tick_s if on_tick is not None else None
        self._on_tick = on_tick
        self._on_close = on_close
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(
            self._run(), name=f"gatewise-pubsub:{channel}")

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def _run(self) -> None:
        me = asyncio.current_task()
        errors: tuple[type[BaseException], ...] = (*self._errors, StoreUnavailableError)
        delay, resumed = _MIN_BACKOFF_S, False
        while True:
            listener: Listener | None = None
            try:
                listener = await self._listen(self._channel)
                if self._on_connect is not None:
                    await self._on_connect(resumed)
                resumed = False
                self._ready.set()
                delay = _MIN_BACKOFF_S
                tick_s = self._tick_s
                next_tick = None if tick_s is None else time.monotonic() + tick_s
                while True:
                    wait = _IDLE_WAIT_S if next_tick is None else max(0.0, next_tick - time.monotonic())
                    text = await listener.get(wait)
                    if me is not None and me.cancelling():
                        raise asyncio.CancelledError
                    if text is not None:
                        self._on_message(text)
                    if next_tick is not None and tick_s is not None and time.monotonic() >= next_tick:
                        assert self._on_tick is not None
                        await self._on_tick()
                        next_tick = time.monotonic() + tick_s
            except asyncio.CancelledError:
                raise
            except errors as exc:
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from exc
                resumed = True
                if self._on_error is not None:
                    self._on_error(exc)
                self._ready.set()  # running degraded is "ready": never block start-up on it
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
            finally:
                if listener is not None:
                    with contextlib.suppress(*errors):
                        await listener.aclose()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._on_close(self)
        if task is not None:
            await stop_task(task, "pubsub listener")


class _RedisListener:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def get(self, wait_s: float) -> str | None:
        msg = await self._pubsub.get_message(timeout=wait_s)
        if msg is not None and msg.get("type") == "message":
            return _text(msg["data"])
        return None

    async def aclose(self) -> None:
        await self._pubsub.aclose()


class ListeningPubSub:
    """What the cross-replica backends share: each subscription is a `ListenLoop` over the
    backend's `_listen`, and closing the backend closes them. A backend sets `errors` (what
    its client raises when the server is away) and may rename channels (`_channel_name`)."""

    errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self._subs: list[ListenLoop] = []

    def subscribe(self, channel: str, on_message: Callable[[str], None], *,
                  on_connect: Callable[[bool], Awaitable[None]] | None = None,
                  on_error: Callable[[BaseException], None] | None = None,
                  tick_s: float | None = None,
                  on_tick: Callable[[], Awaitable[None]] | None = None) -> ListenLoop:
        sub = ListenLoop(self._channel_name(channel), self._listen, self.errors, on_message,
                         on_connect, on_error, tick_s, on_tick, on_close=self._drop)
        self._subs.append(sub)
        return sub

    def _channel_name(self, channel: str) -> str:
        return channel

    async def _listen(self, channel: str) -> Listener:
        raise NotImplementedError

    def _drop(self, sub: ListenLoop) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    async def _close_subscriptions(self) -> None:
        for sub in list(self._subs):
            await sub.aclose()


class RedisPubSub(ListeningPubSub):
    """`PubSub` over Redis channels, shared by every replica. Pass `client` to share a
    connection pool with other Redis stores (it is then not closed here), or `url`."""

    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 connect_timeout_s: float = 1.0, op_timeout_s: float = 2.0) -> None:
        if client is None and url is None:
            raise ValueError("RedisPubSub needs a redis url or client")
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        super().__init__()
        self.errors = (RedisError, OSError, TimeoutError)
        self._owns_client = client is None
        self.client: aioredis.Redis = client if client is not None else aioredis.Redis.from_url(
            url or "", socket_connect_timeout=connect_timeout_s, socket_timeout=op_timeout_s)

    async def publish(self, channel: str, message: str) -> None:
        try:
            await self.client.publish(channel, message)
        except self.errors as exc:
            raise StoreUnavailableError(f"publish on {channel!r} failed: {type(exc).__name__}") \
                from exc

    async def _listen(self, channel: str) -> Listener:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        listener = _RedisListener(pubsub)
        try:
            await pubsub.subscribe(channel)
        except BaseException:
            with contextlib.suppress(*self.errors):
                await listener.aclose()
            raise
        return listener

    async def aclose(self) -> None:
        await self._close_subscriptions()
        if self._owns_client:
            await self.client.aclose()
