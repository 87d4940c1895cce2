"""Parallel fan-out: one request to N aliases at once, each branch a full call of its own.

Every branch is a `Call` run through the pipeline (`Runner.run`, the gateway, from the library;
everything after `OrchestrationMiddleware` over HTTP), so each model gets its own routing,
retries, breaker and fallbacks, and a failing model costs its own slot, never the others'.
Results come back in the order the models were given, with content, usage, timings, the
deployment that served, an estimated cost and the error when a branch failed.

A caller-given deadline bounds the whole fan-out: it becomes every branch's `Call.deadline`
(so retries stop in time) and, when it passes, branches still running are cancelled (their
upstream requests are closed) and reported as timed out. Consensus and cascade build on the
`Branches` helper defined here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gatewise.errors import GatewayError, InvalidRequestError, ProviderTimeoutError
from gatewise.pipeline import steps
from gatewise.pipeline.core import ANONYMOUS, Call, Handler, Identity
from gatewise.pipeline.runner import Runner
from gatewise.providers.presets import FREE_WIRES
from gatewise.types.messages import ToolCall
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.validation import chat_request_from_dict, messages_with_prompt


@dataclass(slots=True)
class ModelResult:
    """One branch: the model (alias) asked, its answer or its error, and what it cost."""

    model: str
    completion: ChatCompletion | None = None
    error: BaseException | None = None
    deployment: str | None = None
    usage: Usage | None = None
    latency_s: float = 0.0
    # When the branch started, relative to the start of the orchestration.
    started_s: float = 0.0
    attempts: int = 0
    request_id: str = ""
    cost_usd: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.completion is not None

    @property
    def content(self) -> str | None:
        c = self.completion
        return c.choices[0].message.content if c is not None and c.choices else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        c = self.completion
        if c is None or not c.choices:
            return []
        return c.choices[0].message.tool_calls or []


def sum_usage(results: Sequence[ModelResult]) -> Usage:
    """Every token the orchestration consumed (judges included): what it really cost."""
    p = c = 0
    for r in results:
        if r.usage is not None:
            p += r.usage.prompt_tokens
            c += r.usage.completion_tokens
    return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


def sum_cost(results: Sequence[ModelResult]) -> float | None:
    """Total USD; None when any branch that used tokens has no known price."""
    total = 0.0
    for r in results:
        if r.cost_usd is None:
            if r.usage is not None and r.usage.total_tokens:
                return None
            continue
        total += r.cost_usd
    return total


@dataclass(slots=True)
class ParallelResult:
    results: list[ModelResult]
    elapsed_s: float = 0.0

    @property
    def ok(self) -> list[ModelResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[ModelResult]:
        return [r for r in self.results if not r.ok]

    def by_model(self, model: str) -> ModelResult:
        for r in self.results:
            if r.model == model:
                return r
        raise KeyError(model)

    @property
    def usage(self) -> Usage:
        return sum_usage(self.results)

    @property
    def cost_usd(self) -> float | None:
        return sum_cost(self.results)


@dataclass(slots=True)
class Branches:
    """How an orchestration makes and runs its branch calls.

    `run` is `Runner.run` (library) or the rest of the chain (middleware); identity and
    request headers carry over so tenancy, budgets and routing rules apply to every branch;
    `deadline` is absolute (`time.perf_counter()`). `parent`, the call the orchestration
    serves: when someone listens to it, every branch's steps reach that listener
    (`gatewise.pipeline.steps.listen_branch`); nobody listening, nothing is built.
    """

    run: Handler
    identity: Identity = ANONYMOUS
    request_headers: Sequence[tuple[bytes, bytes]] = ()
    parent_id: str | None = None
    deadline: float | None = None
    started: float = field(default_factory=time.perf_counter)
    parent: Call | None = None
    # USD of a finished branch call at the gateway's price table (`accounting.usage.cost_of`):
    # branches run below the accounting stage, so the table is consulted here. None (or an
    # unknown price) falls back to the deployment's own per-million prices.
    price: Callable[[Call], float | None] | None = None
    _count: int = field(default=0, init=False)

    def new_call(self, req: ChatRequest) -> Call:
        self._count += 1
        rid = f"{self.parent_id}.{self._count}" if self.parent_id else None
        call = Call("chat", req, self.identity, rid, self.request_headers)
        call.deadline = self.deadline
        return call

    async def one(self, model: str, req: ChatRequest, *, judge: bool = False) -> ModelResult:
        """Runs one branch to its end; never raises except on cancellation of the caller.
        `judge`: the call is a judge's (scoring the others), as its steps say."""
        if req.model != model or req.stream:
            req = msgspec.structs.replace(req, model=model, stream=False, stream_options=None)
        call = self.new_call(req)
        if self.parent is not None:
            steps.listen_branch(self.parent, call, self._count - 1, model, judge=judge)
        t0 = time.perf_counter()
        res = ModelResult(model, started_s=t0 - self.started, request_id=call.request_id)
        try:
            if self.deadline is None:
                out = await self.run(call)
            else:
                async with asyncio.timeout_at(_loop_time(self.deadline)):
                    out = await self.run(call)
            if not isinstance(out, ChatCompletion):
                raise GatewayError(f"'{model}' did not return a chat completion")
            res.completion = out
        except TimeoutError:
            res.error = ProviderTimeoutError("cancelled: the orchestration's deadline passed",
                                             provider="gatewise", model=model)
        except Exception as exc:
            res.error = exc
        res.latency_s = time.perf_counter() - t0
        dep = call.deployment
        res.deployment = dep.id if dep is not None else None
        res.attempts = call.attempts
        res.usage = (res.completion.usage if res.completion is not None else None) or call.usage
        if self.price is not None and res.usage is not None:
            if call.usage is None:
                call.usage = res.usage
            res.cost_usd = self.price(call)
        if dep is not None and res.cost_usd is None:
            res.cost_usd = estimate_cost(dep.target.wire, dep.prices, res.usage)
        steps.branch_ended(call, res.completion, res.error, latency_s=res.latency_s,
                           cost_usd=res.cost_usd)
        return res

    async def fan_out(self, req: ChatRequest, models: Sequence[str]) -> ParallelResult:
        results = await asyncio.gather(*(self.one(m, req) for m in models))
        return ParallelResult(list(results), time.perf_counter() - self.started)


