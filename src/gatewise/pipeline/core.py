"""The request pipeline: an ordered chain of middleware `async (call, next) -> result`.

Everything a request touches lives on the `Call` (request, identity, deployment, timings,
usage, events). A middleware reads and adds to it and never reaches into another middleware.
The library, the server and the CLI all run the same chain, built by `Gateway`.

Which middleware runs when (`Gateway` builds the chain, outermost first):

- once per call: telemetry (request id, timings, metrics) → (A/B experiment variant) →
  (prompt templates → assistant) →
  usage ledger (sees every outcome, blocked ones too) → knowledge-base scope (the collection a
  RAG call names, resolved: a 404 before anything is reserved) → access control → rate
  limits → budget reservation → knowledge-base answer (retrieval, numbered sources in the
  prompt, citations resolved in the answer; outside the guardrails, so they mask the
  retrieved text) → guardrails (injection, tool checks, PII, output checks) → conversation memory
  (history in, the new turn and answer out; inside the guardrails, so it keeps the masked
  form) → orchestration (an alias served by several models: each branch is a call of its own
  through everything below) → route resolution
  (rules, pipeline steps, complexity tiers pick the alias) → the response cache (exact: a hit
  ends the call here) → fallback (alias chains, stale
  answer, simplified prompt, escalation: everything inside it may run again for another alias);
- once per alias: the router (strategy picks a deployment among available ones, and moves to
  another deployment of the alias on retryable failures) → hedging (a twin request to a second
  deployment when the first is slow);
- once per attempt: deployment RPM/TPM limits → retry (backoff, retry budget, deadline) →
  circuit breaker → performance tracking → context-window fit → vault credentials → the
  provider call (adapter + transport, or an in-process engine).

Optional stages are built only when the config asks for them (the ledger and budgets with
accounting, the breaker when enabled, hedging with `hedge_after_s`, and so on), so an unused
feature costs nothing per request.

A chat call's result is a `ChatCompletion`; a streaming call's result is a `ChunkStream`
whose first chunk has already arrived (so a failure before the first byte is still an
exception a middleware can catch and fail over); an embeddings call's is an `EmbeddingResponse`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gatewise.types.embeddings import EmbeddingRequest
from gatewise.types.ids import unique_suffix
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import Usage

if TYPE_CHECKING:
    from gatewise.providers.deployment import Deployment

CallKind = Literal["chat", "embed"]
# Hears a call's steps as they happen: (name, data); see `Call.event`.
StepListener = Callable[[str, dict[str, Any]], None]
_log = logging.getLogger("gatewise.pipeline")


class Identity:
    """Who is calling. Scopes everything shared (cache keys, conversations, budgets).

    `permissions` None means unrestricted (the library's own caller, or the master key);
    `models` empty means every model the permissions allow. Limits (rpm/tpm) are the key's
    and its team's, applied by the rate-limit middleware."""

    __slots__ = ("key_id", "models", "permissions", "role", "rpm", "team", "team_models",
                 "team_rpm", "team_tpm", "tenant", "tpm", "user")

    def __init__(self, tenant: str = "default", user: str | None = None,
                 key_id: str | None = None, team: str | None = None, *,
                 role: str = "admin", permissions: frozenset[str] | None = None,
                 models: tuple[str, ...] = (), team_models: tuple[str, ...] = (),
                 rpm: int | None = None, tpm: int | None = None,
                 team_rpm: int | None = None, team_tpm: int | None = None) -> None:
        self.tenant = tenant
        self.user = user
        self.key_id = key_id
        self.team = team
        self.role = role
        self.permissions = permissions
        self.models = models
        self.team_models = team_models
        self.rpm = rpm
        self.tpm = tpm
        self.team_rpm = team_rpm
        self.team_tpm = team_tpm

    def can(self, permission: str) -> bool:
        """`admin:*` grants everything; `keys:*` grants every `keys:` permission."""
        perms = self.permissions
        if perms is None or permission in perms or "admin:*" in perms:
            return True
        family = permission.split(":", 1)[0]
        return f"{family}:*" in perms


ANONYMOUS = Identity()


class Call:
    __slots__ = (
        "alias",
        "assistant",
        "attempts",
        "cache_options",
        "conversation",
        "cost_basis",
        "cost_usd",
        "deadline",
        "deployment",
        "ended",
        "events",
        "experiment",
        "failures",
        "fit_context",
        "identity",
        "internal",
        "kind",
        "listener",
        "prompt",
        "rag",
        "request",
        "request_headers",
        "request_id",
        "response_headers",
        "scores",
        "span",
        "started",
        "stream",
        "thread",
        "ttft",
        "upstream_s",
        "usage",
        "vault",
    )

    def __init__(self, kind: CallKind, request: ChatRequest | EmbeddingRequest,
                 identity: Identity = ANONYMOUS, request_id: str | None = None,
                 request_headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.kind = kind
        self.request = request
        # The alias being served now: the requested model, until routing rules, fallbacks or
        # orchestration point the call elsewhere. The router resolves this, not request.model.
        self.alias = request.model
        # Absolute `time.perf_counter()` by which the whole call (every attempt) must finish.
        self.deadline: float | None = None
        # Every attempt's failure, in order (fallbacks, escalation and incidents read these).
        self.failures: list[BaseException] = []
        # Raw, lower-cased HTTP request headers when the call came through the server.
        self.request_headers = request_headers
        self.identity = identity
        self.request_id = request_id or f"req_{unique_suffix()}"
        self.stream = kind == "chat" and isinstance(request, ChatRequest) and request.stream
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.ttft: float | None = None
        self.upstream_s = 0.0
        self.deployment: Deployment | None = None
        self.usage: Usage | None = None
        # Set by accounting once usage is known (USD, from the price table), or by a stage that
        # knows the price better than the table (an orchestration sums its branches).
        self.cost_usd: float | None = None
        # The usage `cost_usd` was priced from: a later usage (a stream's final chunk, another
        # attempt) reprices; None means a stage fixed the price, which no usage supersedes.
        self.cost_basis: Usage | None = None
        # Conversation id (`metadata.conversation`, the header `x-gatewise-conversation`, or
        # the library's `conversation=`) for per-conversation state such as the PII vault.
        md = getattr(request, "metadata", None)
        self.conversation: str | None = md.get("conversation") if md else None
        # A stored Responses thread (`server/responses/store.py`): keys the PII vault as a
        # conversation id does, for a thread that conversation memory does not keep.
        self.thread: str | None = None
        # The PII vault of a call with neither: what the upstream's placeholders meant, so text
        # masked after the call (a quality judge's prompt) keeps them rather than renumbering
        # (a fresh `<EMAIL_1>` in the answer could name another value than the question's).
        self.vault: object | None = None
        # Named assistant (`metadata.assistant`, `x-gatewise-assistant`, the library's
        # `assistant=`; or the model `assistant/<name>`): its instructions, model and tools.
        self.assistant: str | None = md.get("assistant") if md else None
        # Trim the history to the deployment's context window (only when asked).
        self.fit_context = bool(md and md.get("fit_context") == "true")
        # The library's `cache={...}` (mode, ttl_s); the server's callers send headers instead.
        self.cache_options: dict[str, Any] | None = None
        # A prompt template for this call: the library's `(template, variables)` until the
        # prompts middleware renders it, then its `RenderedPrompt` (each attempt formats it
        # for its deployment's model family).
        self.prompt: Any = None
        # A knowledge-base answer (`gatewise.rag`): what `metadata.rag`, a RAG alias or the
        # library's `answer()` asked for, resolved to the caller's collection before budgets
        # are reserved; the RAG stage (inside access control) retrieves from it.
        self.rag: Any = None
        # The call's tracing span when tracing is on (`gatewise.observability.tracing`);
        # None otherwise, and nothing else on the call changes.
        self.span: Any = None
        # Quality scores recorded with this request (`gatewise.quality`): metric -> 0..1.
        self.scores: dict[str, float] | None = None
        # The A/B experiment arm serving this call: (experiment name, variant name).
        self.experiment: tuple[str, str] | None = None
        # The gateway's own call (a quality judge's): never scored, judged or sampled itself.
        self.internal = False
        self.attempts = 0
        self.events: list[tuple[str, dict[str, Any]]] = []
        # Who hears the steps live (`event`): the REPL, the web console, an HTTP caller that
        # sent `x-gatewise-steps: 1`, the library's `on_step=`. None (the default) costs one
        # attribute check per step, and the timeline-only steps (`gatewise.pipeline.steps`)
        # are not even built.
        self.listener: StepListener | None = None
        self.response_headers: dict[str, str] = {}

    @property
    def chat_request(self) -> ChatRequest:
        assert isinstance(self.request, ChatRequest)
        return self.request

    @property
    def latency(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def event(self, name: str, **data: Any) -> None:
        """A structured step of the call, for timelines (REPL), logs and audits. With a
        listener, the step also gets `t_ms` (milliseconds since the call started) and is
        handed over at once; a listener that raises is logged, never fails the call."""
        self.events.append((name, data))
        listener = self.listener
        if listener is not None:
            data["t_ms"] = round((time.perf_counter() - self.started) * 1000, 3)
            try:
                listener(name, data)
            except Exception:
                _log.warning("step listener failed on %r", name, exc_info=True)


Handler = Callable[[Call], Coroutine[Any, Any, Any]]


class Middleware(Protocol):
    """Usually an `async def __call__`. A stage with nothing to do for most calls may be a
    plain `def` that returns `next(call)` itself for those (and its own coroutine for the
    rest): such a call then has one coroutine less to create, and to resume at each of its
    suspensions. Only where the stage before awaits `next(call)` at once (not the first stage
    hedging starts as a task, or one that orchestration branches are gathered into), since
    what the plain `def` checks runs when it is called, not when it is awaited."""

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]: ...


def build_chain(middlewares: Sequence[Middleware], terminal: Handler) -> Handler:
    """Wraps `terminal` so the first middleware in the list runs first.

    Each link is a plain function that returns the middleware's own coroutine, not a
    coroutine awaiting it: a stage is one coroutine deep, not two. Every suspension of a call
    (the upstream's answer, a store) resumes each coroutine on its await chain, and a chain of
    twenty stages through no-op middleware cost about 30% less this way (micro-benchmark)."""
    handler = terminal
    for mw in reversed(middlewares):
        handler = _link(mw, handler)
    return handler


def _link(mw: Middleware, nxt: Handler) -> Handler:
    def handler(call: Call) -> Coroutine[Any, Any, Any]:
        return mw(call, nxt)

    return handler


def run_nested(chain: Sequence[Middleware], call: Call, last: Handler,
               i: int = 0) -> Coroutine[Any, Any, Any]:
    """Runs `chain[i:]` then `last`, chosen per call (a policy's guards, an identity's
    checks) rather than fixed at build time like `build_chain`. Awaited like a coroutine;
    links as `build_chain`'s do, without a coroutine frame per stage."""
    if i == len(chain):
        return last(call)

    def nxt(c: Call) -> Coroutine[Any, Any, Any]:
        return run_nested(chain, c, last, i + 1)

    return chain[i](call, nxt)
