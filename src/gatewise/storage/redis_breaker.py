"""The Redis side of the shared circuit breakers (`resilience.breaker_redis.RedisBreakers`).

Why it lives here: every byte the gateway exchanges with Redis goes through `storage/`, so the
breaker logic above (the local view, the fail-open fallback, what a decision means) never
imports redis-py, and a backend error reaches it as one type, `StoreUnavailableError`.

All of a deployment's state is one hash (`<prefix>{<deployment>}`, a hash tag: one cluster
slot per deployment), and every write is one atomic Lua script that returns the resulting
state and publishes the transition on `<prefix>events`. The scripts' arguments are documented
above each one; `RedisBreakers` builds them (time and jitter come from the caller, so the
scripts stay deterministic).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatewise.storage.base import StoreUnavailableError
from gatewise.storage.pubsub import RedisPubSub

_ERRORS = (RedisError, OSError, TimeoutError)

_PRELUDE = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', key, 'st', 'ou', 'pu', 'pt', 'since', 'v', 'n')
local st, ou, pu, pt, since, v = h[1] or 'closed', tonumber(h[2] or '0'),
  tonumber(h[3] or '0'), h[4] or '', h[5], tonumber(h[6] or '0')
local n = tonumber(h[7] or '0')
local function clear_window()
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local k = string.sub(f, 1, 2)
    if k == 'c:' or k == 'f:' then redis.call('HDEL', key, f) end
  end
end
local function save(channel, dep, ttl_ms)
  -- Versions order updates in every replica's view; they also move past a key that expired
  -- and came back (a view never keeps an old state because its version was higher).
  v = math.max(v + 1, math.floor(now * 1000))
  redis.call('HSET', key, 'st', st, 'ou', ou, 'pu', pu, 'pt', pt, 'v', v, 'n', n)
  redis.call('PEXPIRE', key, ttl_ms)
  redis.call('PUBLISH', channel, cjson.encode({d = dep, s = st, o = ou, p = pu, v = v}))
end
local function reply(decision, a, b)
  return {st, tostring(ou), tostring(pu), tostring(v), decision, tostring(a), tostring(b)}
end
"""

# ARGV: now, fails (0/1), calls to add, probe token or '', threshold, ratio, min_calls,
#       bucket width, buckets, open_s, ttl_ms, channel, deployment id, min_open_s,
#       jitter factor (1 - JITTER * r), max backoff level
_RECORD = _PRELUDE + """
local fails, add, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local channel, dep, ttl = ARGV[12], ARGV[13], tonumber(ARGV[11])
local function period()  -- breaker.open_interval
  local cap = tonumber(ARGV[10])
  return math.min(cap, math.min(tonumber(ARGV[14]), cap) * 2 ^ n) * tonumber(ARGV[15])
end
if token ~= '' then
  if st == 'closed' or pt ~= token then return reply('', 0, 0) end
  if fails > 0 then
    n = math.min(n + 1, tonumber(ARGV[16]))
    st, ou, pu, pt = 'open', now + period(), 0, ''
    save(channel, dep, ttl)
    return reply('open', 0, 0)
  end
  local recovery = now - tonumber(since or now)
  st, ou, pu, pt, n = 'closed', 0, 0, '', 0
  clear_window()
  redis.call('HDEL', key, 'since')
  save(channel, dep, ttl)
  return reply('closed', recovery, 0)
end
if st ~= 'closed' or (add == 0 and fails == 0) then return reply('', 0, 0) end
local b = math.floor(now / tonumber(ARGV[8]))
local n = tonumber(ARGV[9])
if add > 0 then redis.call('HINCRBY', key, 'c:' .. b, add) end
if fails > 0 then redis.call('HINCRBY', key, 'f:' .. b, fails) end
redis.call('PEXPIRE', key, ttl)
local calls, nf = 0, 0
local flat = redis.call('HGETALL', key)
for i = 1, #flat, 2 do
  local k = string.sub(flat[i], 1, 2)
  if k == 'c:' or k == 'f:' then
    if tonumber(string.sub(flat[i], 3)) <= b - n then
      redis.call('HDEL', key, flat[i])
    elseif k == 'c:' then calls = calls + tonumber(flat[i + 1])
    else nf = nf + tonumber(flat[i + 1]) end
  end
end
if fails > 0 and nf >= tonumber(ARGV[5])
    and (calls < tonumber(ARGV[7]) or nf >= tonumber(ARGV[6]) * calls) then
  st, ou, pu, pt = 'open', now + period(), 0, ''
  clear_window()
  if not since then redis.call('HSET', key, 'since', now) end
  save(channel, dep, ttl)
  return reply('open', nf, calls)
end
return reply('', nf, calls)
"""

