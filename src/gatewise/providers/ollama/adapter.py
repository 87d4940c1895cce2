"""Ollama's native chat API translated to and from OpenAI's shapes.

Streams are NDJSON: every line is a partial `message`, and the line with `"done": true` carries
the stop reason and the token counts, so it is both the end marker and the usage report. Tool
calls arrive whole (never as argument fragments), each in one line.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gatewise.errors import ProviderError
from gatewise.providers.base import Capabilities, StreamState, Target
from gatewise.providers.common import bad_response, decode_body
from gatewise.providers.ollama.errors import map_body_error
from gatewise.providers.ollama.errors import map_error as _map_error
from gatewise.providers.ollama.wire import (
    ChatFrame,
    EmbedResult,
    api_url,
    chat_body,
    completion_from,
    created_from,
    embed_body,
    embedding_response_from,
    finish_reason_for,
    headers_for,
    tool_calls_from,
    usage_from,
)
from gatewise.transport.base import HttpRequest, HttpResponse
from gatewise.transport.sse import SSEEvent
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.ids import new_id
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

_frame = msgspec.json.Decoder(ChatFrame)
_embed = msgspec.json.Decoder(EmbedResult)

_VISION_HINTS = ("llava", "vision", "gemma3", "qwen2.5vl", "qwen2.5-vl", "qwen3-vl", "minicpm-v",
                 "moondream", "llama4", "mistral-small3.1", "mistral-small3.2")
_EMBED_HINTS = ("embed", "all-minilm", "bge-", "paraphrase-multilingual")

# StreamState.data keys
_STARTED = "started"
_TOOLS = "tool_calls"


class OllamaAdapter:
    name = "ollama"
    stream_format: Literal["sse", "ndjson"] = "ndjson"

    def build_request(self, req: ChatRequest, target: Target) -> HttpRequest:
        return HttpRequest(
            "POST",
            api_url(target, "chat"),
            headers_for(target, stream=req.stream),
            chat_body(req, target),
            target.timeouts,
        )

    def parse_response(self, resp: HttpResponse, req: ChatRequest,
                       target: Target) -> ChatCompletion:
        frame = decode_body(_frame, resp.body, target, "malformed JSON in chat response", resp)
        if frame.error is not None:
            raise map_body_error(frame.error, resp.body, target)
        if frame.message is None:
            raise bad_response(target, "chat response has no 'message'", resp)
        return completion_from(frame, target)

    def new_stream_state(self, req: ChatRequest, target: Target) -> StreamState:
        return StreamState(req, target)

    def parse_stream_event(self, event: SSEEvent | bytes,
                           state: StreamState) -> list[ChatCompletionChunk]:
        raw = event.data.encode() if isinstance(event, SSEEvent) else event
        frame = _frame.decode(raw)
        if frame.error is not None:
            raise map_body_error(frame.error, raw, state.target)
        out: list[ChatCompletionChunk] = []
        if not state.data.get(_STARTED):
            state.data[_STARTED] = True
            state.id = new_id()
            state.created = created_from(frame.created_at)
            state.model = frame.model or state.target.model
            out.append(_chunk(state, Delta(role="assistant", content="")))
        msg = frame.message
        if msg is not None:
            if msg.content:
                out.append(_chunk(state, Delta(content=msg.content)))
            if msg.tool_calls:
                for call in tool_calls_from(msg.tool_calls):
                    index: int = state.data.get(_TOOLS, 0)
                    state.data[_TOOLS] = index + 1
                    fn = call.function
                    out.append(_chunk(state, Delta(tool_calls=[DeltaToolCall(
                        index=index, id=call.id, type="function",
                        function=DeltaFunctionCall(name=fn.name, arguments=""))])))
                    out.append(_chunk(state, Delta(tool_calls=[DeltaToolCall(
                        index=index, function=DeltaFunctionCall(arguments=fn.arguments))])))
        if frame.done:
            state.done = True
            finish = finish_reason_for(frame.done_reason, state.data.get(_TOOLS, 0) > 0)
            state.finish_reason = finish
            out.append(ChatCompletionChunk(
                id=state.id, created=state.created, model=state.model,
                choices=[ChunkChoice(index=0, delta=Delta(), finish_reason=finish)]))
            usage = usage_from(frame)
            if usage is not None:
                state.usage = usage
                out.append(ChatCompletionChunk(id=state.id, created=state.created,
                                               model=state.model, choices=[], usage=usage))
        return out

    def map_error(self, resp: HttpResponse, target: Target) -> ProviderError:
        return _map_error(resp, target)

    def capabilities(self, model: str) -> Capabilities:
        m = model.lower()
        embeds = any(h in m for h in _EMBED_HINTS)
        return Capabilities(
            chat=not embeds,
            streaming=not embeds,
            tools=not embeds,
            vision=any(h in m for h in _VISION_HINTS),
            json_schema=not embeds,
            embeddings=embeds,
        )

    def build_embed_request(self, req: EmbeddingRequest, target: Target) -> HttpRequest:
        return HttpRequest("POST", api_url(target, "embed"), headers_for(target),
                           embed_body(req, target), target.timeouts)

    def parse_embed_response(self, resp: HttpResponse, req: EmbeddingRequest,
                             target: Target) -> EmbeddingResponse:
        result = decode_body(_embed, resp.body, target, "malformed JSON in embeddings response",
                             resp)
        return embedding_response_from(result, req, target)

    def build_validate_request(self, target: Target) -> HttpRequest:
        return HttpRequest("GET", api_url(target, "tags"), headers_for(target, json_body=False),
                           None, target.timeouts)


def _chunk(state: StreamState, delta: Delta) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=state.id, created=state.created, model=state.model,
                               choices=[ChunkChoice(index=0, delta=delta)])
