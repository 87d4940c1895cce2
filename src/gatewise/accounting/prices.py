"""What a request costs: the shipped price table, per-deployment overrides, and the arithmetic.

The table (`prices.json`, package data) holds list prices in USD per million tokens keyed
`provider/model`; its `_source` and `_as_of` say where they come from and when. Prices drift, so
config wins: a deployment's own `prices:` > `PriceTable.load(overrides=...)` by `provider/model` or
bare model name > the shipped table. A field the override leaves out keeps the table's value.

Lookup tolerates the ways one model is spelled: `gpt-4o-2024-08-06`, `claude-3-5-sonnet-20241022`,
`mistral-large-latest`, `gemini-2.0-flash-001` fall back to their base entry; a model routed
through an aggregator (`openrouter` model `openai/gpt-4o`) is found by its own `provider/model`;
a bare name (`gpt-4o` on Azure) is found in the entry of the vendor that makes the model. Open
models priced by a host (Groq's Llama) match on that host only: another host charges differently.

Free models (the provider preset's `free` fact: `llamacpp`, `fake`) cost nothing; an unknown
model has no price (`None`), which callers treat as "cost unknown", never as free.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gatewise.providers.presets import FREE_WIRES, MODEL_OWNERS

if TYPE_CHECKING:
    from gatewise.config.schema import Prices
    from gatewise.providers.deployment import Deployment
    from gatewise.types.responses import Usage

_PER_TOKEN = 1e-6
# Version suffixes stripped one at a time (a date, a 3-4 digit revision, -latest, -preview-MM-DD).
_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|latest|(?:preview|exp)(?:-\d{2}-\d{2})?)$")
_MAX_STRIPS = 3


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1M tokens. `cached_input` prices cache reads (None: the input price);
    `cache_write` prices tokens written to a prompt cache where a vendor charges extra for it
    (Anthropic; None: the input price)."""

    input: float
    output: float
    cached_input: float | None = None
    context_window: int | None = None
    max_output: int | None = None
    cache_write: float | None = None


FREE = ModelPrice(0.0, 0.0, 0.0)


def strip_version(model: str) -> str | None:
    """`model` without its last version suffix, or None when it has none."""
    m = _SUFFIX.search(model)
    return model[: m.start()] if m else None


