"""`ToolGuardMiddleware`: the model sees only registered, permitted tools, and every tool call
it makes is validated before anyone can act on it.

On the way in, `request.tools` is replaced by the registry's own definitions of the tools the
caller asked for and may use (a caller cannot loosen a registered schema); a caller-supplied
tool the registry does not know is dropped or rejected (`unknown_request_tools`). On the way
out, every tool call is validated; an invalid answer gets one repair round (the bad call and
the precise errors go back to the model, which is asked again) and is otherwise rejected with
`ToolCallRejected` naming the tool and the problem. Nothing is ever executed here.

String arguments go to the injection detector (`inspect_text`) only when they are prose:
several words of letters and spaces. Identifiers (`NOT_IN_ENUM`, `order_id`, `fetchUser`, a
UUID, a date, a number, a short code) are what tool arguments mostly are, carry no
instruction, and a classifier trained on sentences has nothing sound to say about them.

Streams: tool-call deltas are held back (text passes through) until the finish chunk, then
validated and released together, or the stream fails with `ToolCallRejected`. A stream has
no repair round: its text may already be with the client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from gatewise.errors import ToolCallRejected
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.stream import ChunkStream
from gatewise.security.events import SecurityEventSink
from gatewise.tools.registry import ToolRegistry
from gatewise.tools.validate import (
    InspectText,
    ToolCallProblem,
    describe,
    validate_tool_calls,
)
from gatewise.types.messages import AssistantMessage, FunctionCall, Message, ToolCall, ToolMessage
from gatewise.types.requests import ChatRequest, NamedToolChoice
from gatewise.types.responses import ChatCompletion, Usage
from gatewise.types.stream import ChatCompletionChunk, ChunkChoice, Delta

UnknownPolicy = Literal["drop", "reject"]

REPAIR_NOTE = ("Your tool call was rejected and not executed: {errors}. "
               "Call the tool again with arguments that match its JSON schema exactly, "
               "or answer without a tool.")


# A word of prose: letters (an inner apostrophe or hyphen allowed), then closing punctuation.
_PROSE_WORD_RE = re.compile("[\"'(\\[]*[^\\W\\d_]+(?:['\u2019\\-][^\\W\\d_]+)*[.,;:!?\"')\\]]*")
_MIN_PROSE_WORDS = 3


def is_prose(text: str) -> bool:
    """Natural-language text: at least three whitespace-separated words made of letters, most
    of the tokens words, most of the characters letters and spaces. `NOT_IN_ENUM`,
    `customer-42`, `getUserById`, `2024-05-01`, `GB-LON`, `en-US fr-FR` and `42.5` are not."""
    tokens = text.split()
    if len(tokens) < _MIN_PROSE_WORDS:
        return False
    words = sum(1 for t in tokens if _PROSE_WORD_RE.fullmatch(t) and not _mixed_case(t))
    if words < _MIN_PROSE_WORDS or words * 2 < len(tokens):
        return False
    letters = sum(1 for ch in text if ch.isalpha() or ch.isspace())
    return letters >= 0.6 * len(text)


def _mixed_case(token: str) -> bool:
    """`fr-FR`, `getUser`, `iPhone`: upper and lower case after the first letter (code)."""
    rest = token[1:]
    return any(c.isupper() for c in rest) and any(c.islower() for c in rest)


def prose_only(inspect: InspectText) -> InspectText:
    """`inspect`, asked only about prose (`is_prose`); identifiers are never flagged."""
    def inspect_prose(text: str) -> bool:
        return is_prose(text) and inspect(text)

    return inspect_prose


class ToolGuardMiddleware:
    def __init__(self, registry: ToolRegistry, *, repair: bool = True,
                 events: SecurityEventSink | None = None, inspect_text: InspectText | None = None,
                 unknown_request_tools: UnknownPolicy = "drop", offer_all: bool = False) -> None:
        """`offer_all`: a request without tools is given every tool the caller may use."""
        self.registry = registry
        self.repair = repair
        self.events = events
        self.inspect_text = prose_only(inspect_text) if inspect_text is not None else None
        self.unknown_request_tools = unknown_request_tools
        self.offer_all = offer_all

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.kind != "chat":
            return await next(call)
        original = call.chat_request
        req = self._filter_tools(call, original)
        if req is not original:
            call.request = req
        result = await next(call)
        if isinstance(result, ChunkStream):
            result.add_transform(ToolCallStreamCheck(self, call))
            return result
        if not isinstance(result, ChatCompletion):
            return result
        problems = self._check(call, result)
        if not problems:
            return result
        if not self.repair:
            raise self._reject(call, problems, repaired=False)
        self._emit(call, problems, "retry")
        call.event("tool_call_repair", problems=len(problems))
        first_usage = result.usage
        call.request = _repair_request(req, result, problems)
        try:
            second = await next(call)
        finally:
            call.request = req
        assert isinstance(second, ChatCompletion)
        second.usage = _add_usage(first_usage, second.usage)
        if second.usage is not None:
            call.usage = second.usage
        again = self._check(call, second)
        if again:
            raise self._reject(call, again, repaired=True)
        return second

    # -- the way in ---------------------------------------------------------------------------
    def _filter_tools(self, call: Call, req: ChatRequest) -> ChatRequest:
        identity = call.identity
        if not req.tools:
            if self.offer_all and req.tool_choice != "none":
                offered = self.registry.tools_for(identity)
                return msgspec.structs.replace(req, tools=offered or None)
            return req
        kept = []
        dropped: list[str] = []
        for t in req.tools:
            reg = self.registry.get(t.function.name)
            if reg is None or not reg.permitted(identity):
                dropped.append(t.function.name)
                if reg is None and self.unknown_request_tools == "reject":
                    self._emit_kind(call, "block", "unknown_request_tool", t.function.name)
                    raise ToolCallRejected(
                        f"tool {t.function.name} is not registered with this gateway",
                        param="tools")
                continue
            kept.append(reg.tool)
        if dropped:
            call.event("tools_dropped", count=len(dropped))
            for name in dropped:
                self._emit_kind(call, "flag", "request_tool_dropped", name)
        choice = req.tool_choice
        names = {t.function.name for t in kept}
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ToolCallRejected(f"tool_choice names {choice.function.name}, which is not "
                                   "available to this caller", param="tool_choice")
        if choice == "required" and not kept:
            raise ToolCallRejected("tool_choice is 'required' but no requested tool is available "
                                   "to this caller", param="tool_choice")
        return msgspec.structs.replace(req, tools=kept or None,
                                       tool_choice=choice if kept else None,
                                       parallel_tool_calls=req.parallel_tool_calls if kept else None)

    # -- the way out --------------------------------------------------------------------------
    def _check(self, call: Call, result: ChatCompletion) -> list[ToolCallProblem]:
        problems: list[ToolCallProblem] = []
        for choice in result.choices:
            calls = choice.message.tool_calls
            if calls:
                problems.extend(self.problems_in(call, calls))
        return problems

    def problems_in(self, call: Call, calls: Sequence[ToolCall]) -> list[ToolCallProblem]:
        _, bad = validate_tool_calls(calls, self.registry, call.identity,
                                     inspect_text=self.inspect_text)
        return bad

    def _reject(self, call: Call, problems: list[ToolCallProblem], *,
                repaired: bool) -> ToolCallRejected:
        self._emit(call, problems, "block")
        call.event("tool_call_rejected", problems=len(problems))
        after = " (after one repair attempt)" if repaired else ""
        return ToolCallRejected(f"the model's tool call was rejected{after}: {describe(problems)}")

    def _emit(self, call: Call, problems: list[ToolCallProblem], action: str) -> None:
        if self.events is None:
            return
        kinds = sorted({p.kind for p in problems})
        tools = sorted({p.tool for p in problems})
        self.events.emit("tool_call", action, request_id=call.request_id,
                         tenant=call.identity.tenant, key_id=call.identity.key_id,
                         detail={"tools": tools, "problems": kinds, "count": len(problems)})

    def _emit_kind(self, call: Call, action: str, problem: str, tool: str) -> None:
        if self.events is not None:
            self.events.emit("tool_call", action, request_id=call.request_id,
                             tenant=call.identity.tenant, key_id=call.identity.key_id,
                             detail={"tools": [tool], "problems": [problem], "count": 1})


class ToolCallStreamCheck:
    """Holds a stream's tool-call deltas until the finish chunk, then validates the assembled
    calls and releases them, or raises `ToolCallRejected`."""

    def __init__(self, guard: ToolGuardMiddleware, call: Call) -> None:
        self.guard = guard
        self.call = call
        self.held: list[ChatCompletionChunk] = []
        self.parts: dict[int, list[str]] = {}  # index → [id, name, arguments...]

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        if not chunk.choices:
            return [chunk]
        ch = chunk.choices[0]
        d = ch.delta
        out: list[ChatCompletionChunk] = []
        if d.tool_calls:
            for tc in d.tool_calls:
                p = self.parts.setdefault(tc.index, ["", "", ""])
                if tc.id:
                    p[0] = tc.id
                if tc.function is not None:
                    p[1] += tc.function.name or ""
                    p[2] += tc.function.arguments or ""
            if d.content or d.role or d.refusal:
                out.append(_with_delta(chunk, ch, Delta(role=d.role, content=d.content,
                                                        refusal=d.refusal)))
            self.held.append(_with_delta(chunk, ch, Delta(tool_calls=d.tool_calls), finish=None))
            if ch.finish_reason is None:
                return out
            return out + self._release(_with_delta(chunk, ch, Delta(), finish=ch.finish_reason))
        if ch.finish_reason is not None and self.held:
            return self._release(chunk)
        return [chunk]

    def finish(self) -> list[ChatCompletionChunk]:
        return self._release(None) if self.held else []

    def _release(self, last: ChatCompletionChunk | None) -> list[ChatCompletionChunk]:
        calls = [ToolCall(id=p[0] or f"call_{i}", type="function",
                          function=FunctionCall(name=p[1], arguments=p[2]))
                 for i, p in sorted(self.parts.items())]
        held, self.held, self.parts = self.held, [], {}
        problems = self.guard.problems_in(self.call, calls)
        if problems:
            raise self.guard._reject(self.call, problems, repaired=False)
        return held + ([last] if last is not None else [])


def _with_delta(chunk: ChatCompletionChunk, ch: ChunkChoice, delta: Delta, *,
                finish: str | Literal[False] | None = False) -> ChatCompletionChunk:
    fr = ch.finish_reason if finish is False else finish
    return msgspec.structs.replace(chunk, choices=[ChunkChoice(
        index=ch.index, delta=delta, finish_reason=fr, logprobs=ch.logprobs)])


def _repair_request(req: ChatRequest, result: ChatCompletion,
                    problems: list[ToolCallProblem]) -> ChatRequest:
    """The request again, plus the model's bad turn and one tool message per call saying what
    was wrong with it (OpenAI requires an answer to every tool call id)."""
    msg = result.choices[0].message
    calls = msg.tool_calls or []
    by_tool: dict[str, list[ToolCallProblem]] = {}
    for p in problems:
        by_tool.setdefault(p.tool, []).append(p)
    extra: list[Message] = [AssistantMessage(content=msg.content, tool_calls=list(calls))]
    for c in calls:
        mine = by_tool.get(c.function.name)
        if mine:
            text = REPAIR_NOTE.format(errors=describe(mine))
        else:
            text = ("Not executed: another tool call in the same turn was invalid. "
                    "Call it again if it is still needed.")
        extra.append(ToolMessage(content=text, tool_call_id=c.id))
    return msgspec.structs.replace(req, messages=[*req.messages, *extra])


def _add_usage(a: Usage | None, b: Usage | None) -> Usage | None:
    """Both rounds were paid for, so the answer reports both."""
    if a is None or b is None:
        return b or a
    return Usage(prompt_tokens=a.prompt_tokens + b.prompt_tokens,
                 completion_tokens=a.completion_tokens + b.completion_tokens,
                 total_tokens=a.total_tokens + b.total_tokens,
                 prompt_tokens_details=b.prompt_tokens_details,
                 completion_tokens_details=b.completion_tokens_details)
