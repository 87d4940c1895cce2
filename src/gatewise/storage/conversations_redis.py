"""`RedisConversations`: conversations shared by every replica, expiring when idle.

Per conversation, a list of JSON messages (`…:m`) and a hash (`…:i`: created, updated,
summary, summarised, metadata); an append writes both and renews their TTL in one MULTI, so
replicas appending turns of one conversation never interleave a half-written turn. Each
scope has a sorted set of its conversations by last update (listing), and one sorted set
holds every conversation (retention); their entries for conversations that expired are
dropped when a listing or a purge meets them.

The scope is length-prefixed in key names, so no scope/id pair can spell another's keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from gatewise.storage.base import ConversationInfo
from gatewise.storage.redis import _RedisStore


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisConversations(_RedisStore):
    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:", clock: Callable[[], float] = time.time) -> None:
        super().__init__(url, client=client, prefix=prefix)
        self._clock = clock

    def _k(self, scope: str, conversation: str) -> str:
        return f"{self._prefix}conv:{len(scope)}:{scope}:{conversation}"

    def _index(self, scope: str) -> str:
        return f"{self._prefix}convs:{len(scope)}:{scope}"

    @property
    def _all(self) -> str:
        return f"{self._prefix}convs-all"

    async def append(self, scope: str, conversation: str, messages: Sequence[dict[str, Any]],
                     *, ttl: float | None = None,
                     metadata: dict[str, Any] | None = None) -> int:
        now = self._clock()
        k = self._k(scope, conversation)
        async with self._redis.pipeline(transaction=True) as p:
            if messages:
                p.rpush(f"{k}:m", *[json.dumps(m) for m in messages])
            else:
                p.llen(f"{k}:m")
            p.hsetnx(f"{k}:i", "created", repr(now))
            fields: dict[Any, Any] = {"updated": repr(now)}
            fields.update({f"md:{key}": json.dumps(v) for key, v in (metadata or {}).items()})
            p.hset(f"{k}:i", mapping=fields)
            p.zadd(self._index(scope), {conversation: now})
            p.zadd(self._all, {json.dumps([scope, conversation]): now})
            if ttl:
                ms = max(1, int(ttl * 1000))
                p.pexpire(f"{k}:m", ms)
                p.pexpire(f"{k}:i", ms)
            else:
                p.persist(f"{k}:m")
                p.persist(f"{k}:i")
            out = await p.execute()
        return int(out[0])

    async def history(self, scope: str, conversation: str, *, start: int = 0,
                      limit: int | None = None) -> list[dict[str, Any]]:
        raw = await self._redis.lrange(f"{self._k(scope, conversation)}:m", start, -1)
        rows = [json.loads(r) for r in raw]
        return rows[-limit:] if limit else rows

    async def info(self, scope: str, conversation: str) -> ConversationInfo | None:
        k = self._k(scope, conversation)
        async with self._redis.pipeline(transaction=False) as p:
            p.hgetall(f"{k}:i")
            p.llen(f"{k}:m")
            fields, turns = await p.execute()
        if not fields:
            return None
        f = {_s(a): _s(b) for a, b in fields.items()}
        return ConversationInfo(
            conversation, scope, float(f.get("created", 0)), float(f.get("updated", 0)),
            int(turns), f.get("summary"), int(f.get("summarised", 0)),
            {key[3:]: json.loads(v) for key, v in f.items() if key.startswith("md:")})

    async def list(self, scope: str, *, limit: int = 100) -> list[ConversationInfo]:
        ids = [_s(i) for i in await self._redis.zrevrange(self._index(scope), 0, limit * 2)]
        found: list[ConversationInfo] = []
        for conv in ids:
            info = await self.info(scope, conv)
            if info is None:  # expired: its index entries go too
                await self._redis.zrem(self._index(scope), conv)
                await self._redis.zrem(self._all, json.dumps([scope, conv]))
            elif len(found) < limit:
                found.append(info)
        return found

    async def set_summary(self, scope: str, conversation: str, summary: str,
                          summarised: int) -> None:
        k = f"{self._k(scope, conversation)}:i"
        if await self._redis.exists(k):
            await self._redis.hset(k, mapping={"summary": summary,
                                               "summarised": str(summarised)})

    async def delete(self, scope: str, conversation: str) -> bool:
        k = self._k(scope, conversation)
        async with self._redis.pipeline(transaction=True) as p:
            p.exists(f"{k}:i")
            p.unlink(f"{k}:m", f"{k}:i")
            p.zrem(self._index(scope), conversation)
            p.zrem(self._all, json.dumps([scope, conversation]))
            out = await p.execute()
        return bool(out[0])

    async def delete_before(self, ts: float, limit: int) -> int:
        members = await self._redis.zrangebyscore(self._all, "-inf", f"({ts!r}", start=0,
                                                  num=limit)
        for member in members:
            scope, conv = json.loads(_s(member))
            await self.delete(scope, conv)
        return len(members)