def _price_of(raw: Mapping[str, Any], key: str) -> ModelPrice:
    try:
        return ModelPrice(
            input=float(raw["input"]),
            output=float(raw["output"]),
            cached_input=None if raw.get("cached_input") is None else float(raw["cached_input"]),
            context_window=None if raw.get("context_window") is None else int(raw["context_window"]),
            max_output=None if raw.get("max_output") is None else int(raw["max_output"]),
            cache_write=None if raw.get("cache_write") is None else float(raw["cache_write"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"price table entry {key!r} is malformed: {exc}") from None


def _apply(base: ModelPrice | None, p: Prices) -> ModelPrice:
    """`p`'s fields over `base` (a field `p` leaves out keeps `base`'s value, else 0 / None)."""
    if base is None:
        base = ModelPrice(0.0, 0.0)
    return replace(
        base,
        input=base.input if p.input is None else p.input,
        output=base.output if p.output is None else p.output,
        cached_input=base.cached_input if p.cached_input is None else p.cached_input,
        context_window=base.context_window if p.context_window is None else p.context_window,
    )


class PriceTable:
    """Shipped prices plus overrides; `for_deployment` is cached per deployment id."""

    def __init__(self, table: Mapping[str, ModelPrice],
                 overrides: Mapping[str, Prices] | None = None) -> None:
        self._table = dict(table)
        self._bare: dict[str, ModelPrice] = {}
        for owner in MODEL_OWNERS:  # vendors that make the models they price
            prefix = f"{owner}/"
            for key, price in self._table.items():
                if key.startswith(prefix):
                    self._bare.setdefault(key[len(prefix):], price)
        self._overrides = dict(overrides or {})
        self._by_dep: dict[str, ModelPrice | None] = {}

    @classmethod
    def load(cls, overrides: Mapping[str, Prices] | None = None) -> PriceTable:
        """The table shipped with the package (`accounting/prices.json`), plus `overrides`
        keyed `provider/model` or bare model name."""
        text = (importlib.resources.files("gatewise.accounting") / "prices.json").read_text("utf-8")
        raw: dict[str, Any] = json.loads(text)
        table = {k: _price_of(v, k) for k, v in raw.items() if not k.startswith("_")}
        return cls(table, overrides)

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The shipped price for `provider/model`, trying version-stripped spellings."""
        name: str | None = model
        for _ in range(_MAX_STRIPS + 1):
            if name is None:
                break
            found = (self._table.get(f"{provider}/{name}") or self._table.get(name)
                     or self._bare.get(name) or self._bare.get(name.rsplit("/", 1)[-1]))
            if found is not None:
                return found
            name = strip_version(name)
        return None

    def _override(self, provider: str, model: str) -> Prices | None:
        name: str | None = model
        for _ in range(_MAX_STRIPS + 1):
            if name is None:
                break
            found = self._overrides.get(f"{provider}/{name}") or self._overrides.get(name)
            if found is not None:
                return found
            name = strip_version(name)
        return None

    def for_deployment(self, dep: Deployment) -> ModelPrice | None:
        """Config `prices:` > overrides > shipped table; in-process models free; None unknown.
        O(1) after the first call for a deployment (cached by `dep.id`)."""
        try:
            return self._by_dep[dep.id]
        except KeyError:
            pass
        price = self._resolve(dep)
        self._by_dep[dep.id] = price
        return price

    def routing_prices(self, dep: Deployment) -> tuple[float, float] | None:
        """(input, output) per million tokens for the router's cost strategy: the same
        precedence as billing, so routing and the ledger agree on what is cheap."""
        p = self.for_deployment(dep)
        return None if p is None else (p.input, p.output)

    def _resolve(self, dep: Deployment) -> ModelPrice | None:
        t = dep.target
        own = dep.prices if dep.prices is not None and any(
            v is not None for v in (dep.prices.input, dep.prices.output, dep.prices.cached_input,
                                    dep.prices.context_window)
        ) else None
        if own is None and t.wire in FREE_WIRES:
            return FREE
        price = self.lookup(t.provider, t.model)
        override = self._override(t.provider, t.model)
        if override is not None:
            price = _apply(price, override)
        if own is not None:
            price = _apply(price, own)
        return price

    # -- arithmetic -------------------------------------------------------------------------

    @staticmethod
    def cost(usage: Usage, price: ModelPrice | None) -> float:
        """USD for one response: uncached prompt tokens at the input price, cache reads at
        `cached_input` (else input), cache writes at `cache_write` (else input), completion
        tokens (reasoning included, as OpenAI reports them) at the output price. 0 when the
        price is unknown."""
        if price is None:
            return 0.0
        prompt = max(usage.prompt_tokens, 0)
        details = usage.prompt_tokens_details
        cached = min(details.cached_tokens, prompt) if details else 0
        written = min(details.cache_creation_tokens, prompt - cached) if details else 0
        plain = prompt - cached - written
        cached_rate = price.input if price.cached_input is None else price.cached_input
        write_rate = price.input if price.cache_write is None else price.cache_write
        usd = (plain * price.input + cached * cached_rate + written * write_rate
               + max(usage.completion_tokens, 0) * price.output)
        return usd * _PER_TOKEN

    @staticmethod
    def worst_case(prompt_tokens: int, max_tokens: int, price: ModelPrice | None) -> float:
        """The most a request can cost before it is sent (no cache hits, the whole prompt
        possibly written to a prompt cache, every allowed output token generated): what a
        budget reserves. 0 when the price is unknown."""
        if price is None:
            return 0.0
        prompt_rate = price.input if price.cache_write is None else max(price.input, price.cache_write)
        return (max(prompt_tokens, 0) * prompt_rate + max(max_tokens, 0) * price.output) * _PER_TOKEN