def _loop_time(deadline: float) -> float:
    """A `perf_counter` deadline on the running loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.perf_counter())


def estimate_cost(wire: str, prices: Any, usage: Usage | None) -> float | None:
    """USD from the deployment's per-million prices; 0 on a free engine (its preset says so);
    None when unknown."""
    if usage is None:
        return None
    if prices is not None and (prices.input is not None or prices.output is not None):
        return (usage.prompt_tokens * (prices.input or 0.0)
                + usage.completion_tokens * (prices.output or 0.0)) / 1e6
    return 0.0 if wire in FREE_WIRES else None


def build_request(prompt: str | None, messages: list[dict[str, Any]] | None,
                  models: Sequence[str], params: dict[str, Any]) -> ChatRequest:
    """The one validated request every branch shares (only `model` differs per branch)."""
    if not models:
        raise InvalidRequestError("give at least one model", param="models")
    messages = messages_with_prompt(prompt, messages)
    params.pop("stream", None)
    params.pop("stream_options", None)
    return chat_request_from_dict({"model": models[0], "messages": messages, **params})


def library_branches(gw: Runner, identity: Identity, deadline_s: float | None) -> Branches:
    started = time.perf_counter()
    return Branches(gw.run, identity, (), None,
                    None if deadline_s is None else started + deadline_s, started)


async def parallel(gw: Runner, prompt: str | None = None, *, models: Sequence[str],
                   messages: list[dict[str, Any]] | None = None,
                   identity: Identity = ANONYMOUS, deadline_s: float | None = None,
                   **params: Any) -> ParallelResult:
    """The same request to every model at once; per-model results in `models` order.

    `deadline_s` bounds the whole fan-out: branches still running then are cancelled and
    reported with a `ProviderTimeoutError`.
    """
    req = build_request(prompt, messages, models, params)
    return await library_branches(gw, identity, deadline_s).fan_out(req, models)
