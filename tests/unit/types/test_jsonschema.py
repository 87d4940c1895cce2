"""What gatewise's one JSON-schema validator guarantees: every keyword accepts and rejects what
the specification says (including the cases the old home-grown validators got wrong), every
problem comes with its JSON path and a reason that never quotes the value, and a hostile
schema can neither reach the network nor make a check run away."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from gatewise.types.jsonschema import (
    MAX_DEPTH,
    SchemaError,
    compile_schema,
    first_problem,
    kind_of,
)

DEFS = {"$defs": {"step": {"type": "object", "required": ["n"],
                           "properties": {"n": {"type": "integer", "minimum": 1}}}},
        "type": "object", "properties": {"steps": {"type": "array", "minItems": 1,
                                                   "items": {"$ref": "#/$defs/step"}}}}
TRANSFER = {"type": "object", "properties": {
    "iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"},
    "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
    "currency": {"type": "string", "enum": ["EUR", "USD"]},
    "memo": {"type": "string", "maxLength": 40}},
    "required": ["iban", "amount", "currency"], "additionalProperties": False}


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
    ("anything", True),
    ([0, False], {"uniqueItems": True}),
    ("not an email", {"type": "string", "format": "email"}),  # format is an annotation
])
def test_accepts(value: Any, schema: dict[str, Any] | bool) -> None:
    assert first_problem(value, schema) is None
    assert compile_schema(schema).problems(value) == []


@pytest.mark.parametrize(("value", "schema", "error"), [
    (True, {"type": "integer"}, "$: expected integer, got boolean"),
    (1, {"enum": [True]}, "$: must be one of [true]"),
    (1.5, {"type": "integer"}, "$: expected integer, got number"),
    (None, {"type": "string"}, "$: expected string, got null"),
    (3, {"type": ["string", "null"]}, "$: expected string or null, got integer"),
    (3, {"anyOf": [{"type": "string"}, {"type": "null"}]},
     "$: matches none of the anyOf alternatives"),
    ({"x": "1"}, {"type": "object", "additionalProperties": {"type": "integer"}},
     "$.x: expected integer, got string"),
    ({"steps": []}, DEFS, "$.steps: at least 1 items needed, got 0"),
    ({"steps": [{"n": 1}, {}]}, DEFS, "$.steps[1]: missing required property 'n'"),
    ({"steps": [{"n": 0}]}, DEFS, "$.steps[0].n: must be at least 1"),
    ({"a": 1}, {"properties": {"a": {"type": "string"}}, "additionalProperties": False,
                "required": ["a"]}, "$.a: expected string, got integer"),
    ("x", {"$ref": "#/$defs/missing"},
     "$: unresolvable $ref: Pointer '/$defs/missing' does not exist"),
    ("x", {"const": "y"}, '$: must be "y"'),
    ("x", False, "$: no value is allowed here"),
])
def test_rejects_with_the_path_and_reason(value: Any, schema: dict[str, Any] | bool,
                                          error: str) -> None:
    assert first_problem(value, schema) == error


@pytest.mark.parametrize(("value", "schema"), [
    (0, {"const": False}),
    (False, {"const": 0}),
    (0, {"enum": [False]}),
    (1, {"enum": [True]}),
    ([1, True], {"const": [True, True]}),
    ([[1], [True]], {"uniqueItems": True, "items": {"const": [1]}}),
])
def test_false_is_not_zero_and_true_is_not_one(value: Any, schema: dict[str, Any]) -> None:
    assert first_problem(value, schema) is not None


def test_uniqueness_tells_false_from_zero_but_not_one_from_one_point_oh() -> None:
    assert first_problem([0, False, 1, True], {"uniqueItems": True}) is None
    assert first_problem([1, 1.0], {"uniqueItems": True}) == "$: items must be unique"


def test_a_boolean_schema_is_a_schema_at_the_root_too() -> None:
    assert compile_schema(True).problems({"any": ["thing"]}) == []
    assert compile_schema(False).problems(None) == [("$", "no value is allowed here")]
    assert first_problem({"a": 1}, {"properties": {"a": False}}) == "$.a: no value is allowed here"


def test_a_ref_resolves_against_the_id_of_the_schema_it_sits_in() -> None:
    schema = {
        "$id": "https://example.com/root.json",
        "$defs": {
            "A": {"$id": "https://example.com/nested/a.json", "type": "integer"},
            "B": {"$id": "https://example.com/nested/b.json",
                  "properties": {"a": {"$ref": "a.json"}}},  # ../nested/a.json, not a remote
        },
        "$ref": "nested/b.json",
    }
    v = compile_schema(schema)
    assert v.problems({"a": 1}) == []
    assert v.problems({"a": "1"}) == [("$.a", "expected integer, got string")]


def test_every_problem_is_reported_with_its_path() -> None:
    v = compile_schema(TRANSFER, member="argument")
    found = v.problems({"iban": "nope", "currency": "JPY", "amount": 0, "memo": "x" * 41,
                        "evil": 1})
    assert sorted(found) == sorted([
        ("$.iban", "does not match the pattern ^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"),
        ("$.currency", 'must be one of ["EUR", "USD"]'),
        ("$.amount", "must be greater than 0"),
        ("$.memo", "at most 40 characters allowed, got 41"),
        ("$", "unexpected argument 'evil'"),
    ])
    assert sorted(v.problems({"amount": 1e9, "currency": "EUR"})) == [
        ("$", "missing required argument 'iban'"), ("$.amount", "must be at most 10000")]


def test_a_value_of_the_wrong_type_is_one_problem_not_one_per_keyword() -> None:
    v = compile_schema({"type": "string", "enum": ["a", "b"], "minLength": 1,
                        "pattern": "^[ab]$"})
    assert v.problems(5) == [("$", "expected string, got integer")]


def test_reasons_never_quote_the_value() -> None:
    secret = "4111 1111 1111 1111"
    found = compile_schema(TRANSFER).problems(
        {"iban": secret, "currency": secret, "amount": secret, "memo": secret * 5})
    assert len(found) == 4
    assert all(secret not in reason for _, reason in found)


def test_nullable_admits_null_beside_the_declared_type_only() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "nullable": True}}}
    assert first_problem({"n": None}, schema) is None
    assert first_problem({"n": "1"}, schema) == "$.n: expected integer or null, got string"
    assert first_problem(None, {"const": {"type": "string", "nullable": True}}) is not None


def test_kind_of_names_json_types() -> None:
    assert [kind_of(v) for v in (None, True, 1, 1.5, "s", [], {})] == [
        "null", "boolean", "integer", "number", "string", "array", "object"]


# Schemas that cannot be used are refused when built, with a reason that says where.

@pytest.mark.parametrize(("schema", "reason"), [
    ({"properties": {"a": {"type": "string", "pattern": "("}}},
     'invalid pattern "(" at properties.a.pattern'),
    ({"type": "strin"}, "not a valid JSON schema at type"),
    ({"required": "a"}, "not a valid JSON schema at required"),
    ({"$ref": "#/$defs/missing"}, "unresolvable $ref"),
    (["not", "a", "schema"], "a schema must be an object or a boolean, got array"),
])
def test_a_schema_that_cannot_be_used_is_refused_when_built(schema: Any, reason: str) -> None:
    with pytest.raises(SchemaError) as err:
        compile_schema(schema)
    assert reason in str(err.value)


# Hostile schemas and values.

@pytest.fixture
def listener() -> Any:
    """A local socket that would see any connection attempt as a pending connection."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def _connections(srv: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = srv.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


