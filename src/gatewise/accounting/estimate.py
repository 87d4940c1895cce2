"""Token and cost estimates before sending (`gw.count_tokens`, `gw.estimate_cost`, and
`POST /v1/tokens/count`, `POST /v1/cost/estimate`).

The same offline counters and price table budgets use (`tokenizers.py`, `prices.py`), so an
estimate and a budget reservation agree. An alias may have several deployments on different
providers, which count and charge differently: each is estimated, and the top-level figures
are the highest (what a budget must be ready for). `exact` says whether every count came from
the model's own tokenizer (OpenAI encodings, a GGUF vocabulary) rather than a scaled
estimate. The completion side is the request's `max_completion_tokens`/`max_tokens`, or the
caller's `completion_tokens`, or the accounting default, and the answer says which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import msgspec

from gatewise.accounting.prices import PriceTable
from gatewise.accounting.tokenizers import Tokenizers
from gatewise.providers.deployment import Deployment
from gatewise.providers.presets import LOCAL_MODEL_WIRES
from gatewise.types.requests import ChatRequest

CompletionBasis = Literal["given", "max_tokens", "default"]


class DeploymentEstimate(msgspec.Struct, kw_only=True):
    deployment: str
    model: str  # provider/model
    prompt_tokens: int
    exact: bool
    tokenizer: str
    completion_tokens: int = 0
    input_usd: float | None = None  # None: no price known for this model
    output_usd: float | None = None
    total_usd: float | None = None


class TokenEstimate(msgspec.Struct, kw_only=True):
    object: Literal["token_count"] = "token_count"
    model: str
    prompt_tokens: int
    exact: bool
    deployments: list[DeploymentEstimate]


class CostEstimate(msgspec.Struct, kw_only=True):
    object: Literal["cost_estimate"] = "cost_estimate"
    model: str
    prompt_tokens: int
    completion_tokens: int
    completion_basis: CompletionBasis
    total_usd: float | None  # the highest over deployments; None when none has a price
    exact: bool
    deployments: list[DeploymentEstimate]


class Estimator:
    def __init__(self, tokenizers: Tokenizers, prices: PriceTable, *,
                 default_max_tokens: int) -> None:
        self.tokenizers = tokenizers
        self.prices = prices
        self.default_max_tokens = default_max_tokens

    async def _count(self, req: ChatRequest, dep: Deployment) -> DeploymentEstimate:
        target = dep.target
        if target.wire in LOCAL_MODEL_WIRES:  # opening a GGUF vocabulary blocks
            counter = await asyncio.to_thread(self.tokenizers.for_target, target)
        else:
            counter = self.tokenizers.for_target(target)
        n = self.tokenizers.count_messages(req, counter)
        return DeploymentEstimate(deployment=dep.id, model=f"{target.provider}/{target.model}",
                                  prompt_tokens=n, exact=counter.exact, tokenizer=counter.name)

    async def count(self, req: ChatRequest, alias: str,
                    deployments: Sequence[Deployment]) -> TokenEstimate:
        per = [await self._count(req, d) for d in deployments]
        return TokenEstimate(model=alias, prompt_tokens=max(e.prompt_tokens for e in per),
                             exact=all(e.exact for e in per), deployments=per)

    async def cost(self, req: ChatRequest, alias: str, deployments: Sequence[Deployment], *,
                   completion_tokens: int | None = None) -> CostEstimate:
        basis: CompletionBasis
        if completion_tokens is not None:
            out, basis = completion_tokens, "given"
        elif req.output_limit is not None:
            out, basis = req.output_limit, "max_tokens"
        else:
            out, basis = self.default_max_tokens, "default"
        per = [await self._count(req, d) for d in deployments]
        for dep, e in zip(deployments, per, strict=True):
            e.completion_tokens = out
            price = self.prices.for_deployment(dep)
            if price is not None:
                e.input_usd = e.prompt_tokens * price.input / 1e6
                e.output_usd = out * price.output / 1e6
                e.total_usd = e.input_usd + e.output_usd
        priced = [e.total_usd for e in per if e.total_usd is not None]
        return CostEstimate(model=alias, prompt_tokens=max(e.prompt_tokens for e in per),
                            completion_tokens=out, completion_basis=basis,
                            total_usd=max(priced) if priced else None,
                            exact=all(e.exact for e in per), deployments=per)
