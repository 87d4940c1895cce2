"""A template rendered for one request, kept in parts so each deployment can get its format.

`render_parts` fills the template's text with the request's variables (sandboxed, see
`engine`); `RenderedPrompt.messages(fmt)` lays the parts out for a model format:

```
system:     role framing ("You are …")
            the template's system text
            instructions            ## Instructions      | <instructions>…</instructions>
            output format           ## Output format     | <output_format>…</output_format>
            examples (inline style) ## Examples          | <examples><example>…
user/assistant pairs: the examples (messages style)
the template's user/assistant turns
the request's own messages
```

Structured output is a template feature: a declared `response_format` adds the output-format
block (the schema spelled out, for models that do not enforce one) and becomes the request's
`response_format` unless the request sets its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gatewise.config.schema import PromptTemplateConfig
from gatewise.errors import InvalidRequestError
from gatewise.prompts.engine import TemplateEngine
from gatewise.prompts.fewshot import Example
from gatewise.prompts.formats import ModelFormat
from gatewise.types.messages import AssistantMessage, Message, SystemMessage, UserMessage
from gatewise.types.requests import ResponseFormat
from gatewise.types.validation import chat_request_from_dict

_TITLES = {"instructions": "Instructions", "output_format": "Output format",
           "examples": "Examples"}


@dataclass(slots=True)
class RenderedPrompt:
    name: str
    version: int
    role: str | None = None
    system: list[str] = field(default_factory=list)
    instructions: str | None = None
    output_format: str | None = None
    turns: list[Message] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    response_format: ResponseFormat | None = None

    def messages(self, fmt: ModelFormat, request: Sequence[Message]) -> list[Message]:
        """The whole message list for a deployment of format `fmt`."""
        return [*self.prefix(fmt), *request]

    def prefix(self, fmt: ModelFormat) -> list[Message]:
        """The template's messages (everything before the request's own) in format `fmt`."""
        blocks: list[tuple[str | None, str]] = []
        if self.role:
            blocks.append((None, self.role))
        blocks += [(None, s) for s in self.system if s.strip()]
        if self.instructions:
            blocks.append(("instructions", self.instructions))
        if self.output_format:
            blocks.append(("output_format", self.output_format))
        if self.examples and fmt.examples == "inline":
            blocks.append(("examples", _inline_examples(self.examples, fmt)))
        out: list[Message] = []
        if blocks:
            out.append(SystemMessage(content="\n\n".join(_block(t, text, fmt) for t, text in blocks)))
        if fmt.examples == "messages":
            for ex in self.examples:
                out += [UserMessage(content=ex.input), AssistantMessage(content=ex.output)]
        return [*out, *self.turns]


def _block(tag: str | None, text: str, fmt: ModelFormat) -> str:
    if tag is None:
        return text
    if fmt.sections == "xml":
        return f"<{tag}>\n{text}\n</{tag}>"
    return f"## {_TITLES[tag]}\n{text}"


def _inline_examples(examples: Sequence[Example], fmt: ModelFormat) -> str:
    if fmt.sections == "xml":
        return "\n".join(f"<example>\n<input>{e.input}</input>\n<output>{e.output}</output>\n"
                         "</example>" for e in examples)
    return "\n\n".join(f"Input: {e.input}\nOutput: {e.output}" for e in examples)


def role_framing(text: str) -> str:
    """`a careful banking assistant` → `You are a careful banking assistant.`; a role already
    written as a sentence ("You are …", "Act as …") is kept as written."""
    text = text.strip()
    if not text or text.lower().startswith(("you ", "you're", "act as", "as ")):
        return text
    return f"You are {text.rstrip('.')}."


def output_format_text(spec: dict[str, Any]) -> str | None:
    kind = spec.get("type")
    if kind == "json_object":
        return "Respond with a single JSON object and nothing else."
    if kind == "json_schema":
        schema = (spec.get("json_schema") or {}).get("schema") or {}
        return ("Respond with a single JSON object that matches this JSON Schema, and nothing "
                "else:\n" + json.dumps(schema, indent=2, sort_keys=True))
    return None


def response_format_of(spec: dict[str, Any] | None, *, where: str) -> ResponseFormat | None:
    """The template's `response_format` as the request type, checked by the same rules as a
    request's own (its JSON schema's depth and keywords included), when the template is
    loaded or stored: it ends up in requests, so a bad one must never get that far."""
    if spec is None:
        return None
    try:
        req = chat_request_from_dict({"model": "-", "response_format": spec,
                                      "messages": [{"role": "user", "content": "-"}]})
    except InvalidRequestError as exc:
        raise InvalidRequestError(exc.message, param=exc.param or where) from None
    return req.response_format


def render_parts(engine: TemplateEngine, name: str, version: int, t: PromptTemplateConfig,
                 variables: dict[str, Any]) -> RenderedPrompt:
    def render(where: str, source: str) -> str:
        return engine.render(source, variables, where=f"prompt {name}@{version} {where}")

    out = RenderedPrompt(name, version)
    if t.role:
        out.role = role_framing(render("role", t.role))
    if t.instructions:
        out.instructions = render("instructions", t.instructions).strip() or None
    for i, m in enumerate(t.messages):
        text = render(f"messages[{i}].content", m.content)
        if m.role in ("system", "developer"):
            out.system.append(text)
        elif m.role == "user":
            out.turns.append(UserMessage(content=text))
        else:
            out.turns.append(AssistantMessage(content=text))
    if t.response_format is not None:
        out.output_format = output_format_text(t.response_format)
        out.response_format = response_format_of(t.response_format, where="response_format")
    return out