@pytest.mark.parametrize("shape", [
    lambda url: {"$ref": f"{url}/x.json"},
    lambda url: {"properties": {"a": {"$ref": f"{url}/x.json#/a"}}},
    lambda url: {"$id": f"{url}/root.json", "$ref": "other.json"},
    lambda url: {"$schema": f"{url}/meta.json"},
])
def test_a_remote_ref_is_never_fetched(listener: socket.socket, shape: Any) -> None:
    port = listener.getsockname()[1]
    schema = shape(f"http://127.0.0.1:{port}")
    with pytest.raises(SchemaError) as err:
        compile_schema(schema)
    assert _connections(listener) == 0
    assert "$ref" in str(err.value) or "meta-schema" in str(err.value)
    assert first_problem({}, schema) == f"$: {err.value}"
    assert _connections(listener) == 0


def test_a_remote_ref_says_why_it_is_refused(listener: socket.socket) -> None:
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.json"
    with pytest.raises(SchemaError, match=r"unresolvable \$ref: .*remote references are never "
                                          r"fetched"):
        compile_schema({"$ref": url})
    assert _connections(listener) == 0


def test_a_file_ref_is_never_read() -> None:
    with pytest.raises(SchemaError, match="remote references are never fetched"):
        compile_schema({"$ref": "file:///etc/passwd"})


@pytest.mark.parametrize("pattern", [r"^(?:(a+)\1?)+$", r"(a|aa)+(?!x)$", r"^(\w+\s?)*$(?<=z)"])
def test_a_catastrophic_pattern_is_cut_off_and_reported(pattern: str) -> None:
    v = compile_schema({"type": "object", "properties": {"s": {"type": "string",
                                                               "pattern": pattern}}})
    assert v.problems({"s": "a" * 5000 + "!"}) == [
        ("$.s", "could not be checked against the pattern within its step limit")]


def test_a_nested_quantifier_without_backtracking_features_stays_linear() -> None:
    v = compile_schema({"type": "string", "pattern": "^(a+)+$"})
    assert v.problems("a" * 100_000 + "!") == [("$", "does not match the pattern ^(a+)+$")]


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_self_referencing_schema_checks_deep_values_and_refuses_deeper_ones() -> None:
    tree = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    deep: dict[str, Any] = {"kids": []}
    node = deep
    for _ in range(MAX_DEPTH // 2 - 1):
        child: dict[str, Any] = {"kids": []}
        node["kids"].append(child)
        node = child
    v = compile_schema(tree)
    assert v.problems(deep) == []
    assert v.first_problem({"kids": [{"kids": 1}]}) == "$.kids[0].kids: expected array, got integer"
    node["kids"].append({"kids": []})  # one level too many
    assert v.problems(deep) == [("$", f"nests more than {MAX_DEPTH} levels deep")]


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5_000, 200_000])
def test_values_nested_past_the_limit_are_a_problem_not_a_crash(levels: int) -> None:
    v = compile_schema({"type": "array", "items": {"$ref": "#"}})
    assert v.problems(_nested(MAX_DEPTH)) == []
    assert v.problems(_nested(levels)) == [("$", f"nests more than {MAX_DEPTH} levels deep")]
    assert not v.is_valid(_nested(levels))


@pytest.mark.parametrize("levels", [MAX_DEPTH, 5_000])
def test_schemas_nested_past_the_limit_are_refused(levels: int) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaError, match="nests more than"):
        compile_schema(schema)


def test_import_gatewise_does_not_load_the_native_validator() -> None:
    script = ("import sys, gatewise, gatewise.tools, gatewise.types.jsonschema as js\n"
              "assert 'jsonschema_rs' not in sys.modules, 'imported at import time'\n"
              "js.compile_schema({'type': 'integer'})\n"
              "assert 'jsonschema_rs' in sys.modules\n")
    subprocess.run([sys.executable, "-c", script], check=True)
