"""Canonical answers → Response objects and the Responses stream event sequence.

A Response echoes its request's settings (`envelope`) around the output: one `message` item
with an `output_text` part (and a `refusal` part when the model refused), then one
`function_call` item per tool call, its `call_id` the upstream's tool-call id, so a client's
`function_call_output` finds it. A canonical `length` finish is status `incomplete` with
reason `max_output_tokens`, `content_filter` is `incomplete` with reason `content_filter`.

A stream is re-cut into OpenAI's events, each with a `sequence_number` from 0:
`response.created`, `response.in_progress`, then per output item `response.output_item.added`,
for a message `response.content_part.added`, `response.output_text.delta`*,
`response.output_text.done`, `response.content_part.done`; for a function call
`response.function_call_arguments.delta`*, `response.function_call_arguments.done`; then
`response.output_item.done`; at the end `response.completed` (or `response.incomplete`) with
the whole Response and its usage (the gateway always asks upstream for the usage chunk). A
failure after the first event ends the stream with `error` and `response.failed`.

Items are sequential, as OpenAI streams them: a new item closes the open one. Should an
upstream interleave fragments of two tool calls, the late fragment still goes out as a delta
of its (closed) item and the final Response carries the whole arguments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from gatewise.server.responses.inbound import (
    FormatJSONObject,
    FormatJSONSchema,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    MessageItem,
    ParsedRequest,
    ToolChoiceFunction,
)
from gatewise.types.ids import unique_suffix
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk

_encode = msgspec.json.Encoder().encode
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{unique_suffix()}"


def envelope(parsed: ParsedRequest, response_id: str, created_at: int) -> dict[str, Any]:
    """Everything of a Response but its status, output and usage: the request's settings."""
    r = parsed.body
    fmt: dict[str, Any] = {"type": "text"}
    f = r.text.format if r.text is not None else None
    if isinstance(f, FormatJSONSchema):
        fmt = {"type": "json_schema", "name": f.name, "schema": f.schema,
               "strict": bool(f.strict)}
        if f.description is not None:
            fmt["description"] = f.description
    elif isinstance(f, FormatJSONObject):
        fmt = {"type": "json_object"}
    text: dict[str, Any] = {"format": fmt}
    if r.text is not None and r.text.verbosity is not None:
        text["verbosity"] = r.text.verbosity
    choice: Any = r.tool_choice or "auto"
    if isinstance(choice, ToolChoiceFunction):
        choice = {"type": "function", "name": choice.name}
    tools = [{"type": "function", "name": t.name, "description": t.description,
              "parameters": t.parameters, "strict": t.strict if t.strict is not None else True}
             for t in r.tools or ()]
    reasoning = ({"effort": r.reasoning.effort, "summary": r.reasoning.summary}
                 if r.reasoning is not None else None)
    return {
        "id": response_id, "object": "response", "created_at": created_at,
        "status": "in_progress", "error": None, "incomplete_details": None,
        "instructions": r.instructions, "max_output_tokens": r.max_output_tokens,
        "model": r.model, "output": [], "parallel_tool_calls":
            r.parallel_tool_calls if r.parallel_tool_calls is not None else True,
        "previous_response_id": r.previous_response_id, "reasoning": reasoning,
        "store": r.store, "temperature": r.temperature, "text": text, "tool_choice": choice,
        "tools": tools, "top_p": r.top_p, "truncation": r.truncation or "disabled",
        "usage": None, "user": r.user, "metadata": dict(r.metadata or {}),
    }


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    """Chat usage in the Responses spelling; gatewise's `cost_usd` kept beside it."""
    if usage is None:
        return None
    p, c = usage.prompt_tokens_details, usage.completion_tokens_details
    out: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": p.cached_tokens if p else 0,
                                 "cache_write_tokens": p.cache_creation_tokens if p else 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": c.reasoning_tokens if c else 0},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if not isinstance(usage.cost_usd, msgspec.UnsetType):
        out["cost_usd"] = usage.cost_usd
    return out


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, refusal: str | None, status: str) -> dict[str, Any]:
    content = [_text_part(text)] if text or not refusal else []
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": content}


