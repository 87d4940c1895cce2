"""`AliasEmbedder`: any configured embedding alias, through the gateway, as an `AsyncEmbedder`.

It takes what it needs structurally (`EmbeddingsClient`: an `embed(input, model=...)` that
returns an object with `.vectors`, which `Gateway.embed` does), so this module stays below the
composition root: `gateway.py` hands itself in. Each batch is one embeddings call through the
whole chain, accounted like any other.

Its `window` is what a chunker keeps each chunk within: the limit the config declares for
the alias, else 512 tokens (the smallest window of the embedding models commonly served:
BERT-family models behind Ollama or TEI, which truncate past it without a word, as OpenAI's
8191 and most others are larger). It is counted by the counter given (cl100k from the
gateway's tokenizers), else by UTF-8 bytes / 3, which leans high on every script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from gatewise.embedding.base import Vectors, Window, normalise

DEFAULT_ALIAS_TOKENS = 512


def estimate_tokens(text: str) -> int:
    """A token count that leans high without a tokenizer (about 4 bytes a token in English,
    3 in CJK scripts)."""
    return -(-len(text.encode("utf-8", "surrogatepass")) // 3)


class EmbeddingsClient(Protocol):
    async def embed(self, input: str | list[str], *, model: str | None = None,
                    **params: Any) -> Any:
        """An object whose `.vectors` is one `list[float]` per input, in order."""
        ...


class AliasEmbedder:
    def __init__(self, client: EmbeddingsClient, alias: str, *, max_tokens: int | None = None,
                 count: Callable[[str], int] | None = None, **params: Any) -> None:
        self.client = client
        self.alias = alias
        self._params = params
        limit = max_tokens or DEFAULT_ALIAS_TOKENS
        unit = "cl100k" if count is not None else "bytes/3"
        self.window = Window(limit, count or estimate_tokens, f"{unit}{limit}")

    @property
    def name(self) -> str:
        return f"alias:{self.alias}"

    async def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        result = await self.client.embed(list(texts), model=self.alias, **self._params)
        vectors = result.vectors
        if len(vectors) != len(texts):
            raise ValueError(f"embedding alias {self.alias!r} returned {len(vectors)} vectors "
                             f"for {len(texts)} texts")
        return normalise(vectors)

    async def aclose(self) -> None:
        return None
