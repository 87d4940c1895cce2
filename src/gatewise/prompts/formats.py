"""Model-specific prompt formatting, as data: which models take no system role, which prefer
`developer`, which read structured instructions best as XML tags.

Applied per attempt (`PromptFormatMiddleware`), after the router has chosen a deployment, so
a fallback to another provider family gets that family's format, not the first one's. Rules
match `provider/model` with shell-style globs; the config's `prompts.formats` come before the
built-in table, and for each field the first matching rule that sets it wins (a config rule
that only says `sections: xml` keeps the built-in `system` handling).

- `system`: `system` keeps system messages; `developer` sends them as `developer` messages
  (OpenAI's reasoning models); `merge` folds them into the first user turn, for models whose
  chat template has no system role (Gemma; OpenAI's o1-mini and o1-preview refuse one).
- `sections`: how a template's parts (role, instructions, output format, inline examples)
  are marked in the system text: `markdown` headings, or `xml` tags (Anthropic's guidance).
- `examples`: few-shot examples as user/assistant `messages`, or `inline` in the system text.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gatewise.config.schema import ModelFormatConfig
from gatewise.types.messages import (
    DeveloperMessage,
    Message,
    SystemMessage,
    TextPart,
    UserMessage,
    text_of,
)

SystemStyle = Literal["system", "developer", "merge"]
SectionStyle = Literal["markdown", "xml"]
ExampleStyle = Literal["messages", "inline"]


@dataclass(frozen=True, slots=True)
class ModelFormat:
    system: SystemStyle = "system"
    sections: SectionStyle = "markdown"
    examples: ExampleStyle = "messages"


DEFAULT = ModelFormat()

# (glob over `provider/model`, lower case; system, sections, examples). None: not this rule's say.
BUILTIN: tuple[tuple[str, SystemStyle | None, SectionStyle | None, ExampleStyle | None], ...] = (
    ("*gemma*", "merge", None, None),             # Gemma's chat template has no system turn
    ("*/o1-mini*", "merge", None, None),          # no system or developer message at all
    ("*/o1-preview*", "merge", None, None),
    ("anthropic/*", None, "xml", "inline"),       # Claude: XML-tagged sections, examples inline
    ("litellm/anthropic/*", None, "xml", "inline"),
    ("*/claude-*", None, "xml", "inline"),        # Claude on Bedrock, Vertex, OpenRouter
)


class FormatTable:
    """The rules, and each `provider/model`'s resolved format (cached)."""

    def __init__(self, rules: Sequence[ModelFormatConfig] = ()) -> None:
        self._rules = [(r.match.lower(), r.system, r.sections, r.examples) for r in rules]
        self._rules += list(BUILTIN)
        self._cache: dict[str, ModelFormat] = {}

    def lookup(self, provider: str, model: str) -> ModelFormat:
        ref = f"{provider}/{model}".lower()
        found = self._cache.get(ref)
        if found is not None:
            return found
        system: SystemStyle | None = None
        sections: SectionStyle | None = None
        examples: ExampleStyle | None = None
        for pattern, sys_, sec, ex in self._rules:
            if fnmatch.fnmatchcase(ref, pattern):
                system = system or sys_
                sections = sections or sec
                examples = examples or ex
        fmt = ModelFormat(system or DEFAULT.system, sections or DEFAULT.sections,
                          examples or DEFAULT.examples)
        if len(self._cache) < 10_000:
            self._cache[ref] = fmt
        return fmt


def apply_system_style(messages: list[Message], style: SystemStyle) -> list[Message]:
    """`messages` with their system messages shaped as `style` asks (the same list object
    when nothing changes)."""
    if style == "system" or not any(isinstance(m, SystemMessage | DeveloperMessage)
                                    for m in messages):
        return messages
    if style == "developer":
        if not any(isinstance(m, SystemMessage) for m in messages):
            return messages
        return [DeveloperMessage(content=m.content, name=m.name) if isinstance(m, SystemMessage)
                else m for m in messages]
    instructions = "\n\n".join(text_of(m.content) for m in messages
                               if isinstance(m, SystemMessage | DeveloperMessage))
    rest = [m for m in messages if not isinstance(m, SystemMessage | DeveloperMessage)]
    for i, m in enumerate(rest):
        if isinstance(m, UserMessage):
            if isinstance(m.content, str):
                merged = UserMessage(content=f"{instructions}\n\n{m.content}", name=m.name)
            else:
                merged = UserMessage(content=[TextPart(text=instructions), *m.content],
                                     name=m.name)
            return [*rest[:i], merged, *rest[i + 1:]]
    return [UserMessage(content=instructions), *rest]
