"""OpenAI's legacy text completions (`POST /v1/completions`), as a translation onto chat.

Old clients (and frameworks' "LLM" as opposed to "chat model" classes) still send a `prompt`
instead of `messages`. Rather than a second pipeline, a completion request becomes a chat
request with one user message, so governance, guardrails, the cache and the ledger treat it
exactly as chat; the answer and each streamed chunk are reshaped into `text_completion`
objects on the way out.

What has no chat equivalent is refused with a 400 naming the parameter (`echo: true`, a
`suffix`, `logprobs`, `best_of` above 1, token-array prompts, several prompts), never ignored:
a client that asked for them would otherwise get an answer that silently differs. Their
neutral spellings (`echo: false`, `suffix: null`, `logprobs: null`, `best_of: 1`) are accepted
because frameworks send them on every call.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.types.messages import UserMessage
from gatewise.types.requests import ChatRequest, ModelName, StreamOptions
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk
from gatewise.types.validation import decode_typed

# OpenAI's documented default for this endpoint (chat has none): a client written against
# `/v1/completions` that sends no `max_tokens` expects short answers.
DEFAULT_MAX_TOKENS = 16
_Temperature = Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]
_Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Penalty = Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]
_TokenCount = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
_LogitBias = Annotated[
    dict[Annotated[str, msgspec.Meta(pattern=r"^(0|[1-9][0-9]{0,6})$")],
         Annotated[float, msgspec.Meta(ge=-100.0, le=100.0)]],
    msgspec.Meta(max_length=300)]


class CompletionRequest(msgspec.Struct, kw_only=True, omit_defaults=True,
                        forbid_unknown_fields=True):
    """The request body; ranges as chat's (`types.requests`), so the translation never fails.
    `prompt` is one string, or a list holding exactly one (several prompts are not served)."""

    model: ModelName
    prompt: str | Annotated[list[str], msgspec.Meta(min_length=1, max_length=1)]
    max_tokens: _TokenCount | None = None
    temperature: _Temperature | None = None
    top_p: _Probability | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=128)] | None = None
    stop: str | Annotated[list[str], msgspec.Meta(max_length=4)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: _Penalty | None = None
    frequency_penalty: _Penalty | None = None
    logit_bias: _LogitBias | None = None
    seed: Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | None = None
    user: str | None = None
    # Accepted only with their neutral values (see the module docstring and `_refuse`).
    echo: bool | None = None
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = None


# The unsupported parameters' neutral values, stated in the OpenAPI document (the server
# refuses anything else, so a client generated from the document never meets a 400 for them).
UNSUPPORTED_SCHEMAS: dict[str, dict[str, Any]] = {
    "echo": {"enum": [False, None], "description": "not supported: only `false`"},
    "suffix": {"enum": ["", None], "description": "not supported: only empty or null"},
    "logprobs": {"type": "null", "description": "not supported: only null"},
    "best_of": {"enum": [1, None], "description": "not supported: only 1"},
}


class CompletionChoice(msgspec.Struct, kw_only=True):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: str | None = None


class Completion(msgspec.Struct, kw_only=True):
    """A `text_completion` answer, or one streamed chunk of it (the same object)."""

    id: str = ""
    object: Literal["text_completion"] = "text_completion"
    created: int = 0
    model: str = ""
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


_decoder = msgspec.json.Decoder(CompletionRequest)
# Chat's finish reasons that a text completion cannot have (no tools are sent) read as `stop`.
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


def _refuse(req: CompletionRequest) -> None:
    for name, bad in (("echo", req.echo is True), ("suffix", bool(req.suffix)),
                      ("logprobs", req.logprobs is not None),
                      ("best_of", req.best_of not in (None, 1))):
        if bad:
            raise InvalidRequestError(
                f"'{name}' is not supported by this gateway's /v1/completions; use "
                "/v1/chat/completions or leave it out", param=name, code="unsupported_parameter")


def decode_completion_request(body: bytes, *, max_depth: int) -> CompletionRequest:
    """The body validated at the edge: a 400 naming the field for anything malformed,
    unknown or unsupported, before any call exists (so nothing is recorded)."""
    req = decode_typed(_decoder, CompletionRequest, body, "completion request",
                       max_depth=max_depth)
    _refuse(req)
    return req


def to_chat_request(req: CompletionRequest) -> ChatRequest:
    """The prompt as one user message; every other field carries over as chat spells it."""
    prompt = req.prompt if isinstance(req.prompt, str) else req.prompt[0]
    return ChatRequest(
        model=req.model, messages=[UserMessage(content=prompt)], stream=req.stream,
        stream_options=req.stream_options if req.stream else None,
        max_tokens=req.max_tokens if req.max_tokens is not None else DEFAULT_MAX_TOKENS,
        temperature=req.temperature, top_p=req.top_p, n=req.n, stop=req.stop,
        presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
        logit_bias=req.logit_bias, seed=req.seed, user=req.user)


def _finish(reason: str | None) -> str | None:
    return None if reason is None else _FINISH.get(reason, "stop")


def from_chat_completion(out: ChatCompletion) -> Completion:
    return Completion(
        id=out.id, created=out.created, model=out.model, usage=out.usage,
        system_fingerprint=out.system_fingerprint,
        choices=[CompletionChoice(text=c.message.content or "", index=c.index,
                                  finish_reason=_finish(c.finish_reason)) for c in out.choices])


def from_chat_chunk(chunk: ChatCompletionChunk) -> Completion | None:
    """One streamed chunk; None for a chunk that carries nothing a text completion shows (the
    role-only opening delta, a tool-call fragment)."""
    choices = [CompletionChoice(text=c.delta.content or "", index=c.index,
                                finish_reason=_finish(c.finish_reason))
               for c in chunk.choices if c.delta.content or c.finish_reason is not None]
    if not choices and chunk.usage is None:
        return None
    return Completion(id=chunk.id, created=chunk.created, model=chunk.model, choices=choices,
                      usage=chunk.usage, system_fingerprint=chunk.system_fingerprint)
