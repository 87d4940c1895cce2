"""Embeddings in OpenAI's shape (`/v1/embeddings`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.types.requests import MAX_TOKEN_ID, ModelName

MAX_INPUTS = 2048  # OpenAI: "any array must be 2048 dimensions or less"
_TOKEN = {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID}
# `input`'s four shapes, as OpenAI documents them. msgspec cannot decode a union of several
# array types, so the field decodes as `str | list[Any]`, `check_embedding_request` enforces
# the shapes, and this schema (ANDed with the generated one in the OpenAPI document) states
# them; a unit test holds the two to the same answers.
INPUT_SHAPES: dict[str, Any] = {"oneOf": [
    {"type": "string", "minLength": 1, "description": "one text"},
    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS,
     "items": {"type": "string", "minLength": 1}, "description": "several texts"},
    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS, "items": _TOKEN,
     "description": "one input as token ids"},
    {"type": "array", "minItems": 1, "maxItems": MAX_INPUTS,
     "items": {"type": "array", "minItems": 1, "items": _TOKEN},
     "description": "several inputs as token ids"},
]}


class EmbeddingRequest(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    model: ModelName
    input: Annotated[str | list[Any], msgspec.Meta(extra_json_schema=INPUT_SHAPES)]
    encoding_format: Literal["float", "base64"] | None = None
    # The largest models embed into a few thousand dimensions; 65,536 only stops nonsense.
    dimensions: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None
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
