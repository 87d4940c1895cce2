"""Few-shot example sets, and picking the examples that fit a request.

A set is a named list of (input, output) pairs. A template asks for `k` of them within a
token budget; which ones depends on the request: the examples whose inputs mean the most
nearly the same as the request's last user message, by cosine similarity of embeddings (the
same local embedder the semantic cache uses, `gatewise.embedding`, or any `AsyncEmbedder`).
Without an embedder the set's own order decides.

The budget is counted with the deployment's offline tokenizer, examples framed as the two
messages they become. Selection is greedy by similarity: an example that would overflow the
budget is skipped and a smaller, less similar one may still take its place, so the budget is
used without ever being exceeded. The chosen examples are returned least similar first, so
the closest one sits right before the request (models weigh the nearest context most).

A set's vectors are computed once per embedder (on first use) and kept on the selector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gatewise.errors import ConfigError

if TYPE_CHECKING:
    from gatewise.embedding.base import AsyncEmbedder

# Two messages' framing in OpenAI's count (3 each, plus the role words).
EXAMPLE_FRAMING_TOKENS = 8


@dataclass(frozen=True, slots=True)
class Example:
    input: str
    output: str


class FewShotSelector:
    def __init__(self, sets: dict[str, list[Example]],
                 embedder: AsyncEmbedder | None = None) -> None:
        self.sets = sets
        self.embedder = embedder
        self._vectors: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def has(self, name: str) -> bool:
        return name in self.sets

    async def warm(self) -> None:
        """Loads the embedder and embeds every set now, not on the first request."""
        if self.embedder is not None:
            for name in self.sets:
                await self._set_vectors(name, self.embedder)

    async def _set_vectors(self, name: str, embedder: AsyncEmbedder) -> Any:
        found = self._vectors.get(name)
        if found is not None:
            return found
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            found = self._vectors.get(name)
            if found is None:
                found = await embedder.embed([e.input for e in self.sets[name]])
                self._vectors[name] = found
            return found

    async def similarity_order(self, name: str, query: str) -> list[int]:
        """Indexes of the set's examples, most similar to `query` first (the set's order
        without an embedder or a query)."""
        examples = self.sets[name]
        embedder = self.embedder
        if embedder is None or not query.strip() or not examples:
            return list(range(len(examples)))
        vectors = await self._set_vectors(name, embedder)
        q = (await embedder.embed([query]))[0]
        scores = (vectors @ q).tolist()
        return sorted(range(len(examples)), key=lambda i: (-scores[i], i))

    async def select(self, name: str, query: str, *, k: int, budget_tokens: int | None,
                     count: Callable[[str], int]) -> list[Example]:
        """Up to `k` examples, the most similar that fit `budget_tokens` together."""
        if name not in self.sets:
            raise ConfigError(f"no example set '{name}'", path=f"prompts.example_sets.{name}")
        examples = self.sets[name]
        chosen: list[int] = []
        used = 0
        for i in await self.similarity_order(name, query):
            if len(chosen) == k:
                break
            cost = example_tokens(examples[i], count)
            if budget_tokens is not None and used + cost > budget_tokens:
                continue
            chosen.append(i)
            used += cost
        return [examples[i] for i in reversed(chosen)]


def example_tokens(example: Example, count: Callable[[str], int]) -> int:
    return count(example.input) + count(example.output) + EXAMPLE_FRAMING_TOKENS


def examples_from(raw: Sequence[Any]) -> list[Example]:
    return [Example(e.input, e.output) for e in raw]
