"""`RedisRecentLog`: a capped, numbered list of recent records every replica writes and reads
(the console's live request log and its guard events on Redis, one list each by `name`;
`gatewise.observability.recent_shared` buffers, encodes and pages over it).

- `push(records)`: one script run numbers the batch from one shared counter (`INCRBY`),
  `LPUSH`es each record as `<seq> <bytes>` and `LTRIM`s the list to `capacity`: one round
  trip, and atomic, so the list is in sequence order whatever the replicas' interleaving
  (numbering in one trip and pushing in another would let a batch land late under smaller
  numbers, and a reader that had passed them would never see it). List and counter share a
  hash tag, so the script runs on Redis Cluster too.
- `head(count)`: the newest `count` entries and the oldest entry's number, in one pipelined
  round trip; `page(start, count)`: more entries, newest first.
- `watch(ttl_s)` / `watched_s()`: a flag with a TTL saying somebody reads the log.

Keys: `<prefix>{recent:<name>}` (the list), `<prefix>{recent:<name>}:seq`,
`<prefix>recent:<name>:watched`.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from gatewise.storage.redis import _RedisStore

# KEYS: list, counter. ARGV: capacity, records... Returns the last number given.
_PUSH = """
local n = #ARGV - 1
local last = redis.call('INCRBY', KEYS[2], n)
local first = last - n
for i = 2, #ARGV do
  redis.call('LPUSH', KEYS[1], string.format('%d', first + i - 1) .. ' ' .. ARGV[i])
end
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[1]) - 1)
return last
"""

Entry = tuple[int, bytes]


def _entry(raw: bytes | str) -> Entry:
    data = raw.encode() if isinstance(raw, str) else raw  # bytes: the client decodes nothing
    number, _, body = data.partition(b" ")
    return int(number), body


class RedisRecentLog(_RedisStore):
    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:", name: str = "requests",
                 capacity: int = 2000) -> None:
        super().__init__(url, client=client, prefix=prefix)
        self._list = f"{prefix}{{recent:{name}}}"
        self._seq = f"{self._list}:seq"
        self._watched = f"{prefix}recent:{name}:watched"
        self.capacity = capacity
        self._push = self._redis.register_script(_PUSH)

    async def push(self, records: Sequence[bytes]) -> int:
        """Appends `records` (oldest first); returns the number the last one got."""
        return int(await self._push(keys=[self._list, self._seq],
                                    args=[self.capacity, *records]))

    async def head(self, count: int) -> tuple[list[Entry], int | None]:
        """The newest `count` entries (newest first) and the oldest entry's number."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.lrange(self._list, 0, count - 1)
        pipe.lindex(self._list, -1)
        raw, oldest = await pipe.execute()
        return [_entry(r) for r in raw], None if oldest is None else _entry(oldest)[0]

    async def page(self, start: int, count: int) -> list[Entry]:
        """`count` entries from position `start` (0: the newest)."""
        return [_entry(r) for r in await self._redis.lrange(self._list, start,
                                                             start + count - 1)]

    async def watch(self, ttl_s: float) -> None:
        await self._redis.set(self._watched, b"1", px=max(1, int(ttl_s * 1000)))

    async def watched_s(self) -> float:
        """Seconds the watched flag has left (0: nobody watches)."""
        ttl_ms = int(await self._redis.pttl(self._watched))
        return ttl_ms / 1000 if ttl_ms > 0 else 0.0
