"""Redis stores: counters, sliding windows and a key-value cache shared by every replica.

Every check-and-set is one Lua script (one round trip, atomic on the server), so replicas
racing for the last unit of a budget or a rate limit can never overspend.

- `RedisCounters`: one hash per counter: `_t` is the total, `r:<id>` each open reservation.
  Settle/release delete the reservation's field and apply the difference in the same script,
  so a retried settle changes nothing, and a period that expired (the hash's TTL) takes its
  reservations with it: a late settle cannot leak into the next period. Reservations of a
  crashed process stay counted until the period ends (the safe side for a budget).
- `RedisWindow`: a sliding window split in `buckets` sub-buckets (default 20) kept as hash
  fields. A bucket is counted in full while any part of it is inside the window, so the
  error is at most one bucket (window/20), always on the strict side (never lets more
  through than the limit). Time is the Redis server's (`TIME`), so replicas' clocks don't
  matter. `hit_many` checks a request's windows (its key's RPM and TPM, its team's) in one
  script: one round trip instead of one per window, with the outcome of separate hits in turn.
- `RedisKV`: plain strings with PX expiry (`get`/`set` on the lean client when given one: the
  response cache reads on every request), sets (`add_members`: one script) and hashes of
  floats; `delete_prefix` scans (never `KEYS`).

Keys are `<prefix>kv:<key>`, `<prefix>c:<key>`, `<prefix>w:<key>` (prefix default `gatewise:`);
each script but `hit_many` touches one key. (`hit_many` touches several: on Redis Cluster they
would have to share a slot; the clients here speak to one server.)
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis

from gatewise.storage.base import Reservation, WindowResult
from gatewise.storage.resp import RespClient, Script

_RESERVE = """
local cur = tonumber(redis.call('HGET', KEYS[1], '_t') or '0')
if cur + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return false end
local total = redis.call('HINCRBYFLOAT', KEYS[1], '_t', ARGV[1])
redis.call('HSET', KEYS[1], 'r:' .. ARGV[4], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return total
"""

_SETTLE = """
local f = 'r:' .. ARGV[1]
local reserved = redis.call('HGET', KEYS[1], f)
if not reserved then return redis.call('HGET', KEYS[1], '_t') or '0' end
redis.call('HDEL', KEYS[1], f)
return redis.call('HINCRBYFLOAT', KEYS[1], '_t', tonumber(ARGV[2]) - tonumber(reserved))
"""

# One window hit: `hit(key, amount, limit, window_ms, size_ms, force, now_ms)` returns
# allowed (0/1), used and reset_ms; `given` is the amount as the caller wrote it (added as
# given). Shared by the one-key script and the several-key one.
_WINDOW_HIT = """
local function hit(key, given, limit, window, size, force, now)
  local amount = tonumber(given)
  local cur = math.floor(now / size)
  local bmin = math.floor((now - window) / size)
  local h = redis.call('HGETALL', key)
  local live, order, used = {}, {}, 0
  for i = 1, #h, 2 do
    local b = tonumber(h[i])
    if b < bmin then
      redis.call('HDEL', key, h[i])
    else
      local n = tonumber(h[i + 1])
      live[b] = n
      table.insert(order, b)
      used = used + n
    end
  end
  local allowed = 0
  if force or used + amount <= limit then
    redis.call('HINCRBYFLOAT', key, tostring(cur), given)
    redis.call('PEXPIRE', key, window + size)
    if live[cur] == nil then table.insert(order, cur); live[cur] = 0 end
    live[cur] = live[cur] + amount
    used = used + amount
    allowed = 1
  end
  local need = amount
  if allowed == 1 then need = 1 end
  if need > limit then need = limit end
  local reset = 0
  if used + need > limit then
    reset = window
    table.sort(order)
    local left = used
    for _, b in ipairs(order) do
      left = left - live[b]
      if left + need <= limit then
        reset = (b + 1) * size + window - now
        break
      end
    end
  end
  return allowed, used, reset
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# ARGV: amount, limit, window_ms, buckets, force ('1' = add unconditionally).
# Returns {allowed 0/1, used (string), reset_ms}.
_WINDOW = _WINDOW_HIT + """
local window = tonumber(ARGV[3])
local size = math.max(1, math.floor(window / tonumber(ARGV[4])))
local allowed, used, reset = hit(KEYS[1], ARGV[1], tonumber(ARGV[2]), window, size,
  ARGV[5] == '1', now)
return {allowed, tostring(used), reset}
"""

# A request's windows in one round trip, in order, as that many `hit`s one after the other
# would: each admitted window counts the amount; the first refusal ends it (later windows are
# neither checked nor counted). ARGV: window_ms, buckets, then amount and limit per key.
# Returns {allowed, used (string), reset_ms} for each window checked, flattened.
_WINDOW_MANY = _WINDOW_HIT + """
local window = tonumber(ARGV[1])
local size = math.max(1, math.floor(window / tonumber(ARGV[2])))
local out = {}
for i = 1, #KEYS do
  local allowed, used, reset = hit(KEYS[i], ARGV[1 + 2 * i],
    tonumber(ARGV[2 + 2 * i]), window, size, false, now)
  out[#out + 1] = allowed
  out[#out + 1] = tostring(used)
  out[#out + 1] = reset
  if allowed == 0 then break end
end
return out
"""

# ARGV: ttl_ms (-1: forever), members... A set lives at least ttl_ms from now; a shorter ttl
# never shortens it, and one without a ttl makes it permanent.
_ADD_MEMBERS = """
local existed = redis.call('EXISTS', KEYS[1])
local cur = redis.call('PTTL', KEYS[1])
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
local ttl = tonumber(ARGV[1])
if ttl < 0 then
  redis.call('PERSIST', KEYS[1])
elseif existed == 0 or (cur >= 0 and cur < ttl) then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""

_GLOB = re.compile(r"([*?\[\]\\])")


def _client(url: str | None, client: aioredis.Redis | None) -> tuple[aioredis.Redis, bool]:
    """A client from `from_url` (connects on first command) or the caller's shared one."""
    if client is not None:
        return client, False
    if url is None:
        raise ValueError("a Redis store needs a url or a client")
    return aioredis.Redis.from_url(url), True


class _RedisStore:
    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:") -> None:
        self._redis, self._owned = _client(url, client)
        self._prefix = prefix

    _fast: RespClient | None = None

    async def aclose(self) -> None:
        """Closes the clients only if this store owns them (shared ones belong to their owner)."""
        if self._owned:
            await self._redis.aclose()
        if self._fast is not None:
            await self._fast.aclose()


class RedisKV(_RedisStore):
    """`fast`: the lean RESP client (plain redis:// only) for `get` and `set`, the response
    cache's hot path; everything else goes through redis-py."""

    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:", fast: RespClient | None = None,
                 own_fast: bool = False) -> None:
        super().__init__(url, client=client, prefix=prefix)
        self._lean = fast
        self._fast = fast if own_fast else None
        self._add = _ScriptRunner(self._redis, fast, _ADD_MEMBERS)

    def _k(self, key: str) -> str:
        return f"{self._prefix}kv:{key}"

    async def get(self, key: str) -> bytes | None:
        if self._lean is not None:
            value = await self._lean.execute("GET", self._k(key))
        else:
            value = await self._redis.get(self._k(key))
        if isinstance(value, str):  # only with decode_responses=True on a caller's client
            return value.encode()
        return cast("bytes | None", value)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = max(1, int(ttl * 1000)) if ttl is not None else None
        if self._lean is not None:
            args: tuple[Any, ...] = ("SET", self._k(key), value)
            await self._lean.execute(*args, *(("PX", px) if px is not None else ()))
            return
        await self._redis.set(self._k(key), value, px=px)

    async def delete(self, key: str) -> bool:
        return bool(await self._redis.delete(self._k(key)))

    async def delete_prefix(self, prefix: str) -> int:
        pattern = _GLOB.sub(r"\\\1", self._k(prefix)) + "*"
        deleted = 0
        batch: list[Any] = []
        async for k in self._redis.scan_iter(match=pattern, count=1000):
            batch.append(k)
            if len(batch) >= 500:
                deleted += int(await self._redis.unlink(*batch))
                batch = []
        if batch:
            deleted += int(await self._redis.unlink(*batch))
        return deleted

    async def add_members(self, key: str, members: Sequence[str],
                          ttl: float | None = None) -> None:
        if not members:
            return
        ttl_ms = max(1, int(ttl * 1000)) if ttl is not None else -1
        await self._add(keys=[self._k(key)], args=[ttl_ms, *members])

    async def members(self, key: str) -> list[str]:
        found = await self._redis.smembers(self._k(key))
        return [m.decode() if isinstance(m, bytes) else str(m) for m in found]

    async def incr_fields(self, key: str, deltas: Mapping[str, float]) -> None:
        if not deltas:
            return
        k = self._k(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            for name, delta in deltas.items():
                pipe.hincrbyfloat(k, name, float(delta))
            await pipe.execute()

    async def fields(self, key: str) -> dict[str, float]:
        found = await self._redis.hgetall(self._k(key))
        return {(f.decode() if isinstance(f, bytes) else str(f)): float(v)
                for f, v in found.items()}

    async def trim(self, prefix: str, keep: int) -> int:
        """SCAN for the prefix's string keys (sets and hashes are not values), their PTTL
        in one pipeline per batch, then UNLINK the soonest to expire beyond `keep`."""
        pattern = _GLOB.sub(r"\\\1", self._k(prefix)) + "*"
        found: list[tuple[float, bytes]] = []
        batch: list[Any] = []

        async def ttls() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for k in batch:
                    pipe.pttl(k)
                left = await pipe.execute()
            found.extend((float("inf") if ms == -1 else float(ms), k)
                         for ms, k in zip(left, batch, strict=True) if ms != -2)
            batch.clear()

        async for k in self._redis.scan_iter(match=pattern, count=1000, _type="string"):
            batch.append(k)
            if len(batch) >= 1000:
                await ttls()
        if batch:
            await ttls()
        if len(found) <= keep:
            return 0
        found.sort()
        doomed = [k for _, k in found[:len(found) - keep]]
        removed = 0
        for i in range(0, len(doomed), 500):
            removed += int(await self._redis.unlink(*doomed[i:i + 500]))
        return removed

    async def purge_expired(self) -> int:
        return 0  # Redis expires keys itself


class _ScriptRunner:
    """Runs one Lua script on the lean client when given one (the hot path), else through
    redis-py (TLS, unix sockets, a caller's own client)."""

    def __init__(self, redis: aioredis.Redis, fast: RespClient | None, source: str) -> None:
        self._fast = fast
        self._script = Script(source)
        self._slow = redis.register_script(source)

    def __call__(self, keys: list[str], args: list[Any]) -> Awaitable[Any]:
        # Not a coroutine of its own: the caller awaits the client's (one frame less per call).
        if self._fast is not None:
            return self._fast.run_script(self._script, keys, args)
        return self._slow(keys=keys, args=args)


class RedisCounters(_RedisStore):
    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:", fast: RespClient | None = None,
                 own_fast: bool = False) -> None:
        super().__init__(url, client=client, prefix=prefix)
        self._fast = fast if own_fast else None
        self._reserve = _ScriptRunner(self._redis, fast, _RESERVE)
        self._settle = _ScriptRunner(self._redis, fast, _SETTLE)
        # Reservation ids: unique across replicas (a random prefix per store and process: a
        # fork draws a new one) and cheaper than a uuid4 per request (a counter after it).
        self._rid_pid = os.getpid()
        self._rid_prefix = secrets.token_hex(8)
        self._rid_seq = itertools.count()

    def _k(self, key: str) -> str:
        return f"{self._prefix}c:{key}"

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        if self._rid_pid != os.getpid():
            self._rid_pid, self._rid_prefix = os.getpid(), secrets.token_hex(8)
        rid = f"{self._rid_prefix}{next(self._rid_seq):x}"
        ttl_ms = max(1, int(ttl * 1000)) if ttl else 0
        total = await self._reserve(keys=[self._k(key)], args=[repr(float(amount)),
                                                              repr(float(limit)), ttl_ms, rid])
        return None if total is None else Reservation(key, amount, rid)

    async def settle(self, reservation: Reservation, actual: float) -> float:
        total = await self._settle(keys=[self._k(reservation.key)],
                                   args=[reservation.id, repr(float(actual))])
        return float(total)

    async def release(self, reservation: Reservation) -> float:
        return await self.settle(reservation, 0.0)

    async def value(self, key: str) -> float:
        total = await self._redis.hget(self._k(key), "_t")
        return float(total) if total is not None else 0.0


