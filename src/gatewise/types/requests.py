"""The canonical chat request: OpenAI's `/v1/chat/completions` body, validated once at the edge.

Unknown top-level fields are rejected (as OpenAI does), so a typo never silently changes
behaviour; the error names the field.

Every number and list carries the range OpenAI documents as a msgspec `Meta` constraint: the
decoder refuses `max_tokens: 2**64` or a `logit_bias` for token 10**20 with a 400 naming the
field instead of forwarding it, and the OpenAPI document (`gatewise.server.openapi`) is
generated from these same annotations, so a client generated from it sends only what is
accepted. Rules between fields (a `tool_choice` naming a declared tool) are in
`types.validation`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.types.messages import Message

# Token ids: vocabularies stay far below ten million (o200k: 200,019; Gemma: 262,144), so a
# bigger id is a mistake, and a `logit_bias` key is its decimal spelling without leading zeros.
MAX_TOKEN_ID = 9_999_999
TOKEN_ID_PATTERN = r"^(0|[1-9][0-9]{0,6})$"
MAX_INT32 = 2**31 - 1

_Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
_TokenCount = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT32)]
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
TokenId = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKEN_ID)]
# OpenAI: at most 300 biased tokens, each -100 (ban) .. 100 (exclusive selection).
_LogitBias = Annotated[
    dict[Annotated[str, msgspec.Meta(pattern=TOKEN_ID_PATTERN)],
         Annotated[float, msgspec.Meta(ge=-100.0, le=100.0)]],
    msgspec.Meta(max_length=300)]
# OpenAI: at most 16 pairs, keys up to 64 characters, values up to 512.
_Metadata = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=64)], Annotated[str, msgspec.Meta(max_length=512)]],
    msgspec.Meta(max_length=16)]


class _Base(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    pass


class FunctionDefinition(_Base):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_.\-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Base):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Base):
    name: str


class NamedToolChoice(_Base):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ResponseFormatText(_Base, tag="text", tag_field="type"):
    pass


class ResponseFormatJSONObject(_Base, tag="json_object", tag_field="type"):
    pass


class JSONSchemaSpec(_Base):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-zA-Z0-9_\-]{1,64}$")]
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormatJSONSchema(_Base, tag="json_schema", tag_field="type"):
    json_schema: JSONSchemaSpec


ResponseFormat = ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema


class StreamOptions(_Base):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatRequest(_Base):
    model: ModelName
    messages: Annotated[list[Message], msgspec.Meta(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: _Temperature | None = None
    top_p: _Probability | None = None
    max_tokens: _TokenCount | None = None
    max_completion_tokens: _TokenCount | None = None
    stop: str | Annotated[list[str], msgspec.Meta(max_length=4)] | None = None
    seed: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    user: str | None = None
    metadata: _Metadata | None = None
    tools: Annotated[list[Tool], msgspec.Meta(min_length=1, max_length=128)] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    frequency_penalty: _Penalty | None = None
    presence_penalty: _Penalty | None = None
    logit_bias: _LogitBias | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    service_tier: str | None = None
    store: bool | None = None
    modalities: list[str] | None = None
    prediction: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    web_search_options: dict[str, Any] | None = None

    @property
    def output_limit(self) -> int | None:
        """The caller's cap on generated tokens, whichever of the two spellings it used."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)
