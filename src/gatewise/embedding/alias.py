"""`AliasEmbedder`: any configured embedding alias, through the gateway, as an `AsyncEmbedder`.

It takes what it needs structurally (`EmbeddingsClient`: an `embed(input, model=...)` that
returns an object with `.vectors`, which `Gateway.embed` does), so this module stays below the
composition root: `gateway.py` hands itself in. Each batch is one embeddings call through the
whole chain, accounted like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from gatewise.embedding.base import Vectors, normalise


class EmbeddingsClient(Protocol):
    async def embed(self, input: str | list[str], *, model: str | None = None,
                    **params: Any) -> Any:
        """An object whose `.vectors` is one `list[float]` per input, in order."""
        ...


class AliasEmbedder:
    def __init__(self, client: EmbeddingsClient, alias: str, **params: Any) -> None:
        self.client = client
        self.alias = alias
        self._params = params

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
