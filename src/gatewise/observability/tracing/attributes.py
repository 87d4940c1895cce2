"""GenAI semantic-convention attributes from what a call carries: plain functions over
`Call`, requests and responses, with no OpenTelemetry import, so they are cheap to read and to
test.

Only ids, names and numbers leave here, except in the two `*_messages` functions, which the
span code calls only when an operator set `capture_content` (and then on the request as it
leaves for the provider, i.e. after the PII guard masked it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any
from urllib.parse import urlsplit

import msgspec

from gatewise.pipeline.core import Call
from gatewise.providers.base import Target
from gatewise.types.embeddings import EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Usage

AttrValue = str | bool | int | float | Sequence[str]
Attributes = dict[str, AttrValue]

# Semantic-convention names (GenAI and general), spelled once.
OPERATION = "gen_ai.operation.name"
SYSTEM = "gen_ai.system"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TTFT = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

OPERATIONS = {"chat": "chat", "embed": "embeddings"}  # call kind -> gen_ai.operation.name
_encode = msgspec.json.Encoder().encode
HEADER_NAME = itemgetter(0)  # a raw header's name: `map(HEADER_NAME, headers)` runs in C


def operation_of(call: Call) -> str:
    return OPERATIONS.get(call.kind, call.kind)


def span_name(operation: str, model: str) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}`, as the conventions name spans."""
    return f"{operation} {model}"


def request_attributes(call: Call, a: Attributes, parameters: bool = True) -> None:
    """What is known when the call starts and differs from request to request, written into
    the span's own `a`: the request id, the sampling parameters (unless the caller puts them
    in a block, `parameters_key`) and who is calling (ids only). The operation and the model
    asked for are in the request span's block (`request_constants`)."""
    req = call.request
    a["gatewise.request_id"] = call.request_id
    if parameters and isinstance(req, ChatRequest):
        _chat_parameters(req, a)
    ident = call.identity
    if ident.team is not None:
        a["gatewise.team"] = ident.team
    if ident.key_id is not None:
        a["gatewise.key_id"] = ident.key_id


def parameters_key(req: ChatRequest) -> tuple[Any, ...]:
    """Everything `chat_parameters` reads: requests with equal keys carry equal attributes
    (the numbers' types are the decoder's: a temperature is always a float)."""
    return (req.max_completion_tokens or req.max_tokens, req.temperature, req.top_p, req.seed,
            req.n, req.stream)


def chat_parameters(req: ChatRequest) -> Attributes:
    a: Attributes = {}
    _chat_parameters(req, a)
    return a


def _chat_parameters(req: ChatRequest, a: Attributes) -> None:
    limit = req.max_completion_tokens or req.max_tokens
    if limit is not None:
        a["gen_ai.request.max_tokens"] = limit
    if req.temperature is not None:
        a["gen_ai.request.temperature"] = req.temperature
    if req.top_p is not None:
        a["gen_ai.request.top_p"] = req.top_p
    if req.seed is not None:
        a["gen_ai.request.seed"] = req.seed
    if req.n is not None and req.n != 1:
        a["gen_ai.request.choice.count"] = req.n
    if req.stream:
        a["gen_ai.request.stream"] = True


def request_constants(kind: str, model: str, target: Target | None, deployment_id: str | None,
                      alias: str) -> Attributes:
    """The request span's attributes that every request for `model` served by the same
    deployment shares: the operation, the model asked for, and where it was served (the
    provider, the deployment; none when no deployment answered, e.g. a cache hit)."""
    a: Attributes = {OPERATION: OPERATIONS.get(kind, kind), REQUEST_MODEL: model}
    if target is not None and deployment_id is not None:
        a[SYSTEM] = a[PROVIDER] = target.provider
        a["gatewise.deployment"] = deployment_id
    a["gatewise.alias"] = alias
    return a


