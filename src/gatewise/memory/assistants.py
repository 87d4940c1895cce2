"""Assistants: a named set of instructions, persona, user context, default model and tools.

A request picks one with `metadata.assistant`, the header `x-gatewise-assistant`, the
library's `assistant=`, or the model name `assistant/<name>` (then the assistant's model
serves it, else the default model). The assistant's system message comes first; with
`locked` (the default) the client's own system and developer messages are dropped, so a
client cannot replace the instruction set (a bank's agent keeps "verify before any account
action" whatever the app sends). The assistant's tools are offered besides the request's
(the assistant's win on a name clash).

`user_context` is formatted from the caller's identity: `{role}`, `{team}`, `{user}`,
`{permissions}`, nothing else (no attribute or index access, no format specs), checked when
the gateway is built so a typo is a config error, not a failed request.

This runs before access control, so the key must be allowed the assistant's model.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import msgspec

from gatewise.config.schema import AssistantConfig
from gatewise.errors import ConfigError, InvalidRequestError, ModelNotFoundRequestError
from gatewise.memory.turns import is_instruction
from gatewise.pipeline.core import Call, Handler, Identity
from gatewise.types.messages import SystemMessage
from gatewise.types.requests import Tool

PREFIX = "assistant/"
FIELDS = frozenset({"role", "team", "user", "permissions"})
_formatter = string.Formatter()


def parse_template(text: str, where: str) -> list[tuple[str, str | None]]:
    """(literal, field) pairs; ConfigError naming `where` for anything but a plain field."""
    parts: list[tuple[str, str | None]] = []
    try:
        parsed = list(_formatter.parse(text))
    except ValueError as exc:
        raise ConfigError(f"invalid template: {exc}", path=where) from None
    for literal, field, spec, conversion in parsed:
        if field is not None and (field not in FIELDS or spec or conversion):
            raise ConfigError(f"unknown placeholder {{{field}}}; use "
                              + ", ".join(f"{{{f}}}" for f in sorted(FIELDS)), path=where)
        parts.append((literal, field))
    return parts


def identity_values(identity: Identity) -> dict[str, str]:
    perms = identity.permissions
    return {"role": identity.role, "team": identity.team or "none",
            "user": identity.user or "unknown",
            "permissions": "all" if perms is None else ", ".join(sorted(perms)) or "none"}


class Assistant:
    def __init__(self, name: str, config: AssistantConfig) -> None:
        self.name = name
        self.config = config
        self._context = (parse_template(config.user_context, f"assistants.{name}.user_context")
                         if config.user_context else [])
        self.tools = [msgspec.convert({"type": "function", "function": {
            "name": t.name, "description": t.description or None,
            "parameters": t.parameters}}, Tool) for t in config.tools]

    def system_prompt(self, identity: Identity) -> str:
        parts = [self.config.system_prompt.strip()]
        if self.config.persona:
            parts.append(f"Persona: {self.config.persona.strip()}")
        if self._context:
            values = identity_values(identity)
            parts.append("".join(lit + (values[f] if f else "") for lit, f in self._context))
        return "\n\n".join(parts)


class AssistantMiddleware:
    def __init__(self, assistants: Mapping[str, AssistantConfig],
                 default_model: str | None) -> None:
        self.assistants = {n: Assistant(n, c) for n, c in assistants.items()}
        self.default_model = default_model

    def _pick(self, call: Call) -> tuple[Assistant, str | None] | None:
        """(assistant, model to use or None to keep the request's)."""
        if call.alias.startswith(PREFIX):
            name = call.alias[len(PREFIX):]
            found = self.assistants.get(name)
            if found is None:
                raise ModelNotFoundRequestError(f"The model '{call.alias}' does not exist: "
                                                f"no assistant {name!r}", param="model")
            model = found.config.model or self.default_model
            if not model:
                raise InvalidRequestError(f"assistant {name!r} has no model and no "
                                          "default_model is configured", param="model")
            return found, model
        chosen = call.assistant
        if not chosen:
            return None
        found = self.assistants.get(chosen)
        if found is None:
            raise InvalidRequestError(f"no assistant {chosen!r}", param="metadata.assistant",
                                      code="assistant_not_found")
        return found, None

    async def __call__(self, call: Call, next: Handler) -> Any:
        if call.kind != "chat":
            return await next(call)
        picked = self._pick(call)
        if picked is None:
            return await next(call)
        assistant, model = picked
        req = call.chat_request
        kept = [m for m in req.messages if not (assistant.config.locked and is_instruction(m))]
        names = {t.function.name for t in assistant.tools}
        tools = [*assistant.tools, *(t for t in req.tools or () if t.function.name not in names)]
        call.request = msgspec.structs.replace(
            req, model=model or req.model, tools=tools or None,
            messages=[SystemMessage(content=assistant.system_prompt(call.identity)), *kept])
        if model is not None:
            call.alias = model
        call.event("assistant", assistant=assistant.name)
        return await next(call)
