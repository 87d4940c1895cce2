"""`RedisBreakers`: the same breakers as `MemoryBreakers`, shared by every gateway replica.

Why shared: with N replicas each learning on its own, a dead deployment gets N times the
failures before everyone stops sending to it, and N probes when it may be back. Here one
replica's failures open the breaker for all, and exactly one replica probes.

How it stays fast: the router needs a synchronous `available()` on every request, so each
process keeps a local *view* (state, open-until, probe-until, version per deployment) and
never asks Redis on the success path. The view is refreshed three ways:

1. every write (a failure, a probe, a probe's verdict) runs one atomic Lua script that
   returns the resulting state;
2. every transition is published on `<prefix>events`; each replica subscribes, so a
   breaker opened by replica A is skipped by replica B within a publish round trip;
3. every `refresh_s` one pipelined round trip flushes this process's success counts and
   re-reads every known deployment (a safety net for a missed message or a restart).

A version number per deployment orders updates, so a late message never undoes a newer state.
Successes are counted locally and flushed with the next write or refresh (the failure ratio
only needs them roughly), so a healthy request costs a dict update and no Redis call.

Atomicity: check-and-set lives in Lua (`try_probe` grants the half-open probe to one caller
across all replicas, with a lease so a crashed prober cannot block recovery; `record`
updates the sliding window and decides to open in the same step). The open period's backoff
(`min_open_s` doubled per failed probe up to `open_s`, see `breaker.open_interval`) is
counted in the same hash (`n`), so every replica backs off together; the jitter is drawn
here (`rng`, injectable) and passed in, so the scripts stay deterministic. Time comes from this
process's wall clock (`clock`, injectable); replicas' clocks need only agree to well within
`open_s`. All of a deployment's state is one hash, so scripts touch one key (cluster-safe).

If Redis is unreachable, the breaker fails open to this process's own `MemoryBreakers`
(protection continues per replica, traffic is never blocked by a Redis outage) and warns;
it returns to the shared state once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatewise.config.schema import BreakerConfig
from gatewise.resilience.breaker import (
    CLOSED,
    HALF_OPEN,
    JITTER,
    MAX_LEVEL,
    OPEN,
    MemoryBreakers,
    Transition,
    circuit_open,
    probe_wait,
)

log = logging.getLogger("gatewise.breaker")

_BUCKETS = 10
_MAX_LEASE_S = 120.0
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)

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

_View = tuple[int, str, float, float]  # version, state, open until, probe until


class _Event(msgspec.Struct):
    d: str
    s: str
    o: float
    p: float
    v: int


class RedisBreakers:
    """Implements `Breakers` over Redis. Build it once per gateway; `aclose()` on shutdown."""

    def __init__(self, config: BreakerConfig, url: str | None = None, *,
                 client: aioredis.Redis | None = None, prefix: str = "gatewise:breaker:",
                 refresh_s: float = 1.0, op_timeout_s: float = 0.5,
                 clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        if client is None and url is None:
            raise ValueError("RedisBreakers needs a redis url or client")
        self.config = config
        self.prefix = prefix
        self.channel = f"{prefix}events"
        self.refresh_s = refresh_s
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._owns_client = client is None
        self._client: aioredis.Redis = client if client is not None else aioredis.Redis.from_url(
            url or "", socket_timeout=op_timeout_s, socket_connect_timeout=op_timeout_s,
            decode_responses=True)
        self._record = self._client.register_script(_RECORD)
        self._try_probe = self._client.register_script(_TRY_PROBE)
        self._release = self._client.register_script(_RELEASE)
        self._ttl_ms = int((2 * (config.window_s + config.open_s) + 2 * _MAX_LEASE_S) * 1000)
        # `_RECORD`'s ARGV[5..12]: the same for every call
        self._record_conf: list[str | int] = [config.failure_threshold, repr(config.failure_ratio),
                             config.min_calls, repr(config.window_s / _BUCKETS), _BUCKETS,
                             repr(config.open_s), self._ttl_ms, self.channel]
        self._view: dict[str, _View] = {}
        self._pending: dict[str, int] = {}
        # Fail-open protection while Redis is unreachable (tokens starting with "p" are its).
        self._local = MemoryBreakers(config, rng=self._rng)
        self._decode = msgspec.json.Decoder(_Event).decode
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._warned_at = 0.0
        self.degraded = False

    # -- the synchronous view (router, fast path) ------------------------------------------
    def is_closed(self, deployment_id: str) -> bool:
        v = self._view.get(deployment_id)
        return (v is None or v[1] == CLOSED) and self._local.is_closed(deployment_id)

    def available(self, deployment_id: str) -> bool:
        v = self._view.get(deployment_id)
        if v is not None and v[1] != CLOSED:
            now = self._clock()
            if now < v[2] or now < v[3]:
                return False
        return self._local.available(deployment_id)

    def state(self, deployment_id: str) -> str:
        v = self._view.get(deployment_id)
        if v is None or v[1] == CLOSED:
            return self._local.state(deployment_id)
        return HALF_OPEN if v[1] == OPEN and self._clock() >= v[2] else v[1]

    def retry_in(self, deployment_id: str) -> float:
        v = self._view.get(deployment_id)
        if v is not None and v[1] != CLOSED:
            wait = probe_wait(self.config, v[2], v[3], self._clock())
            if wait > 0:
                return wait
        return self._local.retry_in(deployment_id)

    def note_success(self, deployment_id: str) -> None:
        p = self._pending
        p[deployment_id] = p.get(deployment_id, 0) + 1

    # -- writes ----------------------------------------------------------------------------
    def _key(self, deployment_id: str) -> str:
        return f"{self.prefix}{{{deployment_id}}}"  # a hash tag: one cluster slot per deployment

    def _record_args(self, deployment_id: str, now: str, fails: int, add: int,
                     token: str) -> list[str | int]:
        # The jitter is drawn only when this write may open the breaker.
        jitter = repr(1.0 - JITTER * self._rng.random()) if fails else "1"
        return [now, fails, add, token, *self._record_conf, deployment_id,
                repr(self.config.min_open_s), jitter, MAX_LEVEL]

    def _apply(self, deployment_id: str, reply: list[str]) -> tuple[str, str, str]:
        """Takes a script's reply into the view; returns (decision, a, b)."""
        version = int(reply[3])
        if version == 0:  # no state in Redis (never failed, or expired): closed
            self._view.pop(deployment_id, None)
        else:
            cur = self._view.get(deployment_id)
            if cur is None or version >= cur[0]:
                self._view[deployment_id] = (version, reply[0], float(reply[1]),
                                             float(reply[2]))
        return reply[4], reply[5], reply[6]

    async def admit(self, deployment_id: str, lease_s: float) -> str | None:
        self.start()
        if not self._local.is_closed(deployment_id):
            return self._local.admit_now(deployment_id, lease_s)
        v = self._view.get(deployment_id)
        if v is None or v[1] == CLOSED:
            return None
        now = self._clock()
        if now < v[2] or now < v[3]:
            raise circuit_open(deployment_id, probe_wait(self.config, v[2], v[3], now))
        token = "r" + os.urandom(8).hex()
        lease = min(max(lease_s, 1.0), _MAX_LEASE_S)
        try:
            reply = await self._try_probe(
                keys=[self._key(deployment_id)],
                args=[repr(now), repr(lease), token, self._ttl_ms, self.channel, deployment_id])
        except _REDIS_ERRORS as exc:
            self._trouble(exc)
            return None  # fail open: the local breaker judges this call
        self._healthy()
        decision, _, _ = self._apply(deployment_id, reply)
        if decision == "probe":
            return token
        if decision == "admit":
            return None
        view = self._view.get(deployment_id)
        raise circuit_open(deployment_id, None if view is None else
                           probe_wait(self.config, view[2], view[3], now))

    async def record_failure(self, deployment_id: str, error_type: str,
                             token: str | None = None) -> Transition | None:
        self.start()
        if token is not None and token.startswith("p"):
            return self._local.failure_now(deployment_id, error_type, token)
        pending = self._pending.pop(deployment_id, 0)
        now = self._clock()
        try:
            reply = await self._record(keys=[self._key(deployment_id)], args=self._record_args(
                deployment_id, repr(now), 1, pending + 1, token or ""))
        except _REDIS_ERRORS as exc:
            self._trouble(exc)
            return self._local.failure_now(deployment_id, error_type)
        self._healthy()
        decision, a, b = self._apply(deployment_id, reply)
        if decision != OPEN:
            return None
        old = HALF_OPEN if token else CLOSED
        return Transition(deployment_id, old, OPEN, error_type, int(a), int(b),
                          open_s=float(reply[1]) - now)

    async def record_probe_success(self, deployment_id: str, token: str) -> Transition | None:
        if token.startswith("p"):
            return self._local.probe_success_now(deployment_id, token)
        try:
            reply = await self._record(keys=[self._key(deployment_id)], args=self._record_args(
                deployment_id, repr(self._clock()), 0, 0, token))
        except _REDIS_ERRORS as exc:
            self._trouble(exc)
            return None
        self._healthy()
        decision, a, _ = self._apply(deployment_id, reply)
        if decision != CLOSED:
            return None
        return Transition(deployment_id, HALF_OPEN, CLOSED, recovery_s=float(a))

    async def release(self, deployment_id: str, token: str) -> None:
        if token.startswith("p"):
            await self._local.release(deployment_id, token)
            return
        try:
            reply = await self._release(keys=[self._key(deployment_id)], args=[
                repr(self._clock()), token, self._ttl_ms, self.channel, deployment_id])
        except _REDIS_ERRORS as exc:
            self._trouble(exc)
            return
        self._apply(deployment_id, reply)

    # -- background: subscription and periodic sync ----------------------------------------
    def start(self) -> None:
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._task = loop.create_task(self._run(), name="gatewise-breaker-sync")

    async def wait_ready(self) -> None:
        """Starts, and waits for the subscription and the first sync (start-up, tests).
        Callers bound the wait themselves (`asyncio.timeout`)."""
        self.start()
        await self._ready.wait()

    async def sync(self) -> None:
        """One round trip: flushes success counts and re-reads every known deployment."""
        deps = set(self._view) | set(self._pending)
        if not deps:
            return
        pending, self._pending = self._pending, {}
        now = repr(self._clock())
        order = sorted(deps)
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for dep in order:
                    await self._record(keys=[self._key(dep)], client=pipe,
                                       args=self._record_args(dep, now, 0, pending.get(dep, 0), ""))
                replies = await pipe.execute()
        except _REDIS_ERRORS:
            for dep, n in pending.items():  # keep the counts for the next try
                self._pending[dep] = self._pending.get(dep, 0) + n
            raise
        for dep, reply in zip(order, replies, strict=True):
            self._apply(dep, reply)

    async def _run(self) -> None:
        # redis-py can swallow a cancel that lands inside one of its reads (the read just
        # returns, or fails with its own timeout), so the loop also asks whether it was
        # cancelled: otherwise `aclose()`, and the gateway's shutdown with it, would hang.
        me = asyncio.current_task()
        delay = 0.2
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self.sync()
                self._healthy()
                self._ready.set()
                delay = 0.2
                next_sync = time.monotonic() + self.refresh_s
                while True:
                    wait = max(0.0, next_sync - time.monotonic())
                    msg = await pubsub.get_message(timeout=wait)
                    if me is not None and me.cancelling():
                        raise asyncio.CancelledError
                    if msg is not None and msg.get("type") == "message":
                        self._on_event(msg["data"])
                    if time.monotonic() >= next_sync:
                        await self.sync()
                        next_sync = time.monotonic() + self.refresh_s
            except asyncio.CancelledError:
                raise
            except _REDIS_ERRORS as exc:
                if me is not None and me.cancelling():
                    raise asyncio.CancelledError from exc
                self._trouble(exc)
                self._ready.set()  # running degraded is "ready": never block start-up on Redis
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(*_REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _on_event(self, data: Any) -> None:
        try:
            e = self._decode(data)
        except (msgspec.DecodeError, TypeError):
            return
        cur = self._view.get(e.d)
        if cur is None or e.v >= cur[0]:
            self._view[e.d] = (e.v, e.s, float(e.o), float(e.p))

    def _trouble(self, exc: BaseException) -> None:
        """Redis failed: run on the local breakers, and say so (at most every 10 s)."""
        self.degraded = True
        now = time.monotonic()
        if now - self._warned_at >= 10.0:
            self._warned_at = now
            log.warning("breaker redis unavailable; using this process's breakers",
                        extra={"error_type": type(exc).__name__})

    def _healthy(self) -> None:
        if self.degraded:
            self.degraded = False
            log.warning("breaker redis reachable again; shared breakers resumed")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out = self._local.snapshot()
        for dep, (version, st, ou, pu) in self._view.items():
            out[dep] = {"state": self.state(dep), "open_for_s": max(0.0, ou - now),
                        "probing": st == HALF_OPEN and pu > now, "version": version,
                        "shared": True}
        return out

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await _stop(task)
        if self._pending:
            with contextlib.suppress(*_REDIS_ERRORS):
                await asyncio.wait_for(self.sync(), 1.0)
        if self._owns_client:
            await self._client.aclose()


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancels the sync task and waits for it to end, cancelling again if a cancel was lost
    inside redis-py (see `_run`); gives up after about 2 s rather than hang a shutdown."""
    for _ in range(20):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=0.1)
        if done:
            if not task.cancelled() and task.exception() is not None:
                log.warning("breaker sync task failed", exc_info=task.exception())
            return
    log.warning("breaker sync task did not stop on cancel")
