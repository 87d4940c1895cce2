"""`CacheMiddleware`: the exact response cache, once per call.

Placed after the guardrails (so it keys on the masked request and stores the masked answer)
and after route resolution (so the key holds the resolved alias), before fallback and the
router. A hit replays the stored completion as JSON or as a stream (`stream_completion`), with
its real usage marked cached (`usage.prompt_tokens_details.cached_tokens` = prompt tokens), a
`cache_hit` event the ledger reads (cost 0, the saving in the record's `extra`) and the
response header `x-gatewise-cache: hit`; otherwise `miss`, or `bypass` when the request may
not be cached or asked not to be served from the cache.

A miss is stored when the answer may be (see `policy`) and came from the alias asked for: not
from a fallback alias, a stale copy, a simplified prompt or an escalation. A streamed miss is
assembled from its chunks as they pass (before any outer transform, so in masked form) and
stored only when the stream ends cleanly with every choice finished.

Every lookup is counted (`stats`: per team and alias, shared through the store), the entry's
key is sent back (`x-gatewise-cache-key`, for invalidation by key), and a stored answer
carries the request's tags and eviction priority (`policy.entry_options`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from gatewise.accounting.usage import CACHE_HIT, Prices
from gatewise.cache.invalidation import Invalidator
from gatewise.cache.key import cache_key, scope_of
from gatewise.cache.maintenance import CacheMaintenance
from gatewise.cache.policy import (
    DEFAULT_CONTROL,
    AliasPolicy,
    CacheControl,
    CachePolicy,
    control_from_headers,
    control_from_options,
)
from gatewise.cache.stats import CacheStats
from gatewise.cache.store import Entry, ResponseCache
from gatewise.errors import CacheMissError
from gatewise.observability.metrics import GatewayMetrics
from gatewise.pipeline.background import BackgroundTasks
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.recorder import StreamRecorder
from gatewise.pipeline.stream import ChunkStream, stream_completion
from gatewise.types.ids import new_id
from gatewise.types.responses import ChatCompletion, PromptTokensDetails

if TYPE_CHECKING:  # numpy and the embedder load only when the semantic cache is on
    from gatewise.cache.semantic import SemanticCache, SemanticQuery

HEADER = "x-gatewise-cache"
SIMILARITY_HEADER = "x-gatewise-cache-similarity"
# The entry's key (hit or miss): what `DELETE /admin/cache/keys/{key}` takes.
KEY_HEADER = "x-gatewise-cache-key"
log = logging.getLogger("gatewise.cache")
# Answers not to store: they are not the alias's own answer to this request.
_SERVED_OTHERWISE = ("x-gatewise-fallback", "x-gatewise-stale", "x-gatewise-simplified",
                     "x-gatewise-escalated")


class CacheMiddleware:
    def __init__(self, cache: ResponseCache, policy: CachePolicy, *,
                 deployments: Mapping[str, Sequence[str]] | None = None,
                 prices: Prices | None = None,
                 clock: Callable[[], float] = time.time,
                 metrics: GatewayMetrics | None = None,
                 maintenance_interval_s: float = 60.0,
                 semantic: SemanticCache | None = None) -> None:
        """`deployments`: each alias's deployment ids (part of the key); `prices` prices a
        stored answer once, so a hit can record what it saved. `stats`, `invalidation` and
        `maintenance` work on the same store as the entries."""
        self.cache = cache
        self.policy = policy
        self._deployments = {a: tuple(sorted(ids)) for a, ids in (deployments or {}).items()}
        self._prices = prices
        self._clock = clock
        self.background = BackgroundTasks("cache write")
        self.semantic = semantic  # looked up on an exact miss (see `semantic`)
        self.stats = CacheStats(cache.store, metrics)
        self.invalidation = Invalidator(cache.store, self._deployments, near=cache.near)
        self.maintenance = CacheMaintenance(cache.store, self.stats, metrics=metrics,
                                            interval_s=maintenance_interval_s)

    def _counted_as(self, alias: str) -> str:
        """The alias statistics and metrics count a lookup under: a configured alias, else
        `other`. The cache runs before routing, so `alias` may be any name a caller made up
        (a 404 to come, or a direct `provider/model`); counting each would grow the stats
        store and the metric series without bound."""
        if not self._deployments or alias in self._deployments:
            return alias
        return "other"

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.kind != "chat":
            return await next(call)
        policy = self.policy.for_alias(call.alias)
        if not policy.enabled:
            return await next(call)
        control = self._control(call)
        req = call.chat_request
        headers = call.response_headers
        team = call.identity.team
        # Checked before anything is looked up or sent: a bad tag stores nothing.
        tags, priority = self.policy.entry_options(policy, req, control)
        if self.policy.request_bypass(policy, req) is not None:
            if control.mode == "only-if-cached":
                raise CacheMissError("this request is never cached (sampled without a seed)")
            headers[HEADER] = "bypass"
            self.stats.record("bypass", team=team, alias=self._counted_as(call.alias))
            if call.listener is not None:  # the timeline's cache step (`pipeline.steps`)
                call.event("cache", result="bypass")
            return await next(call)
        alias = call.alias
        scope = scope_of(call.identity, global_scope=policy.global_scope)
        key = cache_key(scope, alias, self._deployments.get(alias, (alias,)), req)
        headers[KEY_HEADER] = key
        # The semantic side: what this request is compared by (None: never by meaning), worked
        # out only once the exact cache has missed.
        query: SemanticQuery | None = None
        if control.mode != "no-cache":
            entry = await self.cache.get(key)
            if entry is not None:
                return await self._hit(call, key, entry)
            if self.semantic is not None:
                query = self.semantic.query(scope, alias, req)
                found = None if query is None else await self.semantic.lookup(query, self.cache)
                if found is not None:
                    return await self._hit(call, found.key, found.entry, found.similarity)
            if control.mode == "only-if-cached":
                self.stats.record("miss", team=team, alias=self._counted_as(alias))
                if call.listener is not None:
                    call.event("cache", result="miss")
                raise CacheMissError("no cached answer for this request")
        bypass = control.mode == "no-cache"
        headers[HEADER] = "bypass" if bypass else "miss"
        self.stats.record("bypass" if bypass else "miss", team=team,
                          alias=self._counted_as(alias))
        if call.listener is not None:
            call.event("cache", result="bypass" if bypass else "miss")
        result = await next(call)
        if control.mode == "no-store" or call.alias != alias \
                or any(h in headers for h in _SERVED_OTHERWISE):
            return result
        ttl = self.policy.ttl(policy, req, control)
        if self.semantic is not None and control.mode == "no-cache":
            query = self.semantic.query(scope, alias, req)
        stored = _Stored(key, scope, alias, ttl, tags, priority, query)
        if isinstance(result, ChatCompletion):
            value = self._encode(call, policy, result, ttl)
            if value is not None:
                await self._put(stored, value)
        elif isinstance(result, ChunkStream):
            recorder = StreamRecorder()
            result.add_transform(recorder)
            result.on_finish(lambda c, error: self._stream_done(c, policy, recorder, stored,
                                                                error))
        return result

    async def _put(self, stored: _Stored, value: bytes) -> None:
        if await self.cache.put(stored.key, value, stored.ttl, tags=stored.tags,
                                priority=stored.priority):
            try:
                await self.invalidation.remember(stored.scope, stored.alias)
            except Exception:  # bookkeeping only: the entry is stored
                log.warning("cache scope registry write failed", exc_info=True)
            if stored.query is not None and self.semantic is not None:
                await self.semantic.remember(stored.query, stored.key, stored.ttl)

    def check(self, call: Call) -> None:
        """The request's cache controls (headers, `cache=` options, metadata tags and
        priority), checked before the chain runs: a bad one is a 400 with nothing reserved,
        recorded or stored."""
        if call.kind == "chat":
            self.policy.entry_options(self.policy.default, call.chat_request,
                                      self._control(call))

    @staticmethod
    def _control(call: Call) -> CacheControl:
        if call.cache_options is not None:
            return control_from_options(call.cache_options)
        if call.request_headers:
            return control_from_headers(call.request_headers)
        return DEFAULT_CONTROL

    def _encode(self, call: Call, policy: AliasPolicy, completion: ChatCompletion,
                ttl: float) -> bytes | None:
        if self.policy.answer_bypass(policy, completion) is not None:
            return None
        dep = call.deployment
        cost: float | None = None
        usage = completion.usage
        if self._prices is not None and dep is not None and usage is not None:
            try:
                cost = self._prices.cost(usage, self._prices.for_deployment(dep))
            except Exception:  # an unpriced deployment: the saving is unknown
                cost = None
        now = self._clock()
        return ResponseCache.encode(Entry(completion=completion, cost_usd=cost,
                                          deployment=dep.id if dep is not None else "",
                                          stored_at=now, expires_at=now + ttl))

    def _stream_done(self, call: Call, policy: AliasPolicy, recorder: StreamRecorder,
                     stored: _Stored, error: BaseException | None) -> None:
        if error is not None:
            return
        completion = recorder.completion(call)
        if completion is None:
            return
        value = self._encode(call, policy, completion, stored.ttl)
        if value is not None:
            self.background.spawn(self._put(stored, value))

    async def _hit(self, call: Call, key: str, entry: Entry,
                   similarity: float | None = None) -> Any:
        """Replays `entry`; `similarity` is set for a semantic hit (another request's entry)."""
        completion = entry.completion
        completion.id = new_id()
        usage = completion.usage
        if usage is not None:
            usage.cost_usd = msgspec.UNSET
            details = usage.prompt_tokens_details or PromptTokensDetails()
            usage.prompt_tokens_details = msgspec.structs.replace(
                details, cached_tokens=usage.prompt_tokens, cache_creation_tokens=0)
        call.usage = usage
        semantic = similarity is not None
        call.event(CACHE_HIT, key=key, saved_usd=entry.cost_usd or 0.0,
                   deployment=entry.deployment, semantic=semantic)
        call.response_headers[HEADER] = "semantic-hit" if semantic else "hit"
        if call.listener is not None:
            if similarity is None:
                call.event("cache", result="hit")
            else:
                call.event("cache", result="semantic_hit", similarity=round(similarity, 4))
        if similarity is not None:  # the entry served is another request's
            call.response_headers[SIMILARITY_HEADER] = f"{similarity:.4f}"
            call.response_headers[KEY_HEADER] = key
        self.stats.record("semantic_hit" if semantic else "hit", team=call.identity.team,
                          alias=self._counted_as(call.alias),
                          tokens=usage.total_tokens if usage is not None else 0,
                          usd=entry.cost_usd or 0.0)
        if not call.stream:
            return completion
        return await stream_completion(call, completion,
                                       usage=call.chat_request.wants_usage_in_stream)

    def start(self) -> None:
        """Starts the maintenance job and the near cache's invalidation listener (the
        gateway's start)."""
        self.maintenance.start()
        if self.cache.near is not None:
            self.cache.near.start()

    async def aclose(self) -> None:
        await self.background.drain()
        await self.maintenance.aclose()
        if self.semantic is not None:
            await self.semantic.aclose()
        await self.cache.aclose()


@dataclass(frozen=True, slots=True)
class _Stored:
    """Where and how a miss's answer is stored."""

    key: str
    scope: str
    alias: str
    ttl: float
    tags: tuple[str, ...]
    priority: str
    query: SemanticQuery | None = None  # indexed by meaning too, once stored
