"""`FallbackMiddleware`: when an alias fails for good, serve the call from another one.

Runs once per call, outside the router: everything inside it (routing, retries, the breaker,
the provider call) runs once per alias tried. The next alias depends on *why* the last one
failed, which is why this is not a router strategy (the router only chooses among one alias's
deployments):

- context too long (`ContextLengthExceededError`) → `context_window_fallbacks[alias]`, then the
  alias's general `fallbacks`;
- content filtered (`ContentFilteredError`) → `content_policy_fallbacks[alias]` only;
- rate limited (`RateLimitedError`, also when every deployment of the alias was) →
  `rate_limit_fallback` (normally the embedded local model) when set, then `fallbacks`;
- any other retryable or 5xx failure (connection, timeout, `CircuitOpenError`, bad upstream
  response) → `fallbacks[alias]`;
- the caller's own mistakes (400, 401/403 from the provider, 404, policy refusals) never fail
  over unless a chain exists for that class: another model would fail the same way.

Chains of the alias that just failed are consulted first (the router may have rewritten the
alias), then those of the alias the caller asked for; an alias is never tried twice.

When every alias failed, the last resorts run in this order, each only when configured and
never for the caller's own mistakes:

1. `stale_on_outage`: the last good non-streaming answer to the same request (tenant + alias +
   hash of the canonical request without `stream`/`user`), header `x-gatewise-stale: true`;
2. `simplify_on_failure`: one more attempt on the requested alias with the system prompt, the
   last user turn and nothing else (no tools, no response format), header
   `x-gatewise-simplified: true` (skipped when that changes nothing: it would be a plain retry);
3. `escalate`: a 200 whose message calls the tool `escalate_to_human` with the reason and every
   attempt, header `x-gatewise-escalated: true`, so applications can hand over instead of
   crashing;

otherwise the original error when a single alias was tried (callers keep their typed error),
or `AllTargetsFailedError` with every alias's error.

Streams: the chain returns a `ChunkStream` whose first chunk already arrived, so a failure
before the first byte raises here and fails over without the client noticing. After the first
byte nothing can be taken back; the server ends the stream with an OpenAI-shaped error event.

Every failover, stale answer, simplification and escalation is an incident (a `call.event`, a
throttled structured log line on `gatewise.incident` and `gatewise_incidents_total`), reported
through the gateway's shared `IncidentRecorder`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from gatewise.config.schema import RouterConfig
from gatewise.errors import (
    AllTargetsFailedError,
    ContentFilteredError,
    ContextLengthExceededError,
    GatewayError,
    RateLimitedError,
)
from gatewise.observability.incidents import ESCALATION, FAILOVER, IncidentRecorder
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import ChunkStream, stream_completion
from gatewise.storage.base import KVStore
from gatewise.storage.memory import MemoryKV
from gatewise.types.ids import new_id
from gatewise.types.messages import (
    DeveloperMessage,
    FunctionCall,
    Message,
    SystemMessage,
    ToolCall,
    UserMessage,
)
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage, Usage

log = logging.getLogger("gatewise.fallback")

# Why an alias failed, as far as choosing the next one is concerned.
CONTEXT = "context_length"
CONTENT = "content_policy"
RATE_LIMIT = "rate_limit"
OUTAGE = "outage"

STALE_ANSWER = "stale_answer"
SIMPLIFIED_PROMPT = "simplified_prompt"
ESCALATION_TOOL = "escalate_to_human"


def classify(exc: GatewayError) -> str | None:
    """The failover class of an error; None for the caller's own mistakes."""
    if isinstance(exc, AllTargetsFailedError) and exc.errors:
        if all(isinstance(e, RateLimitedError) for e in exc.errors):
            return RATE_LIMIT
        return classify(exc.errors[-1])
    if isinstance(exc, ContextLengthExceededError):
        return CONTEXT
    if isinstance(exc, ContentFilteredError):
        return CONTENT
    if isinstance(exc, RateLimitedError):
        return RATE_LIMIT
    if exc.retryable or exc.status >= 500:
        return OUTAGE
    return None


def simplify(req: ChatRequest) -> ChatRequest | None:
    """System/developer messages + the last user turn, without tools or a response format;
    None when that is the request already (another try would be a plain retry)."""
    msgs = req.messages
    last_user = next((m for m in reversed(msgs) if isinstance(m, UserMessage)), None)
    if last_user is None:
        return None
    kept: list[Message] = [m for m in msgs if isinstance(m, SystemMessage | DeveloperMessage)]
    kept.append(last_user)
    if (len(kept) == len(msgs) and req.tools is None and req.response_format is None
            and req.tool_choice is None):
        return None
    return msgspec.structs.replace(req, messages=kept, tools=None, tool_choice=None,
                                   parallel_tool_calls=None, response_format=None)


