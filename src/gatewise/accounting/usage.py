"""What accounting, budgets and rate limits share: the price/tokenizer seams they are written
against, and the per-call facts (prompt estimate, actual usage, cost) computed once per call.

The protocols keep these middlewares independent of how prices and tokenizers are loaded
(`PriceTable`, `Tokenizers`), so tests can hand in a few-line double. Facts are cached on the
`Call` as events, because several middlewares need the same number and counting a prompt twice
would double the hot-path cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from gatewise.types.messages import text_of
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import Usage

if TYPE_CHECKING:
    from gatewise.pipeline.core import Call
    from gatewise.pipeline.stream import ChunkStream
    from gatewise.providers.base import Target
    from gatewise.providers.deployment import Deployment

PROMPT_ESTIMATE = "prompt_estimate"
USAGE_COUNTED = "usage_counted"
CACHE_HIT = "cache_hit"


class Prices(Protocol):
    """What `gatewise.accounting.prices.PriceTable` offers (a price is opaque here)."""

    def for_deployment(self, dep: Deployment, /) -> Any: ...

    def cost(self, usage: Usage, price: Any, /) -> float: ...

    def worst_case(self, prompt_tokens: int, max_tokens: int, price: Any, /) -> float: ...


class TokenCounting(Protocol):
    """What `gatewise.accounting.tokenizers.Tokenizers` offers."""

    def count_request(self, req: ChatRequest, target: Target, /) -> int: ...

    def count_text(self, text: str, target: Target, /) -> int: ...


def _event(call: Call, name: str) -> dict[str, Any] | None:
    for ev, data in call.events:
        if ev == name:
            return data
    return None


def is_cache_hit(call: Call) -> bool:
    return _event(call, CACHE_HIT) is not None


def cache_hit(call: Call) -> dict[str, Any] | None:
    """The response cache's hit event (`saved_usd`: what the stored answer cost), if any."""
    return _event(call, CACHE_HIT)


def usage_was_counted(call: Call) -> bool:
    return _event(call, USAGE_COUNTED) is not None


def prompt_estimate(call: Call, tokenizers: TokenCounting | None, target: Target | None) -> int:
    """Prompt tokens of the request, counted once per call (budgets and rate limits both ask).

    Without a target (an alias with no deployment) or a tokenizer, a rough 4-characters-per-token guess keeps
    limits enforceable rather than skipping them."""
    data = _event(call, PROMPT_ESTIMATE)
    if data is not None:
        return int(data["tokens"])
    req = call.request
    if isinstance(req, ChatRequest):
        if target is not None and tokenizers is not None:
            n = tokenizers.count_request(req, target)
        else:
            n = sum(len(text_of(m.content)) for m in req.messages) // 4 + 1
    else:
        texts = req.texts
        if target is not None and tokenizers is not None:
            n = sum(tokenizers.count_text(t, target) for t in texts)
        else:
            n = sum(len(t) for t in texts) // 4 + 1
    call.event(PROMPT_ESTIMATE, tokens=n)
    return n


def output_limit(call: Call, default: int) -> int:
    req = call.request
    if isinstance(req, ChatRequest):
        limit = req.output_limit
        return default if limit is None else limit
    return 0


def ensure_usage(call: Call, stream: ChunkStream | None, tokenizers: TokenCounting) -> Usage | None:
    """The call's usage; when a stream ended without a usage chunk (the provider omitted it, or
    the client left early), counts prompt and generated text once and stores the result on the
    call so every middleware settles the same numbers."""
    if call.usage is not None or stream is None:
        return call.usage
    parts = stream.text_parts
    dep = call.deployment
    if parts is None or dep is None:
        return None
    prompt = prompt_estimate(call, tokenizers, dep.target)
    completion = tokenizers.count_text("".join(parts), dep.target) if parts else 0
    call.usage = Usage(prompt_tokens=prompt, completion_tokens=completion,
                       total_tokens=prompt + completion)
    call.event(USAGE_COUNTED)
    return call.usage


def cost_of(call: Call, prices: Prices) -> float | None:
    """USD for the call's usage (cached on `call.cost_usd` until the usage changes); a cache
    hit costs nothing, a price a stage fixed stands; None when usage or the deployment's price
    is unknown."""
    if call.cost_usd is not None and (call.cost_basis is None or call.cost_basis is call.usage):
        return call.cost_usd
    if is_cache_hit(call):
        call.cost_usd = 0.0
        return 0.0
    usage, dep = call.usage, call.deployment
    if usage is None or dep is None:
        return None
    price = prices.for_deployment(dep)
    if price is None:
        return None
    call.cost_usd = cost = prices.cost(usage, price)
    call.cost_basis = usage
    return cost


def collect_stream_text(stream: ChunkStream) -> None:
    """Keeps the stream's completion text (the prefetched first chunk included) so tokens
    can be counted when the provider's stream carries no usage."""
    stream.collect_text()
