"""Gemini `generateContent` ⇄ OpenAI chat completions.

Gemini streams (`?alt=sse`) send one whole `GenerateContentResponse` per event, each with the
new parts only and the running usage; there is no end marker, so a stream is done once every
candidate seen has reported a `finishReason`. Function calls arrive whole (never split), so each
becomes an OpenAI tool-call header chunk followed by one argument chunk.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gatewise.errors import ContentFilteredError, InvalidRequestError, ProviderError
from gatewise.providers.base import Capabilities, StreamState, Target
from gatewise.providers.common import bad_response, decode_body, embedding_base64, now
from gatewise.providers.gemini import wire
from gatewise.providers.gemini.errors import map_error as _map_error
from gatewise.transport.base import HttpRequest, HttpResponse
from gatewise.transport.sse import SSEEvent
from gatewise.types.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from gatewise.types.ids import new_id
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.stream import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    DeltaFunctionCall,
    DeltaToolCall,
)

_response = msgspec.json.Decoder(wire.GenerateContentResponse)
_embed_response = msgspec.json.Decoder(wire.EmbedResponseWire)
_encode = msgspec.json.Encoder().encode

# Context windows of the families in use; newer ones default to a million tokens.
_CONTEXT = (("gemini-1.5-pro", 2_097_152), ("gemini-1.0", 32_768), ("gemma-3n", 32_768),
            ("gemma", 131_072), ("gemini", 1_048_576))


class GeminiAdapter:
    name = "gemini"
    stream_format: Literal["sse", "ndjson"] = "sse"

    # --- chat --------------------------------------------------------------------------------

    def build_request(self, req: ChatRequest, target: Target) -> HttpRequest:
        return HttpRequest("POST", wire.chat_url(target, req.stream), wire.headers_for(target),
                           wire.chat_body(req, target), target.timeouts)

    def parse_response(self, resp: HttpResponse, req: ChatRequest, target: Target) -> ChatCompletion:
        data = self._decode(resp.body, target, resp)
        if not data.candidates:
            raise self._no_candidates(data, target, resp.body)
        choices: list[Choice] = []
        for pos, cand in enumerate(data.candidates):
            text, calls = wire.split_parts(cand.content)
            tool_calls = [
                ToolCall(id=wire.tool_call_id(call, sig), type="function",
                         function=FunctionCall(name=call.name, arguments=wire.args_json(call)))
                for call, sig in calls
            ]
            choices.append(Choice(
                index=cand.index if cand.index is not None else pos,
                message=ResponseMessage(content=text if text or not tool_calls else None,
                                        tool_calls=tool_calls or None),
                finish_reason=wire.finish_reason(cand.finish_reason, bool(tool_calls)),
            ))
        return ChatCompletion(
            id=data.response_id or new_id(),
            created=now(),
            model=data.model_version or wire.model_name(target.model),
            choices=choices,
            usage=wire.usage_from(data.usage_metadata) if data.usage_metadata else None,
        )

    def new_stream_state(self, req: ChatRequest, target: Target) -> StreamState:
        state = StreamState(req, target, created=now(), model=wire.model_name(target.model))
        state.data.update(seen=set(), finished=set(), calls={})
        return state

    def parse_stream_event(self, event: SSEEvent | bytes, state: StreamState) -> list[ChatCompletionChunk]:
        raw = event.data.encode() if isinstance(event, SSEEvent) else event
        if not raw.strip():
            return []
        data = self._decode(raw, state.target, None)
        if not state.id:
            state.id = data.response_id or new_id()
        if data.model_version:
            state.model = data.model_version
        if data.usage_metadata is not None:
            state.usage = wire.usage_from(data.usage_metadata)
        if not data.candidates:
            if data.prompt_feedback and data.prompt_feedback.block_reason:
                raise self._no_candidates(data, state.target, raw)
            return []
        seen: set[int] = state.data["seen"]
        finished: set[int] = state.data["finished"]
        calls_so_far: dict[int, int] = state.data["calls"]
        out: list[ChatCompletionChunk] = []

        def emit(index: int, delta: Delta, finish: str | None = None) -> None:
            out.append(ChatCompletionChunk(
                id=state.id, created=state.created, model=state.model,
                choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish)],
            ))

        for pos, cand in enumerate(data.candidates):
            idx = cand.index if cand.index is not None else pos
            text, calls = wire.split_parts(cand.content)
            if idx not in seen:
                seen.add(idx)
                emit(idx, Delta(role="assistant", content=text))
            elif text:
                emit(idx, Delta(content=text))
            for call, sig in calls:
                n = calls_so_far.get(idx, 0)
                calls_so_far[idx] = n + 1
                emit(idx, Delta(tool_calls=[DeltaToolCall(
                    index=n, id=wire.tool_call_id(call, sig), type="function",
                    function=DeltaFunctionCall(name=call.name, arguments=""))]))
                emit(idx, Delta(tool_calls=[DeltaToolCall(
                    index=n, function=DeltaFunctionCall(arguments=wire.args_json(call)))]))
            if cand.finish_reason is not None and idx not in finished:
                finished.add(idx)
                reason = wire.finish_reason(cand.finish_reason, calls_so_far.get(idx, 0) > 0)
                state.finish_reason = reason
                emit(idx, Delta(), reason)
        if finished and finished >= seen:
            state.done = True
            if state.usage is not None:
                out.append(ChatCompletionChunk(id=state.id, created=state.created,
                                               model=state.model, choices=[], usage=state.usage))
        return out

    def map_error(self, resp: HttpResponse, target: Target) -> ProviderError:
        return _map_error(resp, target)

    def capabilities(self, model: str) -> Capabilities:
        m = wire.model_name(model).lower()
        embeds = "embedding" in m
        gemma = m.startswith("gemma")
        return Capabilities(
            chat=not embeds,
            streaming=not embeds,
            tools=not embeds and not gemma,
            vision=not embeds,
            json_schema=not embeds and not gemma,
            embeddings=embeds,
            context_window=None if embeds else next(
                (n for prefix, n in _CONTEXT if m.startswith(prefix)), None),
        )

    # --- embeddings ----------------------------------------------------------------------------

    def build_embed_request(self, req: EmbeddingRequest, target: Target) -> HttpRequest:
        texts = req.texts
        if isinstance(req.input, list) and len(texts) != len(req.input):
            raise InvalidRequestError("Gemini embeddings take text input, not token ids",
                                      param="input")
        model = f"models/{wire.model_name(target.model)}"
        items = []
        for text in texts:
            item: dict[str, object] = {"model": model, "content": {"parts": [{"text": text}]}}
            if req.dimensions is not None:
                item["outputDimensionality"] = req.dimensions
            items.append(item)
        root = f"{wire.api_root(target)}/{wire.model_path(target.model)}"
        if len(items) == 1:
            url, body = f"{root}:embedContent", _encode(items[0])
        else:
            url, body = f"{root}:batchEmbedContents", _encode({"requests": items})
        return HttpRequest("POST", url, wire.headers_for(target), body, target.timeouts)

    def parse_embed_response(self, resp: HttpResponse, req: EmbeddingRequest,
                             target: Target) -> EmbeddingResponse:
        data = decode_body(_embed_response, resp.body, target,
                           "malformed JSON in embeddings response", resp)
        vectors = data.embeddings if data.embeddings is not None else (
            [data.embedding] if data.embedding is not None else [])
        if len(vectors) != len(req.texts):
            raise bad_response(target, f"expected {len(req.texts)} embeddings, got "
                               f"{len(vectors)}", resp)
        as_b64 = req.encoding_format == "base64"
        return EmbeddingResponse(
            data=[Embedding(index=i, embedding=embedding_base64(v.values) if as_b64 else v.values)
                  for i, v in enumerate(vectors)],
            model=wire.model_name(target.model),
            usage=EmbeddingUsage(),  # Gemini reports no token counts for embeddings
        )

    def build_validate_request(self, target: Target) -> HttpRequest:
        return HttpRequest("GET", f"{wire.api_root(target)}/models",
                           wire.headers_for(target, json_body=False), None, target.timeouts)

    # --- helpers -------------------------------------------------------------------------------

    def _decode(self, body: bytes, target: Target,
                resp: HttpResponse | None) -> wire.GenerateContentResponse:
        data = decode_body(_response, body, target, "malformed JSON from Gemini", resp)
        if data.error is not None:
            code = data.error.get("code")
            status = code if isinstance(code, int) and code >= 400 else 502
            raise _map_error(HttpResponse(status, resp.headers if resp else {}, body), target)
        return data

    def _no_candidates(self, data: wire.GenerateContentResponse, target: Target,
                       body: bytes) -> ProviderError:
        reason = data.prompt_feedback.block_reason if data.prompt_feedback else None
        if reason:
            return ContentFilteredError(f"prompt blocked by Gemini ({reason})",
                                        provider=target.provider, model=target.model,
                                        upstream_status=200, body=body)
        return bad_response(target, "Gemini returned no candidates",
                            HttpResponse(200, {}, body))



