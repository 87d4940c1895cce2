"""Summarising the oldest turns of a conversation that outgrew its context window.

A summary replaces whole turns (a user message and every reply and tool round after it), so
a tool call is never separated from its result. It folds the previous summary in, so one
summary message always stands for everything before the turns still sent verbatim. The
summary is asked of a model through the `Runner` (the whole chain: accounting, guards),
as the gateway's own work: an identity of the caller's team without model restrictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gatewise.pipeline.core import Identity
from gatewise.pipeline.runner import Runner
from gatewise.types.messages import Message, UserMessage, text_of

INSTRUCTION = ("You summarise conversations. Write a short factual summary of the conversation "
               "below: who the user is, what they asked, what was decided or done, and any "
               "names, numbers and facts that later answers need. Plain sentences, no preamble.")
SUMMARY_PREFIX = "Summary of the earlier conversation: "


def turns_of(messages: Sequence[Message]) -> list[list[Message]]:
    """Splits at user messages: a turn is a user message and everything until the next one
    (assistant answers, tool calls and their results)."""
    turns: list[list[Message]] = []
    for m in messages:
        if isinstance(m, UserMessage) or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


def render(previous: str | None, messages: Sequence[Message]) -> str:
    lines = [f"Earlier summary: {previous}"] if previous else []
    for m in messages:
        content: Any = getattr(m, "content", None)
        text = text_of(content) if content is not None else ""
        calls = getattr(m, "tool_calls", None) or []
        for tc in calls:
            text += f" [calls {tc.function.name}({tc.function.arguments})]"
        lines.append(f"{m.__struct_config__.tag}: {text.strip()}")
    return "\n".join(lines)


class Summariser:
    def __init__(self, runner: Runner, model: str, *, max_tokens: int) -> None:
        self.runner = runner
        self.model = model
        self.max_tokens = max_tokens

    async def summarise(self, previous: str | None, messages: Sequence[Message],
                        identity: Identity) -> str:
        worker = Identity(tenant=identity.tenant, team=identity.team, user=identity.user,
                          key_id=identity.key_id, role="admin", permissions=None)
        result = await self.runner.chat(
            model=self.model, identity=worker, max_tokens=self.max_tokens, temperature=0,
            messages=[{"role": "system", "content": INSTRUCTION},
                      {"role": "user", "content": render(previous, messages)}])
        return (result.content or "").strip() or (previous or "")
