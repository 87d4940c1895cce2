"""The local model generates an object's properties in the order its grammar lists them, and
the grammar lists them in the order of the JSON it is compiled from: the compiled-grammar
cache must hand the converter the schema's own key order."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.providers.llamacpp.grammar import GrammarCache, plan_for
from gatewise.types.validation import chat_request_from_dict

TOOLS = [
    {"type": "function", "function": {
        "name": "transfer_funds", "description": "Moves money.",
        "parameters": {"type": "object", "properties": {
            "from_account": {"type": "string"}, "to_account": {"type": "string"},
            "amount": {"type": "number"}},
            "required": ["from_account", "to_account", "amount"]}}},
    {"type": "function", "function": {
        "name": "get_balance", "description": "A balance.",
        "parameters": {"type": "object", "properties": {"account": {"type": "string"}},
                       "required": ["account"]}}},
]


def required_call_schema() -> dict[str, Any]:
    req = chat_request_from_dict({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                  "tools": TOOLS, "tool_choice": "required"})
    schema = plan_for(req).schema
    assert schema is not None
    return dict(schema)


def test_the_cache_compiles_a_schema_in_its_own_key_order() -> None:
    compiled: list[str] = []
    cache = GrammarCache(lambda text: compiled.append(text) or text, lambda gbnf: True)
    cache.get(required_call_schema())
    (text,) = compiled
    # The tool's name comes before its arguments, and the arguments in the declared order.
    assert text.index('"name"') < text.index('"arguments"')
    assert text.index('"from_account"') < text.index('"to_account"') < text.index('"amount"')


def test_schemas_that_differ_only_in_key_order_are_different_grammars() -> None:
    compiled: list[str] = []
    cache = GrammarCache(lambda text: compiled.append(text) or text, lambda gbnf: True)
    first = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "string"}}}
    second = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    assert cache.get(first) != cache.get(second)
    assert cache.get(first) == compiled[0] and cache.misses == 2 and cache.hits == 1


def test_a_required_tool_call_grammar_makes_the_model_name_the_tool_first() -> None:
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    cache = GrammarCache(llama_grammar.json_schema_to_gbnf, lambda gbnf: True)
    gbnf = str(cache.get(required_call_schema()))
    alternatives = [line for line in gbnf.splitlines()
                    if line.startswith("alternative-") and "::=" in line and "-kv" in line
                    and line.split("::=")[0].count("-") == 1]
    assert len(alternatives) == len(TOOLS)
    for rule in alternatives:
        body = rule.split("::=", 1)[1]
        assert body.index("name-kv") < body.index("arguments-kv"), rule
    transfer_args = next(line for line in gbnf.splitlines()
                         if "arguments ::=" in line and "from-account" in line)
    assert (transfer_args.index("from-account") < transfer_args.index("to-account")
            < transfer_args.index("amount")), transfer_args