@dataclass(slots=True)
class Attempt:
    """One alias tried: where it went and how it failed."""

    alias: str
    deployment: str | None
    error: GatewayError

    def to_json(self) -> dict[str, Any]:
        return {"alias": self.alias, "deployment": self.deployment,
                "error_type": type(self.error).__name__,
                "message": self.error.public_message()}


class FallbackMiddleware:
    def __init__(self, config: RouterConfig, *, store: KVStore | None = None,
                 incidents: IncidentRecorder | None = None) -> None:
        """`store` keeps last good answers (memory by default); `incidents` is the gateway's
        shared recorder (a private one when not given)."""
        self._chains: dict[tuple[str, str], tuple[str, ...]] = {}
        aliases = set(config.fallbacks) | set(config.context_window_fallbacks) \
            | set(config.content_policy_fallbacks)
        rate = [config.rate_limit_fallback] if config.rate_limit_fallback else []
        for a in aliases:
            general = config.fallbacks.get(a, [])
            self._chains[(CONTEXT, a)] = (*config.context_window_fallbacks.get(a, []), *general)
            self._chains[(CONTENT, a)] = tuple(config.content_policy_fallbacks.get(a, []))
            self._chains[(OUTAGE, a)] = tuple(general)
            self._chains[(RATE_LIMIT, a)] = (*rate, *general)
        self._rate_only = tuple(rate)
        self._timeout = config.timeout_s
        self._stale = config.stale_on_outage
        self._stale_ttl = config.stale_ttl_s
        self._simplify = config.simplify_on_failure
        self._escalate = config.escalate
        self._store: KVStore = store if store is not None else MemoryKV()
        self._incidents = incidents if incidents is not None else IncidentRecorder()
        self._encode = msgspec.json.Encoder(order="sorted").encode
        self._decode = msgspec.json.Decoder(ChatCompletion).decode

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.deadline is None:
            call.deadline = call.started + self._timeout
        original = call.alias
        stale_key = self._stale_key(call) if self._stale and call.kind == "chat" else None
        try:
            result = await next(call)
        except GatewayError as exc:
            return await self._recover(call, next, original, exc, stale_key)
        if stale_key is not None and isinstance(result, ChatCompletion):
            await self._remember(stale_key, result)
        return result

    # -- failover --------------------------------------------------------------------------
    async def _recover(self, call: Call, next: Handler, original: str, exc: GatewayError,
                       stale_key: str | None) -> Any:
        attempts: list[Attempt] = []
        tried = {original}
        alias = original
        while True:
            self._record(call, exc, attempts)
            tried.add(call.alias)
            nxt = None if self._expired(call) else \
                self._next_alias((call.alias, alias, original), exc, tried)
            if nxt is None:
                break
            self._incident(call, FAILOVER, attempts, to=nxt, reason=classify(exc))
            call.response_headers["x-gatewise-fallback"] = nxt
            tried.add(nxt)
            alias = nxt
            self._reset(call, nxt)
            try:
                result = await next(call)
            except GatewayError as e:
                exc = e
                continue
            if stale_key is not None and isinstance(result, ChatCompletion):
                await self._remember(stale_key, result)
            return result
        return await self._last_resort(call, next, original, attempts, stale_key)

    def _next_alias(self, owners: tuple[str, str, str], exc: GatewayError,
                    tried: set[str]) -> str | None:
        kind = classify(exc)
        if kind is None:
            return None
        for owner in owners:
            for name in self._chains.get((kind, owner), ()):
                if name not in tried:
                    return name
        if kind == RATE_LIMIT:  # the local-model escape hatch needs no per-alias chain
            for name in self._rate_only:
                if name not in tried:
                    return name
        return None

    @staticmethod
    def _record(call: Call, exc: GatewayError, attempts: list[Attempt]) -> None:
        """Notes the failed attempt as served: `call.alias` is what the router resolved to."""
        dep = call.deployment
        attempts.append(Attempt(call.alias, dep.id if dep is not None else None, exc))
        # Inner middlewares (retry) may have recorded it already; keep one entry per failure.
        if not call.failures or call.failures[-1] is not exc:
            call.failures.append(exc)

    @staticmethod
    def _reset(call: Call, alias: str) -> None:
        """Per-attempt fields start clean, so nothing of a failed alias leaks into the next."""
        call.alias = alias
        call.deployment = None
        call.usage = None
        call.response_headers.pop("x-gatewise-deployment", None)

    @staticmethod
    def _expired(call: Call) -> bool:
        return call.deadline is not None and time.perf_counter() >= call.deadline

    # -- last resorts ----------------------------------------------------------------------
    async def _last_resort(self, call: Call, next: Handler, original: str,
                           attempts: list[Attempt], stale_key: str | None) -> Any:
        # The caller's own mistake on the alias it asked for is not an outage: no stale
        # answer or escalation hides it.
        if call.kind != "chat" or classify(attempts[0].error) is None:
            raise _failure(original, attempts)
        if stale_key is not None:
            cached = await self._recall(stale_key)
            if cached is not None:
                self._reset(call, original)
                call.response_headers["x-gatewise-stale"] = "true"
                self._incident(call, STALE_ANSWER, attempts)
                return await _deliver(call, cached)
        if self._simplify and not self._expired(call):
            req = call.chat_request
            simple = simplify(req)
            if simple is not None:
                self._incident(call, SIMPLIFIED_PROMPT, attempts)
                self._reset(call, original)
                call.request = simple
                try:
                    result = await next(call)
                except GatewayError as exc:
                    self._record(call, exc, attempts)
                else:
                    call.response_headers["x-gatewise-simplified"] = "true"
                    return result
                finally:
                    call.request = req
        if self._escalate:
            self._reset(call, original)
            call.response_headers["x-gatewise-escalated"] = "true"
            self._incident(call, ESCALATION, attempts)
            return await _deliver(call, escalation(original, attempts))
        raise _failure(original, attempts)

    # -- stale answers ---------------------------------------------------------------------
    def _stale_key(self, call: Call) -> str:
        """Tenant + alias + hash of the request as the model sees it: `stream` and `user` do
        not change the answer, so a stream may be served a stored non-streaming answer."""
        canon = msgspec.structs.replace(call.chat_request, model="", stream=False,
                                        stream_options=None, user=None)
        digest = hashlib.blake2b(self._encode(canon), digest_size=16).hexdigest()
        return f"stale:{call.identity.tenant}:{call.alias}:{digest}"

    async def _remember(self, key: str, completion: ChatCompletion) -> None:
        try:
            await self._store.set(key, msgspec.json.encode(completion), self._stale_ttl)
        except Exception:  # a broken store must not fail a good answer
            log.warning("stale store write failed", exc_info=True)

    async def _recall(self, key: str) -> ChatCompletion | None:
        try:
            raw = await self._store.get(key)
            return None if raw is None else self._decode(raw)
        except Exception:  # an outage plus a broken store: fall through to the next resort
            log.warning("stale store read failed", exc_info=True)
            return None

    # -- incidents -------------------------------------------------------------------------
    def _incident(self, call: Call, kind: str, attempts: list[Attempt], **data: Any) -> None:
        """Reported with the alias, deployment and error of the latest failed attempt."""
        last = attempts[-1]
        self._incidents.record(kind, call=call, alias=last.alias, deployment=last.deployment,
                               error_type=type(last.error).__name__, attempt=len(attempts),
                               **data)


