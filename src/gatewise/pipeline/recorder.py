"""`StreamRecorder`: a stream transform that passes every chunk on unchanged and keeps what
the whole answer needs, for stages that act once a stream has ended (the cache stores the
completion; conversation memory keeps the assistant turn). Copied as each chunk passes,
because later transforms may rewrite the chunks."""

from __future__ import annotations

import msgspec

from gatewise.pipeline.core import Call
from gatewise.types.messages import FunctionCall, ToolCall
from gatewise.types.responses import ChatCompletion, Choice, ResponseMessage
from gatewise.types.stream import ChatCompletionChunk


class _Tool:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class _Choice:
    __slots__ = ("content", "finish", "refusal", "stop_sequence", "tools")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, _Tool] = {}
        self.finish: str | None = None
        self.stop_sequence: str | msgspec.UnsetType = msgspec.UNSET


class StreamRecorder:
    """A pass-through stream transform that keeps what a completion needs, copied as each
    chunk passes (later transforms may rewrite the chunks)."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.fingerprint: str | None = None
        self.choices: dict[int, _Choice] = {}

    def apply(self, chunk: ChatCompletionChunk) -> list[ChatCompletionChunk]:
        if not self.id:
            self.id, self.model, self.created = chunk.id, chunk.model, chunk.created
            self.fingerprint = chunk.system_fingerprint
        for ch in chunk.choices:
            rec = self.choices.get(ch.index)
            if rec is None:
                rec = self.choices[ch.index] = _Choice()
            d = ch.delta
            if d.content:
                rec.content.append(d.content)
            if d.refusal:
                rec.refusal.append(d.refusal)
            for tc in d.tool_calls or ():
                t = rec.tools.get(tc.index)
                if t is None:
                    t = rec.tools[tc.index] = _Tool()
                if tc.id:
                    t.id = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        t.name += tc.function.name
                    if tc.function.arguments:
                        t.arguments.append(tc.function.arguments)
            if ch.finish_reason:
                rec.finish = ch.finish_reason
                rec.stop_sequence = ch.stop_sequence
        return [chunk]

    def finish(self) -> list[ChatCompletionChunk]:
        return []

    def message(self, index: int = 0) -> ResponseMessage | None:
        """One choice's message as far as it has come (finished or not): text and refusal
        are None when none arrived; None when the choice never appeared."""
        c = self.choices.get(index)
        if c is None:
            return None
        return ResponseMessage(content="".join(c.content) if c.content else None,
                               refusal="".join(c.refusal) if c.refusal else None,
                               tool_calls=_tool_calls(c))

    def completion(self, call: Call) -> ChatCompletion | None:
        """The whole answer, or None when a choice never finished."""
        if not self.choices or any(c.finish is None for c in self.choices.values()):
            return None
        choices = []
        for index in sorted(self.choices):
            c = self.choices[index]
            tools = _tool_calls(c)
            msg = ResponseMessage(content="".join(c.content) if c.content or not tools else None,
                                  refusal="".join(c.refusal) if c.refusal else None,
                                  tool_calls=tools)
            choices.append(Choice(index=index, message=msg, finish_reason=c.finish,
                                  stop_sequence=c.stop_sequence))
        usage = call.usage
        if usage is not None:
            usage = msgspec.structs.replace(usage, cost_usd=msgspec.UNSET)
        return ChatCompletion(id=self.id, created=self.created, model=self.model,
                              choices=choices, usage=usage, system_fingerprint=self.fingerprint)


def _tool_calls(c: _Choice) -> list[ToolCall] | None:
    return [ToolCall(id=t.id, type="function",
                     function=FunctionCall(name=t.name, arguments="".join(t.arguments)))
            for _, t in sorted(c.tools.items())] or None