def attempt_constants(kind: str, target: Target, deployment_id: str, alias: str,
                      address: tuple[str, int] | None) -> Attributes:
    """What every attempt against one deployment for one alias says alike: the operation,
    the provider, the model asked of it, the deployment, the alias and the server."""
    a: Attributes = {OPERATION: OPERATIONS.get(kind, kind), SYSTEM: target.provider,
                     PROVIDER: target.provider, REQUEST_MODEL: target.model,
                     "gatewise.deployment": deployment_id, "gatewise.alias": alias}
    if address is not None:
        a[SERVER_ADDRESS], a[SERVER_PORT] = address
    return a


ATTEMPT = "gatewise.attempt"


def attempt_attributes(call: Call, a: Attributes, parameters: bool = True,
                       number: bool = True) -> None:
    """One attempt's own, written into `a`: its number (unless it is in a block: a first
    attempt's is in its deployment's) and (unless they are in a block) the sampling
    parameters it asks for (the rest is in the deployment's block, `attempt_constants`)."""
    if number:
        a[ATTEMPT] = call.attempts + 1
    req = call.request
    if parameters and isinstance(req, ChatRequest):
        _chat_parameters(req, a)


def server_address(api_base: str) -> tuple[str, int] | None:
    """(host, port) of an upstream base URL; None for in-process engines (no URL)."""
    if not api_base:
        return None
    try:
        parts = urlsplit(api_base if "//" in api_base else f"//{api_base}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if port is None:
        port = 80 if parts.scheme == "http" else 443
    return host, port


def answer_attributes(result: Any, usage: Usage | None, a: Attributes) -> None:
    """The usage, and the response id, model and finish reasons of a whole answer (`result`:
    None when there is none)."""
    if usage is not None:
        a[INPUT_TOKENS] = usage.prompt_tokens
        a[OUTPUT_TOKENS] = usage.completion_tokens
    if result is not None:  # (None, the usual here: a stream's end, or a failure)
        rid, model, reasons = answer_of(result)
        _answer_into(a, None, None, rid, model, reasons)


def _answer_into(a: Attributes, input_tokens: int | None, output_tokens: int | None,
                 rid: str, model: str, reasons: tuple[str, ...]) -> None:
    """An answer's attributes into `a`, in the order the OTLP encoder writes an
    `AnswerBlock` (`OtlpEncoder._answer`): the usage (both counts or neither), then the
    response id, model and finish reasons, each unless empty."""
    if input_tokens is not None and output_tokens is not None:
        a[INPUT_TOKENS] = input_tokens
        a[OUTPUT_TOKENS] = output_tokens
    if rid:
        a[RESPONSE_ID] = rid
    if model:
        a[RESPONSE_MODEL] = model
    if reasons:
        a[FINISH_REASONS] = reasons


_NO_ANSWER: tuple[str, str, tuple[str, ...]] = ("", "", ())


def answer_of(result: Any) -> tuple[str, str, tuple[str, ...]]:
    """A whole answer's response id, model and finish reasons ("" and () for what it does not
    say; an embedding response says only its model; None is no answer)."""
    if isinstance(result, ChatCompletion):
        choices = result.choices
        if len(choices) == 1:  # the usual answer: no list built only to become a tuple
            reason = choices[0].finish_reason
            reasons: tuple[str, ...] = (reason,) if reason else ()
        else:
            reasons = tuple(c.finish_reason for c in choices if c.finish_reason)
        return result.id or "", result.model or "", reasons
    if isinstance(result, EmbeddingResponse):
        return "", result.model or "", ()
    return _NO_ANSWER


class AnswerBlock:
    """An answer's attributes (the usage; the response's id, model and finish reasons) as
    fields rather than a dict: one per request, shared by the attempt that got the answer
    and the request span that returns it (a `recorder.AttributeBlock` in every other way).
    The OTLP encoder writes these five in a fixed layout, each value's bytes looked up by the
    value alone (`OtlpEncoder._answer`), where a dict's entries cost a (key, value, type)
    lookup each; `attributes` gives the dict the SDK exporters and `RecordedSpan` read.
    Made by `answer_block`; never changed once made."""

    __slots__ = ("encoded", "input_tokens", "output_tokens", "reasons", "response_id",
                 "response_model")

    encoded: bytes | None
    input_tokens: int | None  # both None: no usage
    output_tokens: int | None
    response_id: str  # "": none
    response_model: str
    reasons: tuple[str, ...]

    @property
    def attributes(self) -> Attributes:
        """The same dict, in the same order, as `answer_attributes` makes."""
        a: Attributes = {}
        _answer_into(a, self.input_tokens, self.output_tokens, self.response_id,
                     self.response_model, self.reasons)
        return a


_new_object = object.__new__


def answer_block(result: Any, usage: Usage | None) -> AnswerBlock:
    """`result`'s and `usage`'s attributes as a block (every field set here, without an
    `__init__`: see `recorder.SpanRecorder.start_span`)."""
    block: AnswerBlock = _new_object(AnswerBlock)
    block.encoded = None
    if usage is not None:
        block.input_tokens = usage.prompt_tokens
        block.output_tokens = usage.completion_tokens
    else:
        block.input_tokens = block.output_tokens = None
    block.response_id, block.response_model, block.reasons = answer_of(result)
    return block


def outcome_attributes(call: Call, a: Attributes) -> None:
    """What the whole call ended with: how many attempts, what it cost, the cache's say
    (where it was served is in the request span's block, `request_constants`; the usage is
    the caller's to add, `answer_attributes`, unless the last attempt's block has it)."""
    a["gatewise.attempts"] = call.attempts
    cache = call.response_headers.get("x-gatewise-cache")
    if cache is not None:
        a["gatewise.cache"] = cache
    if call.cost_usd is not None:
        a["gatewise.cost_usd"] = call.cost_usd


def error_type(exc: BaseException) -> str:
    """The exception's class name: never its message (that may quote the request)."""
    name = type(exc).__name__
    return "cancelled" if name in ("CancelledError", "_Cancelled") else name


def input_messages(call: Call, limit: int) -> str | None:
    """The request's messages as they leave for the provider (masked), as JSON, cut to
    `limit` characters. Only called with `capture_content` on."""
    req = call.request
    if isinstance(req, ChatRequest):
        return truncate(_encode(req.messages).decode(), limit)
    return truncate(_encode(req.input).decode(), limit)


def output_messages(result: Any, limit: int) -> str | None:
    """The answer as it came back from the provider (still masked), as JSON, cut to `limit`."""
    if isinstance(result, ChatCompletion):
        out = [{"role": "assistant", "content": c.message.content,
                "tool_calls": c.message.tool_calls, "finish_reason": c.finish_reason}
               for c in result.choices]
        return truncate(_encode(out).decode(), limit)
    return None


def streamed_output(parts: Sequence[str], reasons: Sequence[str], limit: int) -> str:
    out = [{"role": "assistant", "content": "".join(parts),
            "finish_reason": reasons[0] if reasons else None}]
    return truncate(_encode(out).decode(), limit)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def header_carrier(headers: Sequence[tuple[bytes, bytes]]) -> Mapping[str, str] | None:
    """The W3C trace-context headers of a raw (lower-cased) header list; None without a
    `traceparent`. The names are searched in C first (looping over every header in Python,
    on every request, cost more than the rest of starting the request's span; building a
    dict of a server's dozen headers to look one up cost several thousand instructions a
    request, by callgrind), and only a list with a `traceparent` is read as a dict (a
    repeated header's last value wins, as before)."""
    if b"traceparent" not in map(HEADER_NAME, headers):
        return None
    found = dict(headers)
    parent = found.get(b"traceparent")
    if parent is None:
        return None
    carrier = {"traceparent": parent.decode("latin-1")}
    state = found.get(b"tracestate")
    if state is not None:
        carrier["tracestate"] = state.decode("latin-1")
    return carrier
