"""Context-window fitting: trim a conversation's history so the prompt plus the reply fit.

Only for callers that ask for it (silently dropping history changes what the model sees). The
rules, in order of what is never dropped:

1. System and developer messages: they carry the instructions.
2. The last user message, and the last assistant tool-call round after it (the assistant
   message with `tool_calls` and its tool results): the model is about to answer them.
3. Everything else goes oldest first. History before the last user message goes a whole turn
   at a time (a user message with the replies and tool rounds that follow it), so what remains
   still starts with a user message, as Anthropic and Gemini require; rounds of an agent loop
   after the last user message go one round at a time. An assistant message with `tool_calls`
   is never separated from its tool results: an orphaned `tool` message is a 400 upstream.

When even (1) and (2) do not fit, the request is refused with OpenAI's
`context_length_exceeded` error naming `messages`.

`count` prices a whole message list (framing included), e.g.
`lambda ms: tokenizers.count_messages(msgspec.structs.replace(req, messages=ms), counter)`.
Planning assumes counts add up per message (true of OpenAI's framing); the result is then
checked with one more full count and trimmed further if a custom `count` is not additive.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from gatewise.accounting.usage import Prices, TokenCounting
from gatewise.errors import InvalidRequestError
from gatewise.pipeline.core import Call, Handler
from gatewise.types.messages import (
    DeveloperMessage,
    Message,
    SystemMessage,
    ToolMessage,
    UserMessage,
)

Unit = list[int]  # indexes into the original message list, kept or dropped together


def _rounds(indexes: list[int], messages: list[Message]) -> list[Unit]:
    """Groups consecutive messages: an assistant message with tool calls takes the tool
    messages that follow it; any other message stands alone (a stray tool message joins the
    unit before it, so it never outlives its call)."""
    units: list[Unit] = []
    for i in indexes:
        m = messages[i]
        if isinstance(m, ToolMessage) and units:
            units[-1].append(i)
        else:
            units.append([i])
    return units


def _turns(indexes: list[int], messages: list[Message]) -> list[Unit]:
    """Splits at each user message: one turn = a user message and what follows it."""
    turns: list[Unit] = []
    for i in indexes:
        if isinstance(messages[i], UserMessage) or not turns:
            turns.append([i])
        else:
            turns[-1].append(i)
    return turns


def fit_messages(messages: list[Message], count: Callable[[list[Message]], int],
                 context_window: int, reserve_output: int) -> list[Message]:
    """The longest suffix of the history (plus every system/developer message) whose prompt
    fits in `context_window - reserve_output` tokens; `messages` itself is not modified."""
    budget = context_window - reserve_output
    if count(messages) <= budget:
        return list(messages)

    pinned = [i for i, m in enumerate(messages) if isinstance(m, SystemMessage | DeveloperMessage)]
    rest = [i for i, m in enumerate(messages) if not isinstance(m, SystemMessage | DeveloperMessage)]
    last_user = max((i for i in rest if isinstance(messages[i], UserMessage)), default=-1)
    before = [i for i in rest if i < last_user]
    after = [i for i in rest if i > last_user]
    after_units = _rounds(after, messages)
    required = set(pinned)
    if last_user >= 0:
        required.add(last_user)
    if after_units:
        required.update(after_units[-1])
        after_units = after_units[:-1]
    droppable = _turns(before, messages) + after_units  # oldest first

    def subset(keep: set[int]) -> list[Message]:
        return [m for i, m in enumerate(messages) if i in keep]

    base = count([])
    keep = set(range(len(messages)))
    total = count(messages)
    dropped: list[Unit] = []
    for unit in droppable:
        if total <= budget:
            break
        total -= count(subset(set(unit))) - base
        keep.difference_update(unit)
        dropped.append(unit)
    # Check the plan with real counts: a `count` that is not additive may need more dropped,
    # or may have room to take the newest dropped units back.
    remaining = [u for u in droppable if keep.issuperset(u)]
    fitted = subset(keep)
    while count(fitted) > budget and remaining:
        unit = remaining.pop(0)
        keep.difference_update(unit)
        dropped.append(unit)
        fitted = subset(keep)
    while dropped and count(fitted) <= budget:
        candidate = keep.union(dropped[-1])
        trial = subset(candidate)
        if count(trial) > budget:
            break
        keep, fitted = candidate, trial
        dropped.pop()
    if count(fitted) > budget:
        minimum = count(subset(required))
        raise InvalidRequestError(
            f"the conversation does not fit the model's context window: its system messages and "
            f"last user turn alone take {minimum} tokens, and {context_window} - {reserve_output} "
            f"reserved for the reply = {budget} are available",
            param="messages", code="context_length_exceeded")
    return fitted



class ContextFitMiddleware:
    """Per attempt (the deployment decides the window and the tokenizer): trims the history of
    a call that asked for it (`call.fit_context`: the library's `fit_context=True`, the header
    `x-gatewise-fit-context: true`, or `metadata.fit_context: "true"`), reserving the
    request's `max_tokens` (else `default_reserve`) for the answer. The window is the price
    table's `context_window` for the model, or `fallback_window` when the table has none.
    Calls that did not ask pay one attribute check."""

    def __init__(self, prices: Prices, tokenizers: TokenCounting, *,
                 default_reserve: int = 1024, fallback_window: int | None = None) -> None:
        self.prices = prices
        self.tokenizers = tokenizers
        self.default_reserve = default_reserve
        self.fallback_window = fallback_window

    def __call__(self, call: Call, next: Handler) -> Coroutine[Any, Any, Any]:
        # A plain `def` (`pipeline.core.Middleware`): a call that did not ask gets no
        # coroutine of this stage.
        if not call.fit_context or call.kind != "chat" or call.deployment is None:
            return next(call)
        return self._fit(call, next)

    async def _fit(self, call: Call, next: Handler) -> Any:
        dep = call.deployment
        assert dep is not None
        price = self.prices.for_deployment(dep)
        window = (price.context_window if price is not None else None) or self.fallback_window
        if window is None:
            return await next(call)
        req = call.chat_request
        reserve = req.max_completion_tokens or req.max_tokens or self.default_reserve
        target = dep.target

        def count(ms: list[Message]) -> int:
            return self.tokenizers.count_request(msgspec.structs.replace(req, messages=ms),
                                                 target)

        fitted = fit_messages(list(req.messages), count, window, reserve)
        if len(fitted) == len(req.messages):
            return await next(call)
        original = call.request
        call.request = msgspec.structs.replace(req, messages=fitted)
        call.event("context_fit", dropped=len(req.messages) - len(fitted), window=window)
        try:
            return await next(call)
        finally:
            call.request = original