def _failure(original: str, attempts: list[Attempt]) -> GatewayError:
    """The single error itself when only one alias was tried, so callers keep its type."""
    if len(attempts) == 1:
        return attempts[0].error
    names = ", ".join(f"{a.alias}: {type(a.error).__name__}" for a in attempts)
    return AllTargetsFailedError(f"every target for '{original}' failed ({names})",
                                 [a.error for a in attempts])


def escalation(alias: str, attempts: list[Attempt]) -> ChatCompletion:
    """A result applications can act on: one `escalate_to_human` tool call with the reason
    and every attempt, finish reason `tool_calls`."""
    last = attempts[-1].error
    kind = classify(last) or "error"
    args = {
        "reason": f"every target for '{alias}' failed ({kind}): {last.public_message()}",
        "error_type": type(last).__name__,
        "attempts": [a.to_json() for a in attempts],
    }
    call = ToolCall(id=new_id("call"), type="function",
                    function=FunctionCall(name=ESCALATION_TOOL, arguments=json.dumps(args)))
    return ChatCompletion(
        id=new_id(), created=int(time.time()), model=alias,
        choices=[Choice(index=0, message=ResponseMessage(content=None, tool_calls=[call]),
                        finish_reason="tool_calls")],
        usage=Usage(),
    )


async def _deliver(call: Call, completion: ChatCompletion) -> ChatCompletion | ChunkStream:
    """A ready answer in the shape the caller asked for: as is, or as a stream (whose usage
    chunk, as before, is only sent to callers who asked for usage)."""
    if not call.stream:
        return completion
    return await stream_completion(call, completion,
                                   usage=call.chat_request.wants_usage_in_stream)
