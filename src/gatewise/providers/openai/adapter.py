"""OpenAI chat completions: the canonical shape is OpenAI's, so this adapter mostly passes
bodies through, swapping in the upstream model name and checking what comes back."""

from __future__ import annotations

from typing import Literal

import msgspec

from gatewise.errors import ProviderError
from gatewise.providers.base import Capabilities, StreamState, Target
from gatewise.providers.common import decode_body, map_status
from gatewise.providers.openai.errors import map_error as _map_error
from gatewise.providers.openai.wire import chat_body, headers_for, url_for
from gatewise.transport.base import HttpRequest, HttpResponse
from gatewise.transport.sse import SSEEvent
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk

_completion = msgspec.json.Decoder(ChatCompletion)
_chunk = msgspec.json.Decoder(ChatCompletionChunk)
_embedding = msgspec.json.Decoder(EmbeddingResponse)
_encode = msgspec.json.Encoder().encode

_VISION_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4-turbo", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


class OpenAIAdapter:
    name = "openai"
    stream_format: Literal["sse", "ndjson"] = "sse"

    def build_request(self, req: ChatRequest, target: Target) -> HttpRequest:
        return HttpRequest(
            "POST",
            url_for(target, "chat/completions"),
            headers_for(target),
            chat_body(req, target),
            target.timeouts,
        )

    def parse_response(self, resp: HttpResponse, req: ChatRequest, target: Target) -> ChatCompletion:
        out = decode_body(_completion, resp.body, target, "malformed JSON in chat completion", resp)
        if not out.choices and resp.body.lstrip().startswith(b'{"error"'):
            raise map_status(502, resp.headers, resp.body, target)
        return out

    def new_stream_state(self, req: ChatRequest, target: Target) -> StreamState:
        return StreamState(req, target)

    def parse_stream_event(self, event: SSEEvent | bytes, state: StreamState) -> list[ChatCompletionChunk]:
        data = event.data if isinstance(event, SSEEvent) else event.decode()
        if data == "[DONE]":
            state.done = True
            return []
        raw = data.encode()
        if raw.startswith(b'{"error"'):
            raise map_status(502, {}, raw, state.target)
        chunk = _chunk.decode(raw)
        if chunk.usage is not None:
            state.usage = chunk.usage
        for c in chunk.choices:
            if c.finish_reason is not None:
                state.finish_reason = c.finish_reason
        return [chunk]

    def map_error(self, resp: HttpResponse, target: Target) -> ProviderError:
        return _map_error(resp, target)

    def capabilities(self, model: str) -> Capabilities:
        m = model.lower()
        embeds = "embed" in m
        return Capabilities(
            chat=not embeds,
            streaming=not embeds,
            tools=not embeds,
            vision=m.startswith(_VISION_PREFIXES),
            json_schema=not embeds,
            embeddings=embeds,
        )

    def build_embed_request(self, req: EmbeddingRequest, target: Target) -> HttpRequest:
        body = _encode(msgspec.structs.replace(req, model=target.model))
        return HttpRequest("POST", url_for(target, "embeddings"), headers_for(target), body,
                           target.timeouts)

    def parse_embed_response(self, resp: HttpResponse, req: EmbeddingRequest,
                             target: Target) -> EmbeddingResponse:
        return decode_body(_embedding, resp.body, target, "malformed JSON in embeddings response",
                           resp)

    def build_validate_request(self, target: Target) -> HttpRequest:
        return HttpRequest("GET", url_for(target, "models"), headers_for(target, json_body=False),
                           None, target.timeouts)
