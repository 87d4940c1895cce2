"""`MemoryMiddleware`: a conversation id makes the gateway keep the conversation.

Once per call, inside the guardrails (so what it stores and prepends is the masked form when a
PII policy masks, and the answer it records is the model's, before unmasking):

1. the stored history (from where the summary ends) comes after the request's instructions
   and before the turn the client sent; a client that sends the history again anyway (the
   whole of it, or the assistant message its tool results answer) has that overlap dropped;
2. when the result outgrows the alias's context window, the oldest whole turns are
   summarised (the summary is stored and sent as one system message from then on);
3. after a successful answer the new turn and the answer are appended (for a stream: once it
   ended cleanly, before the caller sees its end). A call that fails stores nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from gatewise.errors import InvalidRequestError
from gatewise.memory.service import ConversationMemory
from gatewise.memory.summary import SUMMARY_PREFIX, turns_of
from gatewise.memory.turns import answer_of, from_dicts, is_instruction, message_of, to_dicts
from gatewise.pipeline.core import Call, Handler
from gatewise.pipeline.recorder import StreamRecorder
from gatewise.pipeline.stream import ChunkStream
from gatewise.storage.base import ConversationInfo
from gatewise.types.messages import AssistantMessage, Message, SystemMessage, ToolMessage
from gatewise.types.responses import ChatCompletion

log = logging.getLogger("gatewise.memory")


def _check_tool_results(history: list[Message], new: list[Message]) -> None:
    """The edge let a turn open with tool results for calls it could not see; they must
    answer calls the stored history (or the turn itself) made."""
    known: set[str] = set()
    for m in history:
        if isinstance(m, AssistantMessage) and m.tool_calls:
            known.update(c.id for c in m.tool_calls)
    for i, m in enumerate(new):
        if isinstance(m, AssistantMessage) and m.tool_calls:
            known.update(c.id for c in m.tool_calls)
        elif isinstance(m, ToolMessage) and m.tool_call_id not in known:
            raise InvalidRequestError(
                f"tool message answers tool_call_id '{m.tool_call_id}', which no earlier "
                "assistant message of the conversation called",
                param=f"messages[{i}].tool_call_id")


def _trim(summary: str, fits: Callable[[str], bool]) -> str:
    """The longest word prefix of a summary that still fits (a model may ignore its
    `max_tokens`, or a small window leave less room than asked for)."""
    words = summary.split()
    if fits(summary) or not words:
        return summary
    lo, hi = 0, len(words)  # words[:lo] fits (or lo == 0), words[:hi] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(" ".join(words[:mid])):
            lo = mid
        else:
            hi = mid
    return " ".join(words[:lo])


def _overlap(stored: list[dict[str, Any]], sent: list[dict[str, Any]]) -> int:
    """How many leading messages of `sent` repeat the end of `stored`."""
    for k in range(min(len(stored), len(sent)), 0, -1):
        if sent[:k] == stored[-k:]:
            return k
    return 0


class MemoryMiddleware:
    def __init__(self, memory: ConversationMemory) -> None:
        self.memory = memory

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): a call outside a conversation gets no
        # coroutine of this stage.
        conv = call.conversation
        if call.kind != "chat" or not conv:
            return next(call)
        return self._remembered(call, conv, next)

    async def _remembered(self, call: Call, conv: str, next: Handler) -> Any:
        memory = self.memory
        scope = call.identity.tenant
        req = call.chat_request
        info = await memory.store.info(scope, conv)
        stored = (await memory.store.history(scope, conv, start=info.summarised)
                  if info is not None else [])
        instructions = [m for m in req.messages if is_instruction(m)]
        sent = [m for m in req.messages if not is_instruction(m)]
        sent_dicts = to_dicts(sent)
        skip = _overlap(stored, sent_dicts)
        new, new_dicts = sent[skip:], sent_dicts[skip:]
        history = from_dicts(stored)
        _check_tool_results(history, new)
        summary = info.summary if info is not None else None
        history, summary = await self._fit(call, info, instructions, history, new, summary)
        head: list[Message] = list(instructions)
        if summary:
            head.append(SystemMessage(content=SUMMARY_PREFIX + summary))
        call.request = msgspec.structs.replace(req, messages=[*head, *history, *new])
        call.event("memory", conversation=conv, history=len(history), summary=bool(summary))
        result = await next(call)
        if isinstance(result, ChunkStream):
            recorder = StreamRecorder()
            result.add_transform(recorder)

            async def complete(c: Call) -> None:
                await self._append(c, scope, conv, new_dicts, message_of(recorder.message(0)))

            result.on_complete(complete)
        elif isinstance(result, ChatCompletion):
            await self._append(call, scope, conv, new_dicts, answer_of(result))
        return result

    async def _fit(self, call: Call, info: ConversationInfo | None, instructions: list[Message],
                   history: list[Message], new: list[Message],
                   summary: str | None) -> tuple[list[Message], str | None]:
        """Summarises the oldest whole turns until the prompt fits the alias's window."""
        memory = self.memory
        if info is None or not history or memory.summariser is None:
            return history, summary
        budget = memory.windows.budget(call.chat_request, call.alias)
        if budget is None:
            return history, summary

        def prompt(hist: list[Message], with_summary: str | None) -> list[Message]:
            head = list(instructions)
            if with_summary is not None:
                head.append(SystemMessage(content=SUMMARY_PREFIX + with_summary))
            return [*head, *hist, *new]

        if budget.fits(prompt(history, summary)):
            return history, summary
        # Room for a summary of at most `max_tokens` tokens (words are a safe upper bound
        # only for the placeholder's own size; the real one is checked below).
        room = "x " * memory.summariser.max_tokens
        turns = turns_of(history)
        dropped = 0
        while turns and not budget.fits(prompt([m for t in turns for m in t], room)):
            dropped += len(turns.pop(0))
        if not dropped and turns:
            return history, summary
        older, kept = history[:dropped], history[dropped:]
        try:
            new_summary = await memory.summariser.summarise(summary, older, call.identity)
        except Exception as exc:
            # The answer matters more than the summary: this turn goes without the older
            # turns (nothing is stored, so the next turn tries again), and says so.
            log.warning("summarising a conversation failed: %s", type(exc).__name__)
            call.event("memory_summary_failed", error=type(exc).__name__)
            return kept, summary
        new_summary = _trim(new_summary, lambda text: budget.fits(prompt(kept, text)))
        await memory.store.set_summary(call.identity.tenant, info.id, new_summary,
                                       info.summarised + dropped)
        call.event("memory_summary", summarised=dropped, window=budget.window)
        return kept, new_summary

    async def _append(self, call: Call, scope: str, conv: str, new: list[dict[str, Any]],
                      answer: dict[str, Any] | None) -> None:
        """Stores the turn; a store that fails is logged, not raised: the caller already
        has (or is reading) the answer."""
        turn = [*new, answer] if answer is not None else new
        if not turn:
            return
        try:
            await self.memory.append(scope, conv, turn)
        except Exception as exc:
            log.warning("storing a conversation turn failed: %s", type(exc).__name__)
            call.event("memory_store_failed", error=type(exc).__name__)
