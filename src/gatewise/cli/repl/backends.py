"""Where the REPL's calls go: a running gateway over HTTP, or a `Gateway` in this process.

Both take an OpenAI chat body, stream it, and report as they go: the gateway's steps
(`gatewise.pipeline.steps`: route, cache, attempts, first token, done with real usage and
cost, errors) to `on_step`, the answer's text to `on_delta`. Over HTTP the steps come as
`event: gatewise.step` frames of the same stream (the request says `x-gatewise-steps: 1`); in
process through `on_step=`. The HTTP backend uses gatewise's own pooled client
(`transport.h1`); cancelling `complete` (Ctrl-C) closes the connection, which the server turns
into a cancelled upstream request.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from gatewise.errors import GatewayError
from gatewise.pipeline.core import StepListener
from gatewise.pipeline.steps import error_data
from gatewise.transport.base import HttpRequest, Timeouts, TransportError
from gatewise.transport.sse import SSEDecoder

if TYPE_CHECKING:
    from gatewise.gateway import Gateway
    from gatewise.transport.h1 import H1Transport

OnDelta = Callable[[str], None]


class BackendError(Exception):
    """A call that failed: the gateway's error type, HTTP status and public message."""

    def __init__(self, type_: str, status: int | None, message: str) -> None:
        super().__init__(f"{type_}: {message}")
        self.type = type_
        self.status = status
        self.message = message


@dataclass(slots=True)
class Completion:
    """What one streamed call produced: its text, its tool calls (OpenAI dicts), why it ended."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None


class Backend(Protocol):
    label: str

    async def warm(self) -> None:
        """Gets ready before the first input (the app calls it at start, in the background),
        so the first turn's blocks are not held up by one-off start-up work."""
        ...

    async def complete(self, body: dict[str, Any], on_step: StepListener,
                       on_delta: OnDelta) -> Completion: ...

    async def models(self) -> list[str]: ...

    async def aclose(self) -> None: ...


class _Assembler:
    """Builds a `Completion` from chat.completion.chunk objects (dicts) as they pass."""

    def __init__(self, on_delta: OnDelta) -> None:
        self.out = Completion()
        self.on_delta = on_delta
        self._calls: dict[int, dict[str, Any]] = {}

    def chunk(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                self.out.content += text
                self.on_delta(text)
            for tc in delta.get("tool_calls") or ():
                slot = self._calls.setdefault(tc.get("index", 0), {
                    "id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                self.out.finish_reason = choice["finish_reason"]

    def result(self) -> Completion:
        self.out.tool_calls = [self._calls[i] for i in sorted(self._calls)]
        return self.out


class HttpBackend:
    """A running gateway at `base_url` (…/v1 or the server's root), called with `api_key`."""

    def __init__(self, base_url: str, api_key: str | None, *, default_model: str | None = None,
                 transport: H1Transport | None = None) -> None:
        """`default_model`: for steps that name none (the API needs a model; unset: the first
        model the gateway lists, asked once)."""
        from gatewise.transport.h1 import H1Transport

        root = base_url.rstrip("/")
        self.base = root if root.endswith("/v1") else root + "/v1"
        self.label = f"http {root}"
        self._key = api_key
        self.default_model = default_model
        self._transport = transport or H1Transport()

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "text/event-stream"}
        if self._key:
            h["authorization"] = f"Bearer {self._key}"
        return h

    async def complete(self, body: dict[str, Any], on_step: StepListener,
                       on_delta: OnDelta) -> Completion:
        payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
        if payload.get("model") is None:
            if self.default_model is None:
                listed = await self.models()
                if not listed:
                    raise BackendError("NoModel", None, "the gateway lists no model")
                self.default_model = listed[0]
            payload["model"] = self.default_model
        headers = {**self._headers(), "x-gatewise-steps": "1"}
        req = HttpRequest("POST", self.base + "/chat/completions", headers,
                          json.dumps(payload).encode(), Timeouts(total=None, read=300.0))
        try:
            resp = await self._transport.open_stream(req)
        except TransportError as exc:
            raise BackendError("ConnectionError", None, f"cannot reach {self.base}: {exc}") from None
        try:
            if resp.status != 200:
                raise _http_error(resp.status, await resp.read())
            asm = _Assembler(on_delta)
            decoder = SSEDecoder()
            async for raw in resp.aiter_bytes():
                for ev in decoder.feed(raw):
                    if _handle(ev.event, ev.data, on_step, asm):
                        return asm.result()
            for ev in decoder.flush():
                if _handle(ev.event, ev.data, on_step, asm):
                    return asm.result()
            raise BackendError("ProtocolError", None, "the stream ended without [DONE]")
        except TransportError as exc:
            raise BackendError("ConnectionError", None, str(exc)) from None
        finally:
            await resp.aclose()  # before the end (Ctrl-C): closes the connection

    async def warm(self) -> None:
        """Learns the default model now, if none was given (best effort: a gateway that is
        not up yet says so on the first turn instead)."""
        if self.default_model is None:
            with contextlib.suppress(BackendError):
                listed = await self.models()
                if listed:
                    self.default_model = listed[0]

    async def models(self) -> list[str]:
        req = HttpRequest("GET", self.base + "/models", self._headers(), None,
                          Timeouts(total=10.0))
        try:
            resp = await self._transport.send(req)
        except TransportError as exc:
            raise BackendError("ConnectionError", None, f"cannot reach {self.base}: {exc}") from None
        if resp.status != 200:
            raise _http_error(resp.status, resp.body)
        return [str(m["id"]) for m in json.loads(resp.body).get("data", [])]

    async def aclose(self) -> None:
        await self._transport.aclose()


def _handle(event: str, data: str, on_step: StepListener, asm: _Assembler) -> bool:
    """One SSE event; True at the end of the stream."""
    if event == "gatewise.step":
        step = json.loads(data)
        name = str(step.pop("step", "?"))
        on_step(name, step)
        return False
    if data == "[DONE]":
        return True
    obj = json.loads(data)
    if "error" in obj:
        err = obj["error"] or {}
        raise BackendError(str(err.get("type") or "error"), None, str(err.get("message") or ""))
    asm.chunk(obj)
    return False


def _http_error(status: int, body: bytes) -> BackendError:
    try:
        err = json.loads(body)["error"]
        return BackendError(str(err.get("type") or "error"), status, str(err.get("message")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return BackendError("HTTPError", status, f"HTTP {status}")


class InProcessBackend:
    """A `Gateway` in this process (a config file, or the embedded model with `--offline`)."""

    def __init__(self, gateway: Gateway, label: str) -> None:
        self.gateway = gateway
        self.label = label

    async def warm(self) -> None:
        """Starts the gateway (journal replay, stores, background jobs) before the first turn."""
        await self.gateway.start()

    async def complete(self, body: dict[str, Any], on_step: StepListener,
                       on_delta: OnDelta) -> Completion:
        params = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
        asm = _Assembler(on_delta)
        stream = self.gateway.stream(model=body.get("model"), messages=body["messages"],
                                     on_step=on_step, **params)
        try:
            async for chunk in stream:
                asm.chunk(chunk_dict(chunk))
        except GatewayError as exc:
            data = error_data(exc)
            raise BackendError(data["type"], data["status"], data["message"]) from None
        finally:
            await stream.aclose()  # a no-op once it ended; on Ctrl-C it cancels the upstream
        return asm.result()

    async def models(self) -> list[str]:
        return self.gateway.models()

    async def aclose(self) -> None:
        await self.gateway.aclose()


def chunk_dict(chunk: Any) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(chunk)
    return out