def _call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {"id": new_id("fc"), "type": "function_call", "status": status,
            "call_id": call_id, "name": name, "arguments": arguments}


def finish(base: dict[str, Any], output: list[dict[str, Any]], finish_reason: str | None,
           usage: Usage | None) -> dict[str, Any]:
    """The finished Response: `base` (an `envelope`) with output, status and usage."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return {**base, "status": "incomplete" if reason else "completed",
            "incomplete_details": {"reason": reason} if reason else None,
            "completed_at": int(time.time()), "output": output, "usage": usage_body(usage)}


def response_from_completion(base: dict[str, Any], result: ChatCompletion) -> dict[str, Any]:
    """A whole chat answer as a Response."""
    output: list[dict[str, Any]] = []
    finish_reason: str | None = "stop"
    if result.choices:
        choice = result.choices[0]
        msg = choice.message
        text = msg.content if isinstance(msg.content, str) else ""
        if text or msg.refusal or not msg.tool_calls:
            output.append(_message_item(new_id("msg"), text, msg.refusal, "completed"))
        for call in msg.tool_calls or ():
            output.append(_call_item(call.id, call.function.name, call.function.arguments,
                                     "completed"))
        finish_reason = choice.finish_reason
    out = finish(base, output, finish_reason, result.usage)
    if result.model:
        out["model"] = result.model
    return out


def thread_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A Response's output as the assistant message a continuation sends upstream (chat's
    spelling, as conversation memory stores it: no null fields)."""
    text = "".join(p["text"] for item in output if item["type"] == "message"
                   for p in item["content"] if p["type"] == "output_text")
    refusal = "".join(p["refusal"] for item in output if item["type"] == "message"
                      for p in item["content"] if p["type"] == "refusal")
    calls = [{"id": item["call_id"], "type": "function",
              "function": {"name": item["name"], "arguments": item["arguments"]}}
             for item in output if item["type"] == "function_call"]
    msg: dict[str, Any] = {"role": "assistant"}
    if text or not calls:
        msg["content"] = text
    if calls:
        msg["tool_calls"] = calls
    if refusal:
        msg["refusal"] = refusal
    return msg


def input_items(inp: str | list[InputItem]) -> list[dict[str, Any]]:
    """The request's input as the items `GET /v1/responses/{id}/input_items` lists (each
    with an id and a status, as OpenAI lists them)."""
    if isinstance(inp, str):
        return [{"id": new_id("msg"), "type": "message", "role": "user", "status": "completed",
                 "content": [{"type": "input_text", "text": inp}]}]
    out: list[dict[str, Any]] = []
    for item in inp:
        data = msgspec.to_builtins(item)
        data.setdefault("status", "completed")
        if isinstance(item, MessageItem):
            prefix = "msg"
            if isinstance(item.content, str):
                kind = "output_text" if item.role == "assistant" else "input_text"
                data["content"] = [{"type": kind, "text": item.content}]
        else:
            prefix = "fc" if isinstance(item, FunctionCallItem) else "fco"
            assert isinstance(item, FunctionCallItem | FunctionCallOutputItem)
        if not data.get("id"):
            data["id"] = new_id(prefix)
        out.append(data)
    return out


def sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + _encode(event) + b"\n\n"


@dataclass(slots=True)
class _Item:
    index: int  # output_index
    data: dict[str, Any]  # the item as `output` will list it
    text: list[str] = field(default_factory=list)  # a message's text, or a call's arguments
    refusal: list[str] = field(default_factory=list)
    done: bool = False


