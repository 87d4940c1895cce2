"""`Gateway`: the library's front door, and what the server and CLI are built on.

One gateway = one validated config, one pooled transport, one provider pool, one middleware
chain and one metrics registry. No module-level state: two gateways in one process are fully
independent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from gatewise.accounting.build import Accounting
from gatewise.accounting.context import ContextFitMiddleware
from gatewise.accounting.estimate import CostEstimate, Estimator, TokenEstimate
from gatewise.accounting.usage import cost_of
from gatewise.cache import build_cache
from gatewise.config.loader import ResolvedConfig, load_config
from gatewise.errors import GatewayError, InvalidRequestError, ModelNotFoundRequestError
from gatewise.guardrails.build import Guardrails
from gatewise.maintenance.build import build_operations
from gatewise.memory import ConversationMemory, build_memory, build_middlewares
from gatewise.observability.collectors import breaker_collector
from gatewise.observability.health import build_health
from gatewise.observability.incidents import IncidentRecorder
from gatewise.observability.metrics import GatewayMetrics
from gatewise.observability.recent_shared import build_request_log
from gatewise.observability.telemetry import TelemetryMiddleware
from gatewise.observability.tracing import build_tracing
from gatewise.orchestration.cascade import CascadeResult, Gate, cascade
from gatewise.orchestration.consensus import ConsensusResult, Normalize, consensus
from gatewise.orchestration.middleware import OrchestrationMiddleware
from gatewise.orchestration.parallel import ParallelResult, parallel
from gatewise.pipeline import steps
from gatewise.pipeline.core import ANONYMOUS, Call, Identity, Middleware, StepListener, build_chain
from gatewise.pipeline.provider_call import ProviderCall
from gatewise.pipeline.results import CallInfo, ChatResult, ChatStream, EmbedResult
from gatewise.pipeline.scoped import IdentityScoped
from gatewise.pipeline.stream import ChunkStream
from gatewise.pipeline.sync import SyncRunner
from gatewise.prompts import Prompts
from gatewise.prompts.middleware import EMPTY_TURN
from gatewise.providers.base import Capabilities
from gatewise.providers.deployment import Deployment
from gatewise.providers.pool import ProviderPool
from gatewise.quality.build import build_quality
from gatewise.quality.experiments import build_middleware as build_experiment_middleware
from gatewise.rag.answer import RagSpec
from gatewise.rag.build import build_rag
from gatewise.rag.middleware import build_middleware as build_rag_middleware
from gatewise.rag.timeline import pii_covered
from gatewise.resilience import build_breakers
from gatewise.resilience.breaker_middleware import BreakerMiddleware
from gatewise.resilience.fallback import FallbackMiddleware
from gatewise.resilience.hedge import HedgeMiddleware
from gatewise.resilience.retry_middleware import RetryMiddleware
from gatewise.routing.middleware import RouteResolveMiddleware, RouterMiddleware
from gatewise.routing.router import Router
from gatewise.routing.strategies import CostStrategy
from gatewise.routing.tracking import TrackingMiddleware
from gatewise.security.admin import AdminService
from gatewise.security.build import Security
from gatewise.security.rotation import build_key_rotation
from gatewise.storage.factory import open_stores
from gatewise.storage.quality import FeedbackRecord
from gatewise.titles import Titles, check_title_model, with_title_cache, with_title_prompt
from gatewise.transport.base import Transport
from gatewise.types.embeddings import EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.validation import (
    chat_request_from_dict,
    embedding_request_from_dict,
    messages_with_prompt,
)

if TYPE_CHECKING:
    from gatewise.tools import ToolRegistry

T = TypeVar("T")


class Gateway:
    def __init__(
        self,
        config: ResolvedConfig | str | os.PathLike[str] | None = None,
        *,
        transport: Transport | None = None,
        middlewares: Sequence[Middleware] = (),
        seed: int | None = None,
        tools: ToolRegistry | None = None,
    ) -> None:
        self.config = config if isinstance(config, ResolvedConfig) else load_config(config)
        self.metrics = GatewayMetrics()
        # OpenTelemetry traces (None when off: then nothing of OpenTelemetry is imported).
        self.tracing = build_tracing(self.config.config.observability.tracing,
                                     headers=self.config.tracing_headers, env=self.config.env)
        self.pool = ProviderPool(transport, network=self.config.network)
        cfg = self.config.config
        rc = cfg.router
        # One incident recorder and one breaker board per gateway (shared through Redis, or
        # by `serve --workers` through the state dir), exported in this gateway's metrics.
        self.incidents = IncidentRecorder(self.metrics.incidents, self.metrics.breaker_recovery)
        # Every store (governance, ledger, cache, counters, leases, ...); no I/O until used.
        # Opened before the breakers, which may share the PostgreSQL pool and its LISTEN/NOTIFY.
        self.stores = open_stores(self.config)
        self.breakers = build_breakers(rc.breaker, self.config.redis_url,
                                       state_dir=self.config.state_dir,
                                       workers=cfg.server.workers, database=cfg.storage.database,
                                       postgres=self.stores.pg, new_pubsub=self.stores.new_pubsub)
        breaking = rc.breaker.enabled
        if breaking:  # gatewise_breaker_state, read from the board's memory at scrape time
            self.metrics.add_collector(breaker_collector(
                self.metrics.breaker_state,
                [d.id for deps in self.config.aliases.values() for d in deps],
                self.breakers.snapshot))
        self.router = Router(
            self.config, seed=seed, capabilities=self._capabilities,
            available=(lambda d: self.breakers.available(d.id)) if breaking else None,
            retry_in=(lambda d: self.breakers.retry_in(d.id)) if breaking else None)
        # Security (keys, teams, audit, credentials) and accounting (ledger, budgets, rate
        # limits) over the stores they share.
        self.security = Security(self.config, self.stores, metrics=self.metrics)
        self.accounting = Accounting(
            self.config, self.stores, metrics=self.metrics,
            transport=self.pool.transport if cfg.accounting.alert_webhook else None)
        # Another replica's budget change: this one re-reads its budget records now.
        self.security.keys.on_budgets = self.accounting.budgets.invalidate
        # What the admin API and the CLI's admin commands call.
        self.admin = AdminService(self.security, self.accounting)
        # Automated provider-key rotation (`security.rotation`): the `key_rotation` job.
        self.key_rotation = build_key_rotation(self.config, self.security, self.pool,
                                               self.metrics)
        self.security_events = self.security.events
        if isinstance(self.router.strategy, CostStrategy):
            # Cost routing prices deployments from the same table the ledger bills with.
            self.router.strategy.prices = self.accounting.prices.routing_prices
        # Guardrails per key / team / alias: injection, tools, PII, output checks. The PII
        # vault (original values) is shared through Redis (sealed) when configured.
        self.guardrails = Guardrails(cfg.guardrails, events=self.security_events, tools=tools,
                                     vault_store=self.security.pii_vault_store())
        # The exact response cache (None unless `cache:` enables it for some alias, or the
        # title alias's preset does: `gatewise.titles.prompt`).
        check_title_model(cfg.titles.model, [*self.config.aliases, *cfg.orchestrations])
        self.cache = build_cache(
            with_title_cache(cfg.cache, cfg.titles.model, enabled=cfg.titles.cache),
            shared=self.stores.kv, redis=bool(self.config.storage_redis_url),
            deployments={a: [d.id for d in deps] for a, deps in self.config.aliases.items()},
            prices=self.accounting.prices, metrics=self.metrics, embeddings=self,
            remote=bool(self.config.storage_redis_url) or cfg.storage.database == "postgres",
            pubsub_url=self.config.storage_redis_url, new_pubsub=self.stores.new_pubsub,
            channel=f"{cfg.storage.redis_prefix}cache:invalidate")
        # Health checks behind /readyz (providers, stores, the local model, quotas, the API)
        # and maintenance jobs run by one replica at a time; other parts add their jobs with
        # `self.maintenance.register(job)` (`gatewise.maintenance`).
        self.health = build_health(
            self.config, pool=self.pool, stores=self.stores, metrics=self.metrics,
            budgets=self.accounting.budgets,
            credential=lambda name: self.security.vault.get(name, count=False))
        self.operations = build_operations(self.config, self.stores, self.health,
                                           security=self.security, cache=self.cache,
                                           metrics=self.metrics)
        self.maintenance = self.operations.scheduler
        if self.key_rotation is not None:
            self.maintenance.register(self.key_rotation)
        # Last good answers (`stale_on_outage`) where every replica reads them: the shared
        # key-value store with Redis or PostgreSQL, else the cache's store, else in process.
        shared_kv = bool(self.config.storage_redis_url) or cfg.storage.database == "postgres"
        self.fallback = FallbackMiddleware(
            rc, incidents=self.incidents,
            store=self.stores.kv if shared_kv else
            self.cache.cache.store if self.cache is not None else None)
        # Prompt templates, few-shot sets and model formats (`prompts:` and the admin API);
        # token and cost estimates before sending, with the same counters and prices.
        # The built-in `title` template is added unless the config declares its own.
        self.prompts = Prompts(with_title_prompt(cfg.prompts, config_file=self.config.file),
                               self.stores.prompts, self.accounting.tokenizers,
                               self.config.aliases, config_file=self.config.file)
        self.estimator = Estimator(self.accounting.tokenizers, self.accounting.prices,
                                   default_max_tokens=cfg.accounting.default_max_tokens)
        # Conversation memory (history kept per conversation id, summarised when it outgrows
        # the window) and assistants; `gw.conversations` lists, reads and deletes.
        self.conversations: ConversationMemory = build_memory(
            self.config, self.stores.conversations, prices=self.accounting.prices,
            tokenizers=self.accounting.tokenizers, runner=self,
            forget=self.guardrails.forget_conversation, restore=self.guardrails.restore,
            reported_window=lambda d: self.router.capabilities.get(d).context_window)
        assistants, memory = build_middlewares(self.config, self.conversations)
        # Knowledge bases (`rag:`): collections, ingestion, search. The store opens, the
        # embedder loads and numpy/usearch/bm25s import on first use, never before.
        self.rag = build_rag(self.config, embeddings=self, tokenizers=self.accounting.tokenizers,
                             runner=self)
        # Answers from a knowledge base (`metadata.rag`, `rag.aliases`, `answer()`): the
        # collection is resolved before access control and budgets (`.scope`); retrieval and
        # the prompt happen inside them and outside the guardrails, which then mask the
        # retrieved text like the rest of the request (`gatewise.rag.middleware`).
        self.rag_answers = build_rag_middleware(cfg.rag, self.rag, self.rag.searcher,
                                                templates=self.prompts.middleware,
                                                window=self.conversations.windows.budget,
                                                pii_covered=pii_covered(cfg.guardrails))
        self._started = False
        self._start_lock = asyncio.Lock()
        # Once per call: the ledger (sees every outcome), a RAG call's collection, access,
        # rate limits, budgets, the knowledge-base answer, the guardrails, then
        # orchestration aliases (each branch is a call through everything after it), then
        # alias resolution (rules, steps, complexity), then fallback chains.
        # Templates render before the ledger: a request they refuse stores nothing.
        # A/B experiments pick the variant first: its template is the one rendered, and every
        # stage after sees its model and parameters (`gatewise.quality.experiments`).
        self.experiments = build_experiment_middleware(self.config,
                                                       self.metrics.experiment_requests)
        # Quality scores and records (`gatewise.quality`): right inside telemetry, so it sees
        # every outcome and the caller's alias; `gw.quality.store` holds the rows.
        self.quality = build_quality(self.config, self.stores.quality, metrics=self.metrics,
                                     runner=self, report_quality=self.report_quality,
                                     mask=self.guardrails.mask_texts)
        for job in self.quality.jobs():  # quality_check, quality_retention
            self.maintenance.register(job)
        # Kept as an attribute: the web console's live request log reads `telemetry.recent`.
        self.telemetry = TelemetryMiddleware(
            self.metrics, log_requests=cfg.observability.logging.requests,
            recent=build_request_log(self.stores.recent_log))
        per_call: list[Middleware] = [
            self.telemetry,
            *([self.quality.middleware] if self.quality.middleware is not None else []),
            *([self.experiments] if self.experiments is not None else []),
            self.prompts.middleware,
            *([assistants] if assistants is not None else []), *self.accounting.per_call,
            self.rag_answers.scope,
            IdentityScoped([self.security.access, *self.accounting.per_identity]),
            self.rag_answers]
        if self.guardrails.middleware is not None:
            per_call.append(self.guardrails.middleware)
        if memory is not None:  # inside the guardrails: it keeps the masked conversation
            per_call.append(memory)
        if cfg.orchestrations:
            prices = self.accounting.prices
            per_call.append(OrchestrationMiddleware(
                cfg.orchestrations, price=lambda c: cost_of(c, prices)))
        per_call += middlewares
        if self.router.resolves:
            per_call.append(RouteResolveMiddleware(self.router))
        if self.cache is not None:  # keys on the masked request and the resolved alias
            per_call.append(self.cache)
        per_call.append(self.fallback)
        # Once per alias: the deployment choice; hedging needs to see that choice.
        per_alias: list[Middleware] = [RouterMiddleware(self.router, resolve=False)]
        if rc.hedge_after_s:
            per_alias.append(HedgeMiddleware(self.router, rc.hedge_after_s,
                                             counter=self.metrics.hedges))
        # Once per attempt: deployment rate limits, retries, the breaker, performance
        # tracking, the provider call.
        per_attempt: list[Middleware] = [*self.accounting.per_attempt, RetryMiddleware(
            rc, incidents=self.incidents, retries=self.metrics.retries,
            available=self.breakers.available if breaking else None)]
        if breaking:
            per_attempt.append(BreakerMiddleware(self.breakers, incidents=self.incidents))
        per_attempt.append(TrackingMiddleware(self.router.tracker))
        per_attempt.append(self.prompts.per_attempt)  # the deployment's prompt format
        per_attempt.append(ContextFitMiddleware(self.accounting.prices,
                                                self.accounting.tokenizers))
        per_attempt += self.security.per_provider_call
        if self.tracing is not None:  # spans: request, guards, cache, retrieval, attempts
            per_call, per_attempt = self.tracing.instrument(
                per_call, per_attempt, cache=self.cache, retrieval=self.rag_answers,
                guards=self.guardrails.middleware)
        self._chain = build_chain([*per_call, *per_alias, *per_attempt], ProviderCall(self.pool))
        self._sync: SyncRunner | None = None
        # Epic titles (`gatewise.titles`, `/v1/titles`): the `title` prompt as a chat call.
        self.titles = Titles(self, default_model=lambda: cfg.titles.model
                             or self.router.default_model,
                             temperature=cfg.titles.temperature, run_sync=self._run_sync,
                             max_depth=cfg.server.max_json_depth)

    def _capabilities(self, dep: Deployment) -> Capabilities:
        """What a deployment's model supports, from its provider client (the router caches it)."""
        return self.pool.client_for(dep.target).capabilities(dep.target)

    def report_quality(self, deployment_id: str, score: float) -> None:
        """A 0..1 judgement of an answer (`result.info.deployment`); feeds latency/cost routing."""
        self.router.report_quality(deployment_id, score)

    async def feedback(self, request_id: str, score: float | str, comment: str | None = None,
                       *, identity: Identity = ANONYMOUS) -> FeedbackRecord:
        """A user's rating of a response (0..1, "up" or "down"; `gatewise.quality.feedback`)."""
        return await self.quality.feedback(identity, request_id, score, comment)

    def feedback_sync(self, request_id: str, score: float | str, comment: str | None = None,
                      **kw: Any) -> FeedbackRecord:
        return self._run_sync(self.feedback(request_id, score, comment, **kw))

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], **kw: Any) -> Gateway:
        return cls(load_config(path), **kw)

    # -- the pipeline entry used by every front end ------------------------------------------
    async def run(self, call: Call) -> Any:
        if not self._started:
            await self.start()
        if self.cache is not None:  # bad cache controls: a 400 before anything is recorded
            self.cache.check(call)
        if call.listener is None:
            return await self._chain(call)
        try:  # a watched call: its timeline ends with `done` or `error` (`pipeline.steps`)
            return steps.watch(call, await self._chain(call))
        except Exception as exc:
            steps.failed(call, exc)
            raise

    async def start(self) -> None:
        """Replays a crashed process's ledger journal and starts background work (ledger
        flushing, key-revocation broadcast, MCP tool servers). The server calls it at
        start-up; otherwise the library's first call does, once however many race."""
        async with self._start_lock:
            if not self._started:
                await self.accounting.start()
                await self.security.start()
                await self.guardrails.start()
                if self.cache is not None:
                    self.cache.start()
                self.operations.start()
                self.telemetry.recent.start()
                # Shared breakers follow the others from start-up, not from this worker's
                # first call on an alias (which would otherwise go out on an empty view).
                self.breakers.start()
                self._started = True

    # -- library API -------------------------------------------------------------------------
    def _chat_request(self, prompt: str | None, model: str | None, messages: Any,
                      params: dict[str, Any], template: str | None = None, *,
                      continues: bool = False) -> ChatRequest:
        """`continues`: a conversation id is given, so the turn may open with results of
        tool calls the stored history made (`check_chat_request`)."""
        if template is not None and prompt is None and not messages:
            messages = [EMPTY_TURN]  # the template brings the turns (`gatewise.prompts`)
        messages = messages_with_prompt(prompt, messages)
        model = model or self.router.default_model
        if not model:
            raise InvalidRequestError("no model given and no default_model configured",
                                      param="model")
        return chat_request_from_dict({"model": model, "messages": messages, **params},
                                      continues=continues)

    async def chat(self, prompt: str | None = None, *, model: str | None = None,
                   messages: list[dict[str, Any]] | None = None,
                   identity: Identity = ANONYMOUS, conversation: str | None = None,
                   fit_context: bool = False, cache: dict[str, Any] | None = None,
                   template: str | None = None, variables: dict[str, Any] | None = None,
                   assistant: str | None = None, on_step: StepListener | None = None,
                   **params: Any) -> ChatResult:
        """One chat completion. `prompt` is shorthand for a trailing user message;
        `conversation` keys per-conversation state (the PII vault's placeholders);
        `fit_context` trims the oldest history to the model's context window; `cache`
        controls the response cache (`{"mode": "no-store" | "no-cache" | "only-if-cached",
        "ttl_s": 60}`); `template` (`name` or `name@version`) renders a prompt template with
        `variables` in front of the messages (which may then be left out). `conversation`
        also keeps the conversation server-side (send only the new turn); `assistant` picks
        a configured assistant (its model when `model` is not given). `on_step(name, data)`
        hears the call's steps as they happen (route, cache, attempts, done; see
        `gatewise.pipeline.steps`)."""
        params.pop("stream", None)
        call = self._library_call(prompt, model, messages, params, identity, conversation,
                                  fit_context, cache, template, variables, assistant)
        if on_step is not None:
            steps.listen(call, on_step)
        out = await self.run(call)
        assert isinstance(out, ChatCompletion)
        return ChatResult(out, CallInfo.of(call))

    def chat_sync(self, prompt: str | None = None, **kw: Any) -> ChatResult:
        return self._run_sync(self.chat(prompt, **kw))

    def stream(self, prompt: str | None = None, *, model: str | None = None,
               messages: list[dict[str, Any]] | None = None,
               identity: Identity = ANONYMOUS, conversation: str | None = None,
               fit_context: bool = False, cache: dict[str, Any] | None = None,
               template: str | None = None, variables: dict[str, Any] | None = None,
               assistant: str | None = None, on_step: StepListener | None = None,
               **params: Any) -> ChatStream:
        """`async for chunk in gw.stream(...)`; tokens arrive as the model produces them.
        `on_step` as for `chat` (`first_token` and `done` come as the stream passes them)."""
        params["stream"] = True
        call = self._library_call(prompt, model, messages, params, identity, conversation,
                                  fit_context, cache, template, variables, assistant)
        if on_step is not None:
            steps.listen(call, on_step)
        return ChatStream(self._open_stream(call))

    def _library_call(self, prompt: str | None, model: str | None,
                      messages: list[dict[str, Any]] | None, params: dict[str, Any],
                      identity: Identity, conversation: str | None, fit_context: bool,
                      cache: dict[str, Any] | None, template: str | None,
                      variables: dict[str, Any] | None, assistant: str | None) -> Call:
        """`chat` and `stream` take the same options; one place turns them into a call."""
        if assistant is not None and model is None:
            model = f"assistant/{assistant}"
        call = self._chat_call(self._chat_request(prompt, model, messages, params, template,
                                                  continues=conversation is not None),
                               identity, conversation, fit_context)
        call.assistant = assistant or call.assistant
        call.cache_options = cache
        if template is not None:
            call.prompt = (template, variables)
        return call

    @staticmethod
    def _chat_call(req: ChatRequest, identity: Identity, conversation: str | None,
                   fit_context: bool) -> Call:
        """The library's `conversation=` and `fit_context=` add to what `metadata` says."""
        call = Call("chat", req, identity)
        if conversation is not None:
            call.conversation = conversation
        call.fit_context = call.fit_context or fit_context
        return call

    # -- estimates before sending (gatewise.accounting.estimate) -------------------------------
    async def count_tokens(self, prompt: str | None = None, *, model: str | None = None,
                           messages: list[dict[str, Any]] | None = None,
                           template: str | None = None, variables: dict[str, Any] | None = None,
                           identity: Identity = ANONYMOUS, **params: Any) -> TokenEstimate:
        """Prompt tokens of a chat request (a template rendered first) for each deployment of
        `model`, with the offline tokenizers budgets use; nothing is sent."""
        req = self._chat_request(prompt, model, messages, params, template)
        out = await self.estimate(req, identity=identity, template=template,
                                  variables=variables, cost=False)
        assert isinstance(out, TokenEstimate)
        return out

    def count_tokens_sync(self, prompt: str | None = None, **kw: Any) -> TokenEstimate:
        return self._run_sync(self.count_tokens(prompt, **kw))

    async def estimate_cost(self, prompt: str | None = None, *, model: str | None = None,
                            messages: list[dict[str, Any]] | None = None,
                            template: str | None = None,
                            variables: dict[str, Any] | None = None,
                            completion_tokens: int | None = None,
                            identity: Identity = ANONYMOUS, **params: Any) -> CostEstimate:
        """USD a chat request may cost per deployment of `model`: its prompt tokens, plus
        `completion_tokens` (else its `max_tokens`, else the accounting default) at the price
        table's rates; nothing is sent."""
        req = self._chat_request(prompt, model, messages, params, template)
        out = await self.estimate(req, identity=identity, template=template,
                                  variables=variables, cost=True,
                                  completion_tokens=completion_tokens)
        assert isinstance(out, CostEstimate)
        return out

    def estimate_cost_sync(self, prompt: str | None = None, **kw: Any) -> CostEstimate:
        return self._run_sync(self.estimate_cost(prompt, **kw))

    async def estimate(self, req: ChatRequest, *, identity: Identity = ANONYMOUS,
                       template: str | None = None, variables: dict[str, Any] | None = None,
                       cost: bool, completion_tokens: int | None = None
                       ) -> TokenEstimate | CostEstimate:
        """A token count (or cost estimate) of `req` as the pipeline would send it: its
        template (named here, in its metadata, or bound to its alias) rendered first, and
        the caller's access to the model checked as a chat call's is."""

        async def run(call: Call) -> TokenEstimate | CostEstimate:
            if template is not None:
                prepared, _ = await self.prompts.middleware.prepare(req, template, variables,
                                                                    alias=req.model)
            else:
                prepared = await self.prompts.prepare(req)
            deps = self.deployments_of(req.model)
            if cost:
                return await self.estimator.cost(prepared, req.model, deps,
                                                 completion_tokens=completion_tokens)
            return await self.estimator.count(prepared, req.model, deps)

        call = Call("chat", req, identity)
        if identity.permissions is None:
            return await run(call)
        out: TokenEstimate | CostEstimate = await self.security.access(call, run)
        return out

    def deployments_of(self, model: str) -> list[Deployment]:
        """The deployments an alias (or an allowed direct `provider/model`) is served by."""
        deps = self.config.aliases.get(model)
        if not deps:
            direct = self.config.direct(model)
            deps = [direct] if direct is not None else []
        if not deps:
            raise ModelNotFoundRequestError(f"The model '{model}' does not exist",
                                            param="model")
        return deps

    async def _open_stream(self, call: Call) -> AsyncIterator[ChunkStream]:
        out = await self.run(call)
        assert isinstance(out, ChunkStream)
        yield out

    # -- knowledge-base answers (gatewise.rag) ------------------------------------------------
    @overload
    async def answer(self, question: str, *, collection: str, model: str | None = None,
                     k: int | None = None, filters: dict[str, Any] | None = None,
                     mmr: float | None = None, rerank: bool = False,
                     identity: Identity = ANONYMOUS, stream: Literal[False] = False,
                     **params: Any) -> ChatResult: ...

    @overload
    async def answer(self, question: str, *, collection: str, model: str | None = None,
                     k: int | None = None, filters: dict[str, Any] | None = None,
                     mmr: float | None = None, rerank: bool = False,
                     identity: Identity = ANONYMOUS, stream: Literal[True],
                     **params: Any) -> ChatStream: ...

    async def answer(self, question: str, *, collection: str, model: str | None = None,
                     k: int | None = None, filters: dict[str, Any] | None = None,
                     mmr: float | None = None, rerank: bool = False,
                     identity: Identity = ANONYMOUS, stream: bool = False,
                     **params: Any) -> ChatResult | ChatStream:
        """`question` answered from the collection `collection` (a name the identity's team
        can see) by `model` (default: the default model), through the whole chain as a chat
        call with `metadata.rag` would be: the result's completion carries `citations` and
        `rag`, its text `[n]` markers and `annotations`. `k` hits (default `rag.default_k`),
        metadata `filters`, `mmr` diversity and `rerank` as for a search."""
        if k is not None and (isinstance(k, bool) or not 1 <= k <= 100):
            raise InvalidRequestError("k is an integer from 1 to 100", param="k")
        params["stream"] = stream
        call = self._chat_call(self._chat_request(question, model, None, params), identity,
                               None, False)
        call.rag = RagSpec(collection, k if k is not None else self.config.config.rag.default_k,
                           filters=filters or None, mmr=mmr, rerank=rerank)
        if stream:
            return ChatStream(self._open_stream(call))
        out = await self.run(call)
        assert isinstance(out, ChatCompletion)
        return ChatResult(out, CallInfo.of(call))

    def answer_sync(self, question: str, **kw: Any) -> ChatResult:
        """`answer` without an event loop (never streamed)."""
        kw.pop("stream", None)
        out = self._run_sync(self.answer(question, **kw))
        assert isinstance(out, ChatResult)
        return out

    async def embed(self, input: str | list[str], *, model: str | None = None,
                    identity: Identity = ANONYMOUS, **params: Any) -> EmbedResult:
        model = model or self.router.default_model
        req = embedding_request_from_dict({"model": model, "input": input, **params})
        call = Call("embed", req, identity)
        out = await self.run(call)
        assert isinstance(out, EmbeddingResponse)
        return EmbedResult(out, CallInfo.of(call))

    def embed_sync(self, input: str | list[str], **kw: Any) -> EmbedResult:
        return self._run_sync(self.embed(input, **kw))

    # -- orchestration (thin: see gatewise.orchestration) -------------------------------------
    async def parallel(self, prompt: str | None = None, *, models: Sequence[str],
                       messages: list[dict[str, Any]] | None = None,
                       identity: Identity = ANONYMOUS, deadline_s: float | None = None,
                       **params: Any) -> ParallelResult:
        """The same request to every model at once; one result per model, in order."""
        return await parallel(self, prompt, models=models, messages=messages,
                              identity=identity, deadline_s=deadline_s, **params)

    async def consensus(self, prompt: str | None = None, *, models: Sequence[str],
                        messages: list[dict[str, Any]] | None = None, judge: str | None = None,
                        min_agreement: float = 0.5, normalize: Normalize = "auto",
                        identity: Identity = ANONYMOUS, deadline_s: float | None = None,
                        **params: Any) -> ConsensusResult:
        """The answer most models agree on (or the judge's pick), with the agreement level."""
        return await consensus(self, prompt, models=models, messages=messages, judge=judge,
                               min_agreement=min_agreement, normalize=normalize,
                               identity=identity, deadline_s=deadline_s, **params)

    async def cascade(self, prompt: str | None = None, *, models: Sequence[str],
                      gate: Gate | Sequence[Gate] | None = None,
                      messages: list[dict[str, Any]] | None = None, judge: str | None = None,
                      min_score: float = 0.7, identity: Identity = ANONYMOUS,
                      deadline_s: float | None = None, **params: Any) -> CascadeResult:
        """Cheapest model first; the next one only when a quality gate rejects the answer."""
        return await cascade(self, prompt, models=models, gate=gate, messages=messages,
                             judge=judge, min_score=min_score, identity=identity,
                             deadline_s=deadline_s, **params)

    def models(self) -> list[str]:
        return [*self.router.aliases(), *self.config.config.orchestrations]

    def deployments(self) -> list[Deployment]:
        return [d for deps in self.config.aliases.values() for d in deps]

    async def validate_keys(self) -> dict[str, GatewayError | None]:
        """Each deployment's `validate_key` result: None when it works."""
        results: dict[str, GatewayError | None] = {}
        seen: set[str] = set()
        for dep in self.deployments():
            if dep.id in seen:
                continue
            seen.add(dep.id)
            if dep.problem:
                results[dep.id] = GatewayError(dep.problem)
                continue
            try:
                await self.pool.client_for(dep.target).validate_key(dep.target)
                results[dep.id] = None
            except GatewayError as exc:
                results[dep.id] = exc
        return results

    async def warmup(self) -> None:
        """Loads in-process models now instead of on the first request."""
        self.breakers.start()  # shared breakers: subscribe and sync before the first request
        await self.guardrails.warm()
        await self.prompts.warm()
        rc = self.config.config.rag
        if rc.aliases or rc.collections:  # the chunk screen's injection detector
            await self.rag_answers.warm()
        for dep in self.deployments():
            if dep.problem is None:
                client = self.pool.client_for(dep.target)
                warm = getattr(client, "warmup", None)
                if warm is not None:
                    await warm(dep.target)
                    # The model's own vocabulary counts its tokens for budgets and limits;
                    # opening it blocks, so it happens here, off the event loop.
                    await asyncio.to_thread(self.accounting.tokenizers.for_target, dep.target)
        await self.health.check_all(kinds=("local_model",))  # loaded now: /readyz says so

    async def aclose(self) -> None:
        await self.operations.aclose()  # jobs stop, leases go, before what they work on
        await self.telemetry.recent.aclose()  # the live log's last batch goes out
        await self.guardrails.aclose()
        await self.rag.aclose()
        await self.prompts.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await self.quality.aclose()  # judges finish: they call models through the breakers
        # The breakers before the stores they may share (PostgreSQL's pool and LISTEN session):
        # closed after them, the shared board heard its subscription fail (a false "breaker
        # unavailable" warning on every shutdown) and its last success counts were lost.
        await self.breakers.aclose()
        await self._close_records()
        self._started = False
        await self.pool.aclose()
        if self.tracing is not None:  # flushes queued spans: blocking, so off the loop
            await asyncio.to_thread(self.tracing.shutdown)
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def _close_records(self) -> None:
        """Accounting settles and flushes the ledger, security flushes key usage and its
        audit writes; the stores they share close last (quality, whose judges call models
        through the breakers, closes before them, in `aclose`)."""
        await self.accounting.aclose()
        await self.security.aclose()
        await self.stores.aclose()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Sync counterpart of `aclose`, for code that only used the `_sync` methods."""
        if self._sync is not None:
            self._sync.submit(self.operations.aclose())
            self._sync.submit(self.guardrails.aclose())
            self._sync.submit(self.rag.aclose())
            self._sync.submit(self.prompts.aclose())
            if self.cache is not None:
                self._sync.submit(self.cache.aclose())
            self._sync.submit(self.quality.aclose())
            self._sync.submit(self.breakers.aclose())
            self._sync.submit(self._close_records())
            self._sync.submit(self.pool.aclose())
            if self.tracing is not None:
                self.tracing.shutdown()
            self._sync.close()
            self._sync = None

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("the _sync methods cannot run inside an event loop; "
                               "await the async method instead")
        if self._sync is None:
            self._sync = SyncRunner()
        return self._sync.submit(coro)

