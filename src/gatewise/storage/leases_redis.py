"""`RedisLeases`: leases every replica sees, expiring on Redis's own clock.

A free lease is taken with `SET key holder NX PX ttl`. Renewing and releasing must only
touch the lease when the caller still holds it, or a replica whose lease just expired could
extend or delete the next holder's: both are compare-and-act Lua scripts, atomic in Redis.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from gatewise.storage.redis import _RedisStore

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeases(_RedisStore):
    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:") -> None:
        super().__init__(url, client=client, prefix=prefix)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)

    def _k(self, name: str) -> str:
        return f"{self._prefix}lease:{name}"

    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        px = max(1, int(ttl_s * 1000))
        key = self._k(name)
        if await self._redis.set(key, holder, nx=True, px=px):
            return True
        return bool(await self._renew(keys=[key], args=[holder, px]))

    async def release(self, name: str, holder: str) -> bool:
        return bool(await self._release(keys=[self._k(name)], args=[holder]))

    async def holder(self, name: str) -> str | None:
        value = await self._redis.get(self._k(name))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def ping(self) -> None:
        await self._redis.ping()
