"""The JSON-schema subset structured outputs use: each keyword accepts and rejects what it should."""

from __future__ import annotations

from typing import Any

import pytest

from gatewise.orchestration import schema_errors

DEFS = {"$defs": {"step": {"type": "object", "required": ["n"],
                           "properties": {"n": {"type": "integer", "minimum": 1}}}},
        "type": "object", "properties": {"steps": {"type": "array", "minItems": 1,
                                                   "items": {"$ref": "#/$defs/step"}}}}


@pytest.mark.parametrize(("value", "schema"), [
    (1, {"type": "integer"}),
    (1.0, {"type": "integer"}),
    (1, {"type": "number"}),
    (None, {"type": ["string", "null"]}),
    (None, {"type": "string", "nullable": True}),
    ("a", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    (True, {"enum": [True, "yes"]}),
    ({"x": 1}, {"type": "object", "additionalProperties": {"type": "integer"}}),
    ({"steps": [{"n": 1}, {"n": 2}]}, DEFS),
    ("abc", {"type": "string", "maxLength": 3}),
    ("anything", {}),
])
def test_accepts(value: Any, schema: dict[str, Any]) -> None:
    assert schema_errors(value, schema) is None


@pytest.mark.parametrize(("value", "schema", "error"), [
    (True, {"type": "integer"}, "$: expected integer, got boolean"),
    (1, {"enum": [True]}, "$: 1 is not one of [true]"),
    (1.5, {"type": "integer"}, "$: expected integer, got number"),
    (None, {"type": "string"}, "$: expected string, got null"),
    (3, {"anyOf": [{"type": "string"}, {"type": "null"}]},
     "$: matches none of the anyOf alternatives"),
    ({"x": "1"}, {"type": "object", "additionalProperties": {"type": "integer"}},
     "$.x: expected integer, got string"),
    ({"steps": []}, DEFS, "$.steps: at least 1 items needed, got 0"),
    ({"steps": [{"n": 1}, {}]}, DEFS, "$.steps[1]: missing required property 'n'"),
    ({"steps": [{"n": 0}]}, DEFS, "$.steps[0].n: 0 is below the minimum 1"),
    ("x", {"$ref": "#/$defs/missing"}, "$: unresolvable $ref #/$defs/missing"),
    ("x", {"const": "y"}, '$: must be "y"'),
])
def test_rejects_with_the_path_and_reason(value: Any, schema: dict[str, Any], error: str) -> None:
    assert schema_errors(value, schema) == error


def test_a_self_referencing_schema_terminates() -> None:
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    deep: dict[str, Any] = {"kids": []}
    node = deep
    for _ in range(200):
        child: dict[str, Any] = {"kids": []}
        node["kids"].append(child)
        node = child
    assert schema_errors(deep, tree) is None  # depth-capped, not a RecursionError
    assert schema_errors({"kids": [{"kids": 1}]}, tree) == "$.kids[0].kids: expected array, got integer"
