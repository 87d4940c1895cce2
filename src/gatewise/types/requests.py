"""The canonical chat request: OpenAI's `/v1/chat/completions` body, validated once at the edge.

Unknown top-level fields are rejected (as OpenAI does), so a typo never silently changes
behaviour; the error names the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.types.messages import Message

_Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
_PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


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
    model: Annotated[str, msgspec.Meta(min_length=1)]
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: _Temperature | None = None
    top_p: _Probability | None = None
    max_tokens: _PositiveInt | None = None
    max_completion_tokens: _PositiveInt | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    frequency_penalty: _Penalty | None = None
    presence_penalty: _Penalty | None = None
    logit_bias: dict[str, float] | None = None
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