# ARGV: now, lease_s, token, ttl_ms, channel, deployment id
_TRY_PROBE = _PRELUDE + """
if st == 'closed' then return reply('admit', 0, 0) end
if now < ou or (pt ~= '' and now < pu) then return reply('reject', 0, 0) end
st, pu, pt = 'half_open', now + tonumber(ARGV[2]), ARGV[3]
save(ARGV[5], ARGV[6], tonumber(ARGV[4]))
return reply('probe', 0, 0)
"""

# ARGV: now, token, ttl_ms, channel, deployment id
_RELEASE = _PRELUDE + """
if st ~= 'closed' and pt == ARGV[2] then
  pu, pt = 0, ''
  save(ARGV[4], ARGV[5], tonumber(ARGV[3]))
end
return reply('', 0, 0)
"""


class RedisBreakerStore:
    """Runs the breaker scripts; owns the client unless one is passed in. Its `pubsub` shares
    the client's connection pool, so a replica holds one pool for writes and events."""

    def __init__(self, url: str | None = None, *, client: aioredis.Redis | None = None,
                 prefix: str = "gatewise:breaker:", op_timeout_s: float = 0.5) -> None:
        if client is None and url is None:
            raise ValueError("RedisBreakers needs a redis url or client")
        self.prefix = prefix
        self.channel = f"{prefix}events"
        self._owns_client = client is None
        self._client: aioredis.Redis = client if client is not None else aioredis.Redis.from_url(
            url or "", socket_timeout=op_timeout_s, socket_connect_timeout=op_timeout_s,
            decode_responses=True)
        self._record = self._client.register_script(_RECORD)
        self._try_probe = self._client.register_script(_TRY_PROBE)
        self._release = self._client.register_script(_RELEASE)
        self.pubsub = RedisPubSub(client=self._client)

    def key(self, deployment_id: str) -> str:
        return f"{self.prefix}{{{deployment_id}}}"

    async def record(self, deployment_id: str, args: list[str | int]) -> list[str]:
        """`_RECORD` on one deployment (a failure, a probe's verdict, or a success flush)."""
        try:
            reply: list[str] = await self._record(keys=[self.key(deployment_id)], args=args)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker record: {type(exc).__name__}") from exc
        return reply

    async def record_many(self, items: list[tuple[str, list[str | int]]]) -> list[list[str]]:
        """`_RECORD` on many deployments in one pipelined round trip (the periodic sync)."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for dep, args in items:
                    await self._record(keys=[self.key(dep)], client=pipe, args=args)
                replies: list[list[str]] = await pipe.execute()
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker sync: {type(exc).__name__}") from exc
        return replies

    async def try_probe(self, deployment_id: str, args: list[Any]) -> list[str]:
        try:
            reply: list[str] = await self._try_probe(keys=[self.key(deployment_id)], args=args)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker probe: {type(exc).__name__}") from exc
        return reply

    async def release(self, deployment_id: str, args: list[Any]) -> list[str]:
        try:
            reply: list[str] = await self._release(keys=[self.key(deployment_id)], args=args)
        except _ERRORS as exc:
            raise StoreUnavailableError(f"breaker release: {type(exc).__name__}") from exc
        return reply

    async def aclose(self) -> None:
        await self.pubsub.aclose()
        if self._owns_client:
            await self._client.aclose()
