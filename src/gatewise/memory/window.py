"""How many prompt tokens a conversation may take on an alias: the smallest context window of
the alias's deployments (a deployment's own `prices.context_window`, the price table's, the
model catalogue's as its provider reports it (an in-process model's `n_ctx`), or the
configured fallback) minus what the answer needs, counted with the offline tokenizer of
that deployment. Memory runs before routing picks a deployment, so it plans for the
tightest one the router could pick."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from gatewise.accounting.usage import Prices, TokenCounting
from gatewise.providers.deployment import Deployment
from gatewise.types.messages import Message
from gatewise.types.requests import ChatRequest

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Budget:
    window: int
    available: int          # window minus the answer's reserve
    count: Callable[[list[Message]], int]
    # A bound no tokenizer exceeds (a token covers at least one byte of the request's JSON),
    # so a prompt well inside the window skips the real count.
    upper_bound: Callable[[list[Message]], int]

    def fits(self, messages: list[Message]) -> bool:
        return (self.upper_bound(messages) <= self.available
                or self.count(messages) <= self.available)


class ContextWindows:
    def __init__(self, aliases: Mapping[str, Sequence[Deployment]],
                 direct: Callable[[str], Deployment | None], prices: Prices,
                 tokenizers: TokenCounting, *, fallback_window: int,
                 reserve_output: int,
                 reported: Callable[[Deployment], int | None] | None = None) -> None:
        self._aliases = aliases
        self._direct = direct
        self._prices = prices
        self._tokenizers = tokenizers
        self._fallback = fallback_window
        self._reserve = reserve_output
        self._reported = reported

    def _deployments(self, alias: str) -> list[Deployment]:
        deps = list(self._aliases.get(alias, ()))
        if not deps:
            dep = self._direct(alias)
            deps = [dep] if dep is not None else []
        return deps

    def budget(self, req: ChatRequest, alias: str) -> Budget | None:
        """None for an alias this gateway does not serve (routing reports that)."""
        best: tuple[int, Deployment] | None = None
        for dep in self._deployments(alias):
            price = self._prices.for_deployment(dep)
            window = ((price.context_window if price is not None else None)
                      or (self._reported(dep) if self._reported is not None else None)
                      or self._fallback)
            if best is None or window < best[0]:
                best = (window, dep)
        if best is None:
            return None
        window, dep = best
        reserve = req.max_completion_tokens or req.max_tokens or self._reserve
        target = dep.target

        def count(ms: list[Message]) -> int:
            return self._tokenizers.count_request(msgspec.structs.replace(req, messages=ms),
                                                  target)

        def upper_bound(ms: list[Message]) -> int:
            return len(_encode(msgspec.structs.replace(req, messages=ms)))

        return Budget(window, window - min(reserve, window // 2), count, upper_bound)