@dataclass(slots=True)
class StreamTranslator:
    """Canonical chunks in, Responses SSE frames out; one per streamed response."""

    base: dict[str, Any]
    seq: int = 0
    started: bool = False
    items: list[_Item] = field(default_factory=list)
    current: _Item | None = None
    tools: dict[int, _Item] = field(default_factory=dict)  # chat tool index → its item
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str = ""
    final: dict[str, Any] | None = None

    def _event(self, kind: str, **data: Any) -> bytes:
        out = sse({"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1
        return out

    def start(self) -> bytes:
        self.started = True
        return (self._event("response.created", response=self.base)
                + self._event("response.in_progress", response=self.base))

    def feed(self, chunk: ChatCompletionChunk) -> bytes:
        out: list[bytes] = []
        if not self.started:
            out.append(self.start())
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.model:
            self.model = chunk.model
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta.content or delta.refusal:
                item = self.current
                if item is None or item.data["type"] != "message":
                    item = self._open_message(out)
                if delta.content:
                    item.text.append(delta.content)
                    out.append(self._event("response.output_text.delta",
                                           item_id=item.data["id"], output_index=item.index,
                                           content_index=0, delta=delta.content, logprobs=[]))
                if delta.refusal:
                    item.refusal.append(delta.refusal)
            for call in delta.tool_calls or ():
                fn = call.function
                item = self.tools.get(call.index)
                if item is None:
                    item = self._open(out, {
                        "id": new_id("fc"), "type": "function_call", "status": "in_progress",
                        "call_id": call.id or new_id("call"),
                        "name": (fn.name if fn else None) or "", "arguments": ""})
                    self.tools[call.index] = item
                if fn is not None and fn.arguments:
                    item.text.append(fn.arguments)
                    out.append(self._event("response.function_call_arguments.delta",
                                           item_id=item.data["id"], output_index=item.index,
                                           delta=fn.arguments))
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return b"".join(out)

    def end(self) -> bytes:
        """Closes the open item; `response.completed` (or `.incomplete`) with the Response,
        which is kept as `final` (for the store)."""
        out = [] if self.started else [self.start()]
        if not self.items:  # an empty answer is still a message, as a whole answer is
            self._open_message(out)
        out.append(self._close())
        output = [self._finished(item) for item in self.items]
        final = finish(self.base, output, self.finish_reason, self.usage)
        if self.model:
            final["model"] = self.model
        self.final = final
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=final))
        return b"".join(out)

    def fail(self, error: dict[str, Any]) -> bytes:
        """`error` (OpenAI's error object) then `response.failed`: the stream's last events."""
        out = [] if self.started else [self.start()]
        code = error.get("code") or "server_error"
        message = str(error.get("message") or "The response failed")
        out.append(self._event("error", code=code, message=message, param=error.get("param")))
        failed = {**self.base, "status": "failed", "output": [self._finished(i) for i in self.items],
                  "error": {"code": "rate_limit_exceeded" if code in {"rate_limit_exceeded",
                            "rate_limited"} else "server_error", "message": message}}
        out.append(self._event("response.failed", response=failed))
        return b"".join(out)

    def _finished(self, item: _Item) -> dict[str, Any]:
        data = dict(item.data, status="completed")
        if data["type"] == "message":
            return _message_item(data["id"], "".join(item.text),
                                 "".join(item.refusal) or None, "completed")
        data["arguments"] = "".join(item.text)
        return data

    def _open_message(self, out: list[bytes]) -> _Item:
        item = self._open(out, {"id": new_id("msg"), "type": "message", "status": "in_progress",
                                "role": "assistant", "content": []})
        out.append(self._event("response.content_part.added", item_id=item.data["id"],
                               output_index=item.index, content_index=0,
                               part=_text_part("")))
        return item

    def _open(self, out: list[bytes], data: dict[str, Any]) -> _Item:
        out.append(self._close())
        item = _Item(len(self.items), data)
        self.items.append(item)
        self.current = item
        out.append(self._event("response.output_item.added", output_index=item.index,
                               item=data))
        return item

    def _close(self) -> bytes:
        item = self.current
        if item is None or item.done:
            return b""
        item.done = True
        self.current = None
        out: list[bytes] = []
        item_id = item.data["id"]
        text = "".join(item.text)
        if item.data["type"] == "message":
            out.append(self._event("response.output_text.done", item_id=item_id,
                                   output_index=item.index, content_index=0, text=text,
                                   logprobs=[]))
            out.append(self._event("response.content_part.done", item_id=item_id,
                                   output_index=item.index, content_index=0,
                                   part=_text_part(text)))
        else:
            out.append(self._event("response.function_call_arguments.done", item_id=item_id,
                                   output_index=item.index, name=item.data["name"],
                                   arguments=text))
        out.append(self._event("response.output_item.done", output_index=item.index,
                               item=self._finished(item)))
        return b"".join(out)
