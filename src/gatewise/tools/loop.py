"""`run_tools`: the tool loop applications would otherwise write themselves, with the checks in.

model → tool calls → each validated again here (registry, permission, schema: the loop never
trusts that a guard middleware ran) → the handler runs with the caller's identity → its result
goes back as a tool message → model again, until an answer without tool calls or the step
limit. A handler that raises becomes a tool result saying so (the model can recover or tell
the user); an invalid call becomes a tool result with the precise error and runs nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from gatewise.pipeline.core import Identity
from gatewise.pipeline.results import ChatResult
from gatewise.pipeline.runner import Runner
from gatewise.tools.registry import ToolRegistry
from gatewise.tools.validate import InspectText, describe, validate_tool_call

StopReason = Literal["answer", "max_steps"]


@dataclass(slots=True)
class ToolStep:
    """One tool call the model made: what ran (or why nothing did) and what came back."""

    turn: int
    call_id: str
    tool: str
    arguments: dict[str, Any] | None
    result: str
    error: str | None = None
    executed: bool = False
    duration_s: float = 0.0


@dataclass(slots=True)
class ToolLoopResult:
    final: ChatResult
    steps: list[ToolStep] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: StopReason = "answer"
    turns: int = 0

    @property
    def completed(self) -> bool:
        """False when the step limit ended the loop while the model still wanted tools."""
        return self.stop_reason == "answer"

    @property
    def content(self) -> str | None:
        return self.final.content


async def run_tools(gateway: Runner, *, messages: Sequence[dict[str, Any]], registry: ToolRegistry,
                    identity: Identity, model: str | None = None, max_steps: int = 5,
                    inspect_text: InspectText | None = None, max_result_chars: int = 16_000,
                    then_tool_choice: Any = None, **params: Any) -> ToolLoopResult:
    """Runs the loop for at most `max_steps` model turns. `tool_choice` in `params` applies to
    the first turn only: later turns use `then_tool_choice`, by default none at all (the
    provider's "auto"), since "required" or a named tool would never let the model answer.
    An application that routed the turn to one tool itself passes `then_tool_choice="none"`:
    once that tool ran, the model only words the reply, and a small model cannot answer the
    tool's result with a second, invented call."""
    if max_steps < 1:
        raise ValueError("max_steps must be at least 1")
    # The gateway's tracing (`gatewise.observability.tracing`), when on: a span around the
    # loop, under which the model turns and each tool execution get theirs.
    tracing = getattr(gateway, "tracing", None)
    if tracing is None:
        return await _loop(gateway, messages, registry, identity, model, max_steps,
                           inspect_text, max_result_chars, then_tool_choice, params, None)
    with tracing.agent(model):
        return await _loop(gateway, messages, registry, identity, model, max_steps,
                           inspect_text, max_result_chars, then_tool_choice, params, tracing)


async def _loop(gateway: Runner, messages: Sequence[dict[str, Any]], registry: ToolRegistry,
                identity: Identity, model: str | None, max_steps: int,
                inspect_text: InspectText | None, max_result_chars: int, then_choice: Any,
                params: dict[str, Any], tracing: Any) -> ToolLoopResult:
    msgs = [dict(m) for m in messages]
    tools = [msgspec.to_builtins(t) for t in registry.tools_for(identity)]
    first_choice = params.pop("tool_choice", None)
    steps: list[ToolStep] = []
    result: ChatResult | None = None
    for turn in range(1, max_steps + 1):
        kw = dict(params)
        if tools:
            kw["tools"] = tools
            choice = first_choice if turn == 1 else then_choice
            if choice is not None:
                kw["tool_choice"] = choice
        result = await gateway.chat(model=model, messages=msgs, identity=identity, **kw)
        calls = result.tool_calls
        if not calls:
            return ToolLoopResult(result, steps, msgs, "answer", turn)
        if turn == max_steps:
            break
        msgs.append({"role": "assistant", "content": result.content,
                     "tool_calls": [msgspec.to_builtins(c) for c in calls]})
        for c in calls:
            if tracing is None:
                step = await _run_one(c, registry, identity, turn, inspect_text,
                                      max_result_chars)
            else:
                with tracing.tool(c.function.name, c.id) as span:
                    step = await _run_one(c, registry, identity, turn, inspect_text,
                                          max_result_chars)
                    if step.error is not None:  # the exception's class, never its text
                        span.fail(step.error.partition(":")[0] if step.executed
                                  else "rejected")
            steps.append(step)
            msgs.append({"role": "tool", "tool_call_id": c.id, "content": step.result})
    assert result is not None
    return ToolLoopResult(result, steps, msgs, "max_steps", max_steps)


async def _run_one(c: Any, registry: ToolRegistry, identity: Identity, turn: int,
                   inspect_text: InspectText | None, limit: int) -> ToolStep:
    checked = validate_tool_call(c, registry, identity, inspect_text=inspect_text)
    name = c.function.name
    if isinstance(checked, list):
        err = describe(checked)
        return ToolStep(turn, c.id, name, None,
                        f"error: the call was rejected and not executed: {err}", err)
    if not checked.tool.executable:
        err = "this tool has no handler in this application"
        return ToolStep(turn, c.id, name, checked.arguments, f"error: {err}", err)
    started = time.perf_counter()
    try:
        value = await checked.tool.invoke(checked.arguments, identity)
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}"
        return ToolStep(turn, c.id, name, checked.arguments, f"error: the tool failed: {err}", err,
                        executed=True, duration_s=time.perf_counter() - started)
    text = result_text(value)
    if len(text) > limit:
        text = text[:limit] + "…[truncated]"
    return ToolStep(turn, c.id, name, checked.arguments, text, None, executed=True,
                    duration_s=time.perf_counter() - started)


def result_text(value: Any) -> str:
    """A handler's return value as the text of a tool message."""
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return str(dump())
    try:
        return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)
    except (TypeError, msgspec.EncodeError):
        return str(value)
