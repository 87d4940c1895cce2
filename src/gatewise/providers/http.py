"""Runs any pure `WireAdapter` over the shared transport: the one HTTP `ProviderClient`.

Everything that is the same for every HTTP provider lives here once: status checks, mapping
transport failures and upstream garbage to `ProviderError`s with the provider named, framing
streams (SSE or NDJSON) and noticing a stream that ends before its end marker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gatewise.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeoutError,
)
from gatewise.providers.base import Capabilities, Target, WireAdapter
from gatewise.providers.common import bad_response
from gatewise.transport.base import (
    HttpRequest,
    HttpResponse,
    ReadTimeout,
    Transport,
    TransportError,
)
from gatewise.transport.sse import NDJSONDecoder, SSEDecoder
from gatewise.types.embeddings import EmbeddingRequest, EmbeddingResponse
from gatewise.types.requests import ChatRequest
from gatewise.types.responses import ChatCompletion
from gatewise.types.stream import ChatCompletionChunk


def _transport_error(exc: TransportError, target: Target) -> ProviderError:
    cls = ProviderTimeoutError if isinstance(exc, ReadTimeout) else ProviderConnectionError
    return cls(str(exc), provider=target.provider, model=target.model)


class HttpProviderClient:
    def __init__(self, adapter: WireAdapter, transport: Transport) -> None:
        self.adapter = adapter
        self.transport = transport

    async def _send(self, request: HttpRequest, target: Target) -> HttpResponse:
        try:
            resp = await self.transport.send(request)
        except TransportError as exc:
            raise _transport_error(exc, target) from None
        if resp.status >= 400:
            raise self.adapter.map_error(resp, target)
        if not _is_json(resp):
            raise bad_response(target, f"expected JSON, got content-type "
                               f"'{resp.content_type or 'none'}'", resp)
        return resp

    async def chat(self, req: ChatRequest, target: Target) -> ChatCompletion:
        resp = await self._send(self.adapter.build_request(req, target), target)
        try:
            return self.adapter.parse_response(resp, req, target)
        except ProviderError:
            raise
        except Exception as exc:  # an adapter tripping on garbage is the upstream's fault
            raise bad_response(target, f"unparseable response ({type(exc).__name__})",
                               resp) from None

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[ChatCompletionChunk]:
        adapter = self.adapter
        request = adapter.build_request(req, target)
        try:
            resp = await self.transport.open_stream(request)
        except TransportError as exc:
            raise _transport_error(exc, target) from None
        try:
            if resp.status >= 400:
                try:
                    body = await resp.read()
                except TransportError:
                    body = b""
                raise adapter.map_error(HttpResponse(resp.status, resp.headers, body), target)
            ctype = resp.headers.get("content-type", resp.headers.get("Content-Type", ""))
            if adapter.stream_format == "sse" and "event-stream" not in ctype:
                # Some hosts answer a stream request with one JSON error body and status 200.
                body = await resp.read()
                if b'"error"' in body[:64]:
                    raise adapter.map_error(HttpResponse(502, resp.headers, body), target)
                raise bad_response(target, f"expected an event stream, got '{ctype}'",
                                   HttpResponse(resp.status, resp.headers, body))
            state = adapter.new_stream_state(req, target)
            decoder: SSEDecoder | NDJSONDecoder = (
                SSEDecoder() if adapter.stream_format == "sse" else NDJSONDecoder()
            )
            parse = adapter.parse_stream_event
            pieces = resp.aiter_bytes()
            try:
                async for raw in pieces:
                    for frame in decoder.feed(raw):
                        for chunk in parse(frame, state):
                            yield chunk
                    if state.done:
                        break
                if not state.done:
                    for frame in decoder.flush():
                        for chunk in parse(frame, state):
                            yield chunk
            except TransportError as exc:
                raise _transport_error(exc, target) from None
            except ProviderError:
                raise
            except Exception as exc:
                raise ProviderResponseError(
                    f"malformed stream frame ({type(exc).__name__})",
                    provider=target.provider, model=target.model,
                ) from None
            finally:
                closer = getattr(pieces, "aclose", None)
                if closer is not None:  # generator-based bodies: close them now, not at GC
                    await closer()
            if not state.done:
                raise ProviderResponseError("stream ended before its end marker",
                                            provider=target.provider, model=target.model)
        finally:
            await resp.aclose()

    async def embed(self, req: EmbeddingRequest, target: Target) -> EmbeddingResponse:
        resp = await self._send(self.adapter.build_embed_request(req, target), target)
        try:
            return self.adapter.parse_embed_response(resp, req, target)
        except ProviderError:
            raise
        except Exception as exc:
            raise bad_response(target, f"unparseable embeddings response "
                               f"({type(exc).__name__})", resp) from None

    async def validate_key(self, target: Target) -> None:
        await self._send(self.adapter.build_validate_request(target), target)

    def capabilities(self, target: Target) -> Capabilities:
        return self.adapter.capabilities(target.model)

    async def aclose(self) -> None:
        return None


def _is_json(resp: HttpResponse) -> bool:
    ctype = resp.content_type
    return not ctype or "json" in ctype
