"""`PIIMiddleware`: no personal data leaves unmasked, and the caller gets it back restored.

Runs once per call (input guardrails, before the cache and the router). Detection is CPU work
(Presidio, optionally spaCy): a request with more than `offload_chars` characters of text is
masked on a small dedicated thread pool so a burst of guarded prompts never stalls the event
loop; a tiny one is masked inline, where the hand-off would cost more than the pattern pass
(with NER, `offload_chars` defaults to 0: the model's pass is never short). The analyzer is built on
the pool once, on first use, so a gateway with the guard configured but idle pays nothing and
`import gatewise` never imports Presidio. The masked request replaces
`call.request` for everything downstream (fallbacks, retries and the ledger see placeholders
only); the answer is unmasked on the way back, or, for a stream, a `StreamUnmasker` is added to
the `ChunkStream`. When nothing is found the caller's request object goes through untouched.

Each request that finds anything emits one security event (`kind="pii"`) with entity counts
and actions, and adds `call.event("pii", ...)`; neither ever carries a value.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from gatewise.errors import PIIViolation
from gatewise.guardrails.pii.engine import (
    DEFAULT_PHONE_REGIONS,
    CustomRecognizer,
    PIIDetector,
    build_analyzer,
)
from gatewise.guardrails.pii.masking import (
    MaskOutcome,
    PIIAction,
    StreamUnmasker,
    mask_request,
    text_size,
    unmask_completion,
)
from gatewise.guardrails.pii.vault import PIIVault, vault_key
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import ChunkStream
from gatewise.security.events import SecurityEventSink
from gatewise.storage.base import KVStore
from gatewise.types.messages import AssistantMessage, FunctionCall, Message, ToolCall, UserMessage
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion

_ACTION_ORDER = ("block", "mask", "hash", "redact", "flag")
# Characters of request text above which the pattern pass runs on the pool (`PIIMiddleware`).
DEFAULT_OFFLOAD_CHARS = 512


@dataclass(frozen=True, slots=True)
class PIIPolicy:
    """What to look for and what to do with it.

    `entities` maps an entity type to its action (`mask` | `redact` | `hash` | `block` |
    `flag` | `allow`); every other detected type gets `default_action`. `detect` lists the
    types to look for (None: the engine's defaults, PERSON/LOCATION with `use_ner`, and every
    custom recognizer's entity). Which aliases, teams or keys a policy applies to is decided
    where the middleware is wired, not here."""

    entities: Mapping[str, PIIAction] = field(default_factory=dict)
    default_action: PIIAction = "mask"
    use_ner: bool = False
    custom: Sequence[CustomRecognizer] = ()
    score_threshold: float = 0.4
    detect: Sequence[str] | None = None
    phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS
    vault_ttl_s: float = 86_400.0
    # Conversations whose vault stays in this process's memory (least recently used go).
    vault_memory_limit: int = 10_000


class PIIMiddleware:
    def __init__(self, policy: PIIPolicy, *, vault_store: KVStore | None = None,
                 events: SecurityEventSink | None = None, executor: Executor | None = None,
                 offload_chars: int | None = None) -> None:
        self.policy = policy
        self._store = vault_store
        self._events = events
        self._executor = executor
        self.offload_chars = (offload_chars if offload_chars is not None
                              else 0 if policy.use_ner else DEFAULT_OFFLOAD_CHARS)
        self._own_executor: ThreadPoolExecutor | None = None
        self._detector: Future[PIIDetector] | None = None
        self._lock = threading.Lock()
        # (tenant, conversation) -> (vault, last used); bounded, least recently used first.
        self._vaults: OrderedDict[tuple[str, str], tuple[PIIVault, float]] = OrderedDict()

    # -- lifecycle ---------------------------------------------------------------------------
    def _pool(self) -> Executor:
        if self._executor is not None:
            return self._executor
        with self._lock:
            return self._own_pool()

    def _own_pool(self) -> ThreadPoolExecutor:
        """Called with `_lock` held."""
        if self._own_executor is None:
            self._own_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gatewise-pii")
        return self._own_executor

    def detector_future(self) -> Future[PIIDetector]:
        """Starts building the analyzer (once) in the pool; `warm()` awaits it."""
        with self._lock:
            if self._detector is None:
                pool = self._executor if self._executor is not None else self._own_pool()
                self._detector = pool.submit(self._build)
            return self._detector

    def _build(self) -> PIIDetector:
        p = self.policy
        detect = list(p.detect) if p.detect is not None else None
        if detect is not None:
            detect += [c.entity for c in p.custom if c.entity not in detect]
        analyzer = build_analyzer(use_ner=p.use_ner, custom=p.custom, entities=detect,
                                  phone_regions=p.phone_regions)
        return PIIDetector(analyzer, entities=detect, score_threshold=p.score_threshold)

    async def warm(self) -> None:
        """Builds the analyzer now (e.g. at server start) instead of on the first request."""
        await asyncio.wrap_future(self.detector_future())

    def close(self) -> None:
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=False, cancel_futures=True)
            self._own_executor = None

    # -- the middleware ----------------------------------------------------------------------
    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.kind != "chat":
            return await next(call)
        built = self._detector
        if built is not None and built.done() and not built.cancelled() and built.exception() is None:
            detector = built.result()
        else:
            detector = await asyncio.wrap_future(self.detector_future())
        vault = await self._vault_for(call)
        p = self.policy
        request = call.chat_request

        def mask() -> MaskOutcome:
            return mask_request(request, detector.find, vault, actions=p.entities,
                                default=p.default_action)

        if text_size(request) > self.offload_chars:
            outcome = await asyncio.get_running_loop().run_in_executor(self._pool(), mask)
        else:
            outcome = mask()
        # A conversation's earlier turns (kept masked by conversation memory) may bring
        # placeholders back in the answer even when this turn has no personal data.
        earlier = bool(call.conversation or call.thread) and len(vault) > 0
        if not outcome.counts and not earlier:
            return await next(call)
        if outcome.counts:
            self._report(call, outcome)
            if outcome.blocked:
                raise PIIViolation("request contains personal data the policy blocks: "
                                   + ", ".join(outcome.blocked))
            call.request = outcome.request
            if self._store is not None:
                await vault.save(self._store, p.vault_ttl_s)
        result = await next(call)
        if not outcome.masked and not earlier:
            return result
        mapping = vault.mapping()
        if isinstance(result, ChunkStream):
            result.add_transform(StreamUnmasker(mapping))
            return result
        if isinstance(result, ChatCompletion):
            return unmask_completion(result, mapping)
        return result

    def _report(self, call: Call, outcome: MaskOutcome) -> None:
        action = next((a for a in _ACTION_ORDER if a in outcome.actions), "flag")
        detail = {"entities": dict(outcome.counts), "actions": dict(outcome.actions)}
        call.event("pii", action=action, **detail)
        if self._events is not None:
            ident = call.identity
            self._events.emit("pii", action, request_id=call.request_id, tenant=ident.tenant,
                              key_id=ident.key_id, detail=detail)

    async def mask_texts(self, call: Call, texts: Sequence[tuple[str, bool]]) -> list[str]:
        """`texts` ((text, is JSON tool-call arguments)) masked under this policy with the
        call's vault, so a value keeps the placeholder the upstream saw: for what the gateway
        keeps or sends on after the call (a stored Responses thread, a judge's prompt).
        `block` masks as `redact` here: the text exists already and must not stay in clear."""
        if not texts:
            return []
        detector = await asyncio.wrap_future(self.detector_future())
        vault = await self._vault_for(call)
        p = self.policy
        messages: list[Message] = [
            AssistantMessage(tool_calls=[ToolCall(id=f"t{i}", type="function", function=FunctionCall(
                name="t", arguments=text))]) if is_json else UserMessage(content=text)
            for i, (text, is_json) in enumerate(texts)]
        request = ChatRequest(model="pii", messages=messages)
        actions: dict[str, PIIAction] = {k: ("redact" if v == "block" else v)
                                         for k, v in p.entities.items()}
        default: PIIAction = "redact" if p.default_action == "block" else p.default_action

        def mask() -> MaskOutcome:
            return mask_request(request, detector.find, vault, actions=actions,
                                default=default)

        if text_size(request) > self.offload_chars:
            outcome = await asyncio.get_running_loop().run_in_executor(self._pool(), mask)
        else:
            outcome = mask()
        if self._store is not None:
            await vault.save(self._store, p.vault_ttl_s)
        out: list[str] = []
        for m in outcome.request.messages:
            if isinstance(m, AssistantMessage):
                out.append(m.tool_calls[0].function.arguments if m.tool_calls else "")
            else:
                out.append(m.content if isinstance(m.content, str) else "")
        return out

    async def mapping_of(self, tenant: str, conversation: str) -> dict[str, str]:
        """The placeholders a conversation's (or thread's) vault can restore: this process's
        copy and the shared one. Empty once the vault expired or was forgotten."""
        with self._lock:
            hit = self._vaults.get((tenant, conversation))
        vault = PIIVault(vault_key(tenant, conversation))
        if hit is not None and time.monotonic() - hit[1] < self.policy.vault_ttl_s:
            vault.merge(hit[0].dumps())
        if self._store is not None:
            await vault.load(self._store)
        return vault.mapping()

    def forget(self, tenant: str, conversation: str) -> None:
        """Drops a conversation's vault from this process (its conversation was deleted)."""
        with self._lock:
            self._vaults.pop((tenant, conversation), None)

    async def _vault_for(self, call: Call) -> PIIVault:
        """The conversation's vault (memory, refreshed from the store when there is one), or
        the call's own for a request without a conversation id (fresh on its first use)."""
        conv = call.conversation or call.thread
        if not conv:
            if not isinstance(call.vault, PIIVault):
                call.vault = PIIVault()
            return call.vault
        tenant = call.identity.tenant
        now = time.monotonic()
        ttl = self.policy.vault_ttl_s
        with self._lock:
            hit = self._vaults.pop((tenant, conv), None)
            vault = hit[0] if hit is not None and now - hit[1] < ttl else PIIVault(vault_key(tenant, conv))
            self._vaults[(tenant, conv)] = (vault, now)
            while len(self._vaults) > self.policy.vault_memory_limit:
                self._vaults.popitem(last=False)
        if self._store is not None:
            await vault.load(self._store)
        return vault
