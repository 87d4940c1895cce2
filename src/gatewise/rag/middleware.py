"""`RagMiddleware`: a chat call that names a knowledge base is answered from it, with citations.

A call names one by its alias (`rag.aliases`: the alias also has deployments in `models:`,
which routing picks among as usual; the request's `model` stays the alias), by
`metadata.rag` (a collection name or a JSON object, see `answer.parse_spec`), or through the
library's `Gateway.answer`. Two stages, because two things must happen at different depths of
the chain (see `gatewise.pipeline.core` for the whole order):

- `scope` (once per call, after the usage ledger, before access control, rate limits and
  budget reservation): parses the request (a bad `metadata.rag` is a 400 naming it) and
  resolves the collection for the caller's identity (404 `collection_not_found` for one its
  team cannot see), so a mistaken call is refused before anything is counted or reserved;
  the resolved `RagSpec` waits on `call.rag`.
- the middleware itself (after access control, rate limits and budgets, *before* the
  guardrails): retrieves, screens the chunks for indirect injections, builds the prompt
  within the context window, rewrites the request, runs the rest of the chain and resolves
  the answer's citations (JSON and stream). Sitting outside the guardrails is what makes the
  caller's PII policy mask the retrieved text: the guardrails see the augmented request
  (PII masking covers system messages too) and unmask the answer before it comes back here,
  so citations and groundedness work on the real text. Retrieval runs only for a caller the
  access checks let through.

Either stage alone works (the middleware resolves what `scope` did not), so a chain built
without `scope` still answers, only with the 404 after the reservation.

Response: `citations` and `rag` in the body (the final stream chunk for a stream), OpenAI's
`annotations` on each message (each choice's finishing delta), and the headers
`x-gatewise-rag-hits` (chunks retrieved above `min_score`) and `x-gatewise-rag`
(collection, sources sent, chunks dropped or flagged as injections).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

import msgspec

from gatewise.config.schema import RagConfig
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import ChunkStream, stream_completion
from gatewise.rag.answer import (
    RAG_KEY,
    Fits,
    InjectionScanner,
    Judge,
    Outcome,
    RagSpec,
    TemplateRenderer,
    build_messages,
    finish_completion,
    fit_sources,
    not_found_completion,
    question_of,
    screen,
    spec_for,
    stream_finalizer,
)
from gatewise.rag.bm25 import function_words, informative_terms, tokenize
from gatewise.rag.citations import CitationStreamer, Source
from gatewise.rag.timeline import PiiCovered, chunk_details, preview_allowed
from gatewise.rag.types import Hit, Resolver, Searcher
from gatewise.types.messages import Message
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion

__all__ = ["RagMiddleware", "RagScopeMiddleware", "build_middleware"]

# The alias's context budget for a request (`gatewise.memory.window.ContextWindows.budget`).
WindowFn = Callable[[ChatRequest, str], Fits | None]


def relevant(hit: Hit, min_score: float | None, min_similarity: float,
             terms: frozenset[str] | None = None) -> bool:
    """Whether a hit may become a source. Fused scores are ranks, not relevance: a search
    always returns k hits, however unrelated the rest of the collection is. So a hit that only
    the vector list found (no query word in it) must also be at least `min_similarity` close
    to the question; a small model handed an unrelated source mixes it into its answer.

    `terms`: the question's informative words (`bm25.informative_terms`). A BM25 match
    counts only when the chunk shares one of them: "What is the capital of Australia?" finds
    an LED table by its "What to do" column, which says nothing about the question. Ranking
    is left alone (dropping question words from the BM25 query changes which sources a
    follow-up gets); only this floor ignores them. None: any BM25 match counts."""
    if min_score is not None and hit.score < min_score:
        return False
    sim = hit.scores.get("vector")
    if "bm25" in hit.scores and (terms is None or not terms.isdisjoint(
            tokenize(hit.chunk.text))):
        return True
    return sim is None or sim >= min_similarity


class RagScopeMiddleware:
    """The early stage: the call's `RagSpec`, its collection resolved, on `call.rag`."""

    def __init__(self, owner: RagMiddleware) -> None:
        self._owner = owner

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): a call that asks for no knowledge-base
        # answer gets no coroutine of this stage.
        if call.kind != "chat" or self._owner.spec_of(call) is None:
            return next(call)
        return self._scoped(call, next)

    async def _scoped(self, call: Call, next: Handler) -> Any:
        await self._owner.prepare(call)
        return await next(call)


