"""Is this tool call one the caller's model may make, with arguments that fit the schema?

A model's tool call is untrusted input: it can name a tool that does not exist or that this
caller may not use, send arguments that are not JSON, omit or invent arguments, break types,
enums, patterns and bounds, or carry an injected instruction inside a string argument meant
for the next system down the line. `validate_tool_call` finds all of that, in microseconds,
and never runs anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from gatewise.pipeline.core import Identity
from gatewise.tools.registry import RegisteredTool, ToolRegistry
from gatewise.types.jsonschema import kind_of
from gatewise.types.messages import ToolCall

InspectText = Callable[[str], bool]

_decode = msgspec.json.Decoder().decode

# Problem kinds, for events and metrics (never the offending values).
UNKNOWN_TOOL = "unknown_tool"
NOT_PERMITTED = "not_permitted"
INVALID_JSON = "invalid_json"
SCHEMA = "schema"
INJECTION = "injection"


@dataclass(frozen=True, slots=True)
class ToolCallProblem:
    tool: str
    path: str
    reason: str
    kind: str = SCHEMA

    def __str__(self) -> str:
        where = "" if self.path == "$" else f" at {self.path}"
        return f"{self.tool}{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ValidatedCall:
    call: ToolCall
    tool: RegisteredTool
    arguments: dict[str, Any]


def validate_tool_call(call: ToolCall, registry: ToolRegistry, identity: Identity, *,
                       inspect_text: InspectText | None = None) -> ValidatedCall | list[ToolCallProblem]:
    """The validated call, or every problem found. `inspect_text(s) -> True` marks a string
    argument as an injection attempt (the lead passes the prompt-injection detector)."""
    name = call.function.name
    tool = registry.get(name)
    if tool is None:
        return [ToolCallProblem(name, "$", "no such tool is registered", UNKNOWN_TOOL)]
    if tool.permission is not None and not identity.can(tool.permission):
        return [ToolCallProblem(name, "$", "the caller is not permitted to use this tool",
                                NOT_PERMITTED)]
    raw = call.function.arguments
    try:
        args = _decode(raw) if raw.strip() else {}
    except (msgspec.DecodeError, UnicodeDecodeError):
        return [ToolCallProblem(name, "$", "arguments are not valid JSON", INVALID_JSON)]
    if type(args) is not dict:
        return [ToolCallProblem(name, "$", f"arguments must be a JSON object, got {kind_of(args)}")]
    problems = [ToolCallProblem(name, p, r) for p, r in tool.check.problems(args)]
    if inspect_text is not None:
        for path, text in _strings(args, "$"):
            if inspect_text(text):
                problems.append(ToolCallProblem(
                    name, path, "looks like an injected instruction", INJECTION))
    return problems or ValidatedCall(call, tool, args)


def validate_tool_calls(calls: Sequence[ToolCall], registry: ToolRegistry, identity: Identity, *,
                        inspect_text: InspectText | None = None
                        ) -> tuple[list[ValidatedCall], list[ToolCallProblem]]:
    ok: list[ValidatedCall] = []
    bad: list[ToolCallProblem] = []
    for c in calls:
        r = validate_tool_call(c, registry, identity, inspect_text=inspect_text)
        if isinstance(r, list):
            bad.extend(r)
        else:
            ok.append(r)
    return ok, bad


def describe(problems: Sequence[ToolCallProblem], limit: int = 8) -> str:
    """One line naming each tool and problem, for error messages and repair prompts."""
    parts = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        parts.append(f"and {len(problems) - limit} more")
    return "; ".join(parts)


def _strings(v: Any, path: str) -> Iterator[tuple[str, str]]:
    if type(v) is str:
        yield path, v
    elif type(v) is dict:
        for k, item in v.items():
            yield from _strings(item, f"{path}.{k}")
    elif type(v) is list:
        for i, item in enumerate(v):
            yield from _strings(item, f"{path}[{i}]")
