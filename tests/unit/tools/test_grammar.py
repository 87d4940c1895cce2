"""Local models: registered tools become llama.cpp grammars, so a forced tool call cannot break
the schema's structure (extra arguments, enum values, patterns). Bounds such as `minimum`
are not expressible in the grammar: the validator checks those after generation."""

from __future__ import annotations

import json
from typing import Literal

import msgspec
import pytest

from gatewise.pipeline.core import Identity
from gatewise.providers.llamacpp.grammar import plan_for
from gatewise.tools import ToolRegistry
from gatewise.types.validation import chat_request_from_dict

llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")


def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.register
    def transfer(iban: str, currency: Literal["EUR", "USD"], amount: float) -> str:
        return "ok"

    reg.get("transfer").parameters["properties"]["iban"]["pattern"] = "^[A-Z]{2}[0-9]{2}$"  # type: ignore[union-attr]
    return reg


def grammar_for(choice: object) -> str:
    reg = registry()
    tools = [msgspec.to_builtins(t) for t in reg.tools_for(Identity())]
    req = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "pay"}],
                                  "tools": tools, "tool_choice": choice})
    plan = plan_for(req)
    assert plan.mode == "tool_required" and plan.schema is not None
    return str(llama_grammar.json_schema_to_gbnf(json.dumps(plan.schema)))


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "transfer"}}])
def test_a_forced_call_is_a_grammar_with_exactly_the_declared_arguments(choice: object) -> None:
    g = grammar_for(choice)
    assert '"\\"transfer\\""' in g  # the tool name is a constant
    # additionalProperties: false → the argument object is exactly these three keys, no
    # catch-all key/value rule that would let the model add its own.
    args_rule = next(line for line in g.splitlines() if line.startswith("arguments ::="))
    assert args_rule.count("-kv") == 3 and "additional" not in g
    assert '"\\"EUR\\"" | "\\"USD\\""' in g  # the enum
    assert "[A-Z]" in g and "[0-9]" in g  # the pattern's character classes
