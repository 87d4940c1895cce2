"""`PromptFormatMiddleware`, once per attempt: the deployment's format for that attempt only
(the call's request is restored afterwards, so the next attempt starts from the canonical
form), and a template's layout swapped only while the request still starts with it."""

from __future__ import annotations

from typing import Any

import msgspec

from gatewise.pipeline.core import Call
from gatewise.prompts.fewshot import Example
from gatewise.prompts.formats import DEFAULT, FormatTable
from gatewise.prompts.middleware import PromptFormatMiddleware
from gatewise.prompts.render import RenderedPrompt
from gatewise.providers.base import Target
from gatewise.providers.deployment import Deployment
from gatewise.types.messages import AssistantMessage, Message, SystemMessage, UserMessage
from gatewise.types.validation import chat_request_from_dict

RENDERED = RenderedPrompt("p", 1, role="You are a guide.", instructions="Be kind.",
                          examples=[Example("2+2", "4")])


def _call(provider: str, model: str, messages: list[Message]) -> Call:
    req = chat_request_from_dict({"model": "a", "messages": [{"role": "user", "content": "x"}]})
    call = Call("chat", msgspec.structs.replace(req, messages=messages))
    call.deployment = Deployment("a", f"a:{provider}/{model}", Target(provider, provider, model))
    call.prompt = RENDERED
    return call


async def _sent(call: Call) -> list[Message]:
    seen: list[list[Message]] = []

    async def provider(c: Call) -> Any:
        seen.append(list(c.chat_request.messages))
        return None

    original = call.request
    await PromptFormatMiddleware(FormatTable())(call, provider)
    assert call.request is original  # restored for the next attempt
    return seen[0]


async def test_claude_gets_xml_sections_with_the_examples_inline() -> None:
    msgs = [*RENDERED.prefix(DEFAULT), UserMessage(content="Hi")]
    sent = await _sent(_call("anthropic", "claude-sonnet-4-5", msgs))
    assert sent == [SystemMessage(content=(
        "You are a guide.\n\n<instructions>\nBe kind.\n</instructions>\n\n<examples>\n"
        "<example>\n<input>2+2</input>\n<output>4</output>\n</example>\n</examples>")),
        UserMessage(content="Hi")]


async def test_the_default_format_sends_the_request_as_it_is() -> None:
    msgs = [*RENDERED.prefix(DEFAULT), UserMessage(content="Hi")]
    call = _call("openai", "gpt-4o", msgs)
    assert await _sent(call) == msgs


async def test_history_in_front_of_the_template_keeps_its_layout_but_not_the_system_role() -> None:
    history: list[Message] = [UserMessage(content="earlier"), AssistantMessage(content="ok")]
    msgs = [*history, *RENDERED.prefix(DEFAULT), UserMessage(content="Hi")]
    sent = await _sent(_call("gemini", "gemma-3-4b-it", msgs))
    system = "You are a guide.\n\n## Instructions\nBe kind."
    assert sent[0] == UserMessage(content=f"{system}\n\nearlier")
    assert not any(isinstance(m, SystemMessage) for m in sent)
    assert sent[-1] == UserMessage(content="Hi")