class RagMiddleware:
    def __init__(self, config: RagConfig, resolver: Resolver, searcher: Searcher, *,
                 scanner: InjectionScanner | None = None,
                 templates: TemplateRenderer | None = None,
                 window: WindowFn | None = None,
                 pii_covered: PiiCovered | None = None) -> None:
        """`scanner`: the indirect-injection detector (None: chunks are not scanned);
        `templates`: renders named prompt templates; `window`: the alias's context budget
        (None: sources are not trimmed to fit); `pii_covered`: whether a PII policy covers a
        call (None: none does), which keeps chunk previews out of its timeline."""
        self.config = config
        self.pii_covered = pii_covered
        self.resolver = resolver
        self.searcher = searcher
        self.scanner = scanner
        self.templates = templates
        self.window = window
        self.judge = Judge(config.grounded_threshold)
        self.scope = RagScopeMiddleware(self)
        self._function_words: frozenset[str] | None = None

    def function_words(self) -> frozenset[str]:
        """Built on the first answer (importing bm25s's lists costs more than a gateway that
        never answers from a collection should pay)."""
        if self._function_words is None:
            self._function_words = function_words()
        return self._function_words

    async def warm(self) -> None:
        """Trains the injection detector off the event loop, before the first answer."""
        warm = getattr(self.scanner, "warm_up", None)
        if warm is not None:
            await asyncio.to_thread(warm)

    def spec_of(self, call: Call) -> RagSpec | None:
        """What the call asks of a knowledge base (its collection maybe not resolved yet), or
        None."""
        if isinstance(call.rag, RagSpec):
            return call.rag
        return spec_for(call.chat_request, call.alias, self.config)

    async def prepare(self, call: Call) -> RagSpec | None:
        """The call's spec with its collection resolved (kept on `call.rag`), or None."""
        spec = self.spec_of(call)
        if spec is None:
            return None
        if spec.record is None:
            spec = replace(spec, record=await self.resolver.resolve(call.identity,
                                                                     spec.collection))
        call.rag = spec
        return spec

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): a call that asks for no knowledge-base
        # answer gets no coroutine of this stage.
        if call.kind != "chat" or self.spec_of(call) is None:
            return next(call)
        return self._answered(call, next)

    async def _answered(self, call: Call, next: Handler) -> Any:
        spec = await self.prepare(call)
        assert spec is not None
        assert spec.record is not None
        req = call.chat_request
        question = question_of(req)
        hits = await self.searcher.search(spec.record, question, k=spec.k,
                                          filters=spec.filters, mmr=spec.mmr,
                                          rerank=spec.rerank)
        outcome = Outcome(spec.collection)
        retrieved = hits
        terms = informative_terms(question, self.function_words())
        kept = [h for h in hits
                if relevant(h, spec.min_score, self.config.min_similarity, terms)]
        outcome.below_min_score = len(hits) - len(kept)
        hits = kept
        outcome.hits = len(hits)
        screened = await screen(hits, self.scanner, self.config.scan_injection)
        outcome.injection_dropped = screened.dropped
        outcome.injection_flagged = screened.flagged
        if not screened.sources:
            return await self._not_found(call, outcome, self._details(
                call, spec, retrieved, kept, screened.sources, []))
        md = {k: v for k, v in (req.metadata or {}).items() if k != RAG_KEY}
        base = msgspec.structs.replace(req, metadata=md or None)
        budget = self.window(base, call.alias) if self.window is not None else None

        async def build(sources: list[Source]) -> list[Message]:
            return await build_messages(base, question, sources, template=spec.template,
                                        renderer=self.templates, alias=call.alias)

        sources, messages, outcome.budget_dropped = await fit_sources(screened.sources, build,
                                                                      budget)
        outcome.sources = len(sources)
        call.request = msgspec.structs.replace(base, messages=messages)
        call.response_headers.update(outcome.headers())
        call.event("rag", **outcome.to_json(), **self._details(call, spec, retrieved, kept,
                                                                screened.sources, sources))
        result = await next(call)
        if isinstance(result, ChunkStream):
            result.add_transform(CitationStreamer(
                [s.hit for s in sources], collection=spec.collection,
                finalize=stream_finalizer(sources, outcome, self.judge),
                supports=self.judge.supports))
            return result
        if isinstance(result, ChatCompletion):
            return finish_completion(result, sources, outcome, self.judge)
        return result

    def _details(self, call: Call, spec: RagSpec, retrieved: list[Hit], kept: list[Hit],
                 screened: list[Source], sources: list[Source]) -> dict[str, Any]:
        """The `rag` step's per-chunk `chunks` (`gatewise.rag.timeline`), only for a call
        someone listens to: nothing is built otherwise, and no chunk detail ever reaches
        `call.events`' other readers (logs, traces) through an unobserved call."""
        if call.listener is None:
            return {}
        assert spec.record is not None
        pii = self.pii_covered is not None and self.pii_covered(call)
        return {"chunks": chunk_details(spec.collection, retrieved, kept=kept,
                                        screened=screened, sources=sources,
                                        preview=preview_allowed(call.identity, spec.record,
                                                                pii))}

    async def _not_found(self, call: Call, outcome: Outcome,
                         details: dict[str, Any] | None = None) -> Any:
        """Nothing to answer from: the not-found answer, no model call, zero usage."""
        call.response_headers.update(outcome.headers())
        call.event("rag", **outcome.to_json(), not_found=True, **(details or {}))
        completion = not_found_completion(call.chat_request.model, outcome)
        if not call.stream:
            call.usage = completion.usage
            return completion
        rag = completion.rag if isinstance(completion.rag, dict) else {}
        stream = await stream_completion(call, completion)
        stream.add_transform(CitationStreamer([], collection=outcome.collection,
                                              finalize=lambda *_: rag))
        return stream


def build_middleware(config: RagConfig, resolver: Resolver, searcher: Searcher, *,
                     templates: TemplateRenderer | None = None, window: WindowFn | None = None,
                     scanner: InjectionScanner | None = None,
                     pii_covered: PiiCovered | None = None) -> RagMiddleware:
    """The answer stage from the config: `scanner` defaults to a fresh indirect-injection
    detector (trained on first use or `warm()`) unless `rag.scan_injection` is `off`."""
    if scanner is None and config.scan_injection != "off":
        from gatewise.guardrails.injection import InjectionDetector

        scanner = InjectionDetector()
    return RagMiddleware(config, resolver, searcher, scanner=scanner, templates=templates,
                         window=window, pii_covered=pii_covered)
