"""Embeddings in OpenAI's shape (`/v1/embeddings`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec


class EmbeddingRequest(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    model: Annotated[str, msgspec.Meta(min_length=1)]
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None

    @property
    def texts(self) -> list[str]:
        """The inputs as strings; token-id inputs are validated and kept for providers that take them."""
        return [self.input] if isinstance(self.input, str) else [x for x in self.input if isinstance(x, str)]


class Embedding(msgspec.Struct, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