class RedisWindow(_RedisStore):
    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:", buckets: int = 20,
                 fast: RespClient | None = None, own_fast: bool = False) -> None:
        super().__init__(url, client=client, prefix=prefix)
        self._fast = fast if own_fast else None
        self._script = _ScriptRunner(self._redis, fast, _WINDOW)
        self._many = _ScriptRunner(self._redis, fast, _WINDOW_MANY)
        self._buckets = buckets

    def hit(self, key: str, amount: float, limit: float,
            window_s: float) -> Coroutine[Any, Any, WindowResult]:
        # `_run`'s coroutine itself, not one wrapping it: a frame less on every request.
        return self._run(key, amount, limit, window_s, False)

    async def _run(self, key: str, amount: float, limit: float, window_s: float,
                   force: bool) -> WindowResult:
        allowed, used, reset_ms = await self._script(
            keys=[f"{self._prefix}w:{key}"],
            args=[repr(float(amount)), repr(float(limit)), max(1, int(window_s * 1000)),
                  self._buckets, "1" if force else "0"])
        return WindowResult(bool(allowed), float(used), limit, max(0, int(reset_ms)) / 1000)

    async def hit_many(self, hits: Sequence[tuple[str, float, float]],
                       window_s: float) -> list[WindowResult]:
        """One script for all of them: one round trip (and one reply to parse) however many
        windows a request has, with the same outcome as `hit` on each in turn."""
        if len(hits) == 1:
            key, amount, limit = hits[0]
            return [await self._run(key, amount, limit, window_s, False)]
        args: list[Any] = [max(1, int(window_s * 1000)), self._buckets]
        keys = []
        prefix = f"{self._prefix}w:"
        for key, amount, limit in hits:
            keys.append(prefix + key)
            args.append(repr(float(amount)))
            args.append(repr(float(limit)))
        flat = await self._many(keys=keys, args=args)
        return [WindowResult(bool(flat[i]), float(flat[i + 1]), hits[i // 3][2],
                             max(0, int(flat[i + 2])) / 1000)
                for i in range(0, len(flat), 3)]

    async def add(self, key: str, amount: float, window_s: float) -> None:
        await self._run(key, amount, 1e300, window_s, True)
