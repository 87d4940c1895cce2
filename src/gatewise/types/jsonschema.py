"""JSON-schema validation, the one place for it: tool arguments, structured outputs, cascade gates.

Why a library: issue 10 measured gatewise's own two validators (an interpreter and a
closure compiler) against well-kept libraries on the official JSON-Schema-Test-Suite and on
typical tool payloads (`bench/jsonschema_bench.py`). Ours passed about 76% of the suite (wrong
on `false == 0` in const/enum/uniqueItems, boolean root schemas, `$ref` beside `$id`);
`jsonschema_rs` (Rust, abi3 wheels, no Python dependencies) passed all of it and ran 8-24x
faster than ours; `jsonschema` passed all of it but ran 10-20x slower than ours. So
`jsonschema_rs` it is, imported only when the first validator is built so that
`import gatewise` does not pay for it. With this wrapper a valid payload checks 2-6x faster
than ours did; an invalid one costs a few µs per problem (the library builds an error object
for each), on a path that ends in an error or a repair round anyway.

What this module adds around the library, and why:

- No network, no files: a caller's schema (`response_format`, tool parameters) can name a
  remote `$ref` (`http://...`, `file:///...`, a `$schema` URL). The retriever refuses every
  one, so a schema never makes the gateway connect anywhere; the schema is rejected instead.
- Bounded work on hostile input: patterns run on a backtracking limit (a ReDoS-shaped pattern
  is reported as a problem, not a stall), and schemas and values nested deeper than
  `MAX_DEPTH` are refused before the native code sees them (its recursion has no limit of its
  own, and a worker thread's stack can be small).
- `format` is an annotation, never asserted, as before and as draft 2020-12 says.
- `nullable: true` (OpenAPI's spelling, which Gemini-style schemas use) admits null, as before.
- Reasons in gatewise's words, every one with a JSON path (`$.items[2].name`), and never
  quoting the offending value: they end up in error messages, repair prompts and security
  events, and a model's arguments can echo personal data. They quote the schema instead
  (enums, patterns, bounds), which is the schema author's text. A value of the wrong type is
  one problem, not one per keyword that no longer applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from gatewise.types.depth import MAX_JSON_DEPTH_LIMIT, json_too_deep

if TYPE_CHECKING:
    import jsonschema_rs

# (JSON path, reason) pairs.
Problems = list[tuple[str, str]]

# Nesting levels (arrays and objects) a schema or a checked value may have: the most the edge
# ever lets a request carry (`server.max_json_depth`), and far below where the native
# validator's recursion would exhaust even a small thread stack.
MAX_DEPTH = MAX_JSON_DEPTH_LIMIT
# Backtracking steps a `pattern` may take on one string before it counts as failed: 1-2 ms.
# Patterns without backreferences or look-around run on a regex engine that never backtracks.
BACKTRACK_LIMIT = 20_000

_encode = msgspec.json.Encoder().encode


class SchemaError(ValueError):
    """A schema that cannot be used: not valid against its meta-schema, a bad pattern, a
    `$ref` that does not resolve (remote ones never do), or nested too deeply."""


def kind_of(v: Any) -> str:
    """The JSON type name of a decoded JSON value."""
    if v is None:
        return "null"
    t = type(v)
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "number"
    if t is str:
        return "string"
    if t is list:
        return "array"
    if t is dict:
        return "object"
    return t.__name__


class Validator:
    """One schema, built once; checking a value is then only native work.

    `member` names what an object's keys are in reasons: "property" for documents,
    "argument" for tool calls ("missing required argument 'iban'")."""

    __slots__ = ("_member", "_rs", "_said", "schema")

    def __init__(self, schema: Mapping[str, Any] | bool, *, member: str = "property") -> None:
        self.schema = schema
        self._member = member
        self._rs = _build(schema)
        # Reasons that depend on the schema alone, by keyword location: quoting an enum
        # costs more than finding the problem.
        self._said: dict[tuple[str | int, ...], list[str]] = {}

    def is_valid(self, value: Any) -> bool:
        return not _too_deep(value) and bool(self._rs.is_valid(value))

    def problems(self, value: Any) -> Problems:
        """Every way `value` breaks the schema, as (path, reason); empty when it is valid."""
        if _too_deep(value):
            return [("$", f"nests more than {MAX_DEPTH} levels deep")]
        if self._rs.is_valid(value):
            return []
        typed: set[str] = set()
        found: list[tuple[str, bool, str]] = []
        for err in self._rs.iter_errors(value):
            path = _path(err.instance_path)
            name = type(err.kind).__name__
            is_type = name == "Type"
            if is_type:
                typed.add(path)
            if name in _SCHEMA_ONLY:
                where = tuple(err.schema_path)
                reasons = self._said.get(where)
                if reasons is None:
                    reasons = self._said[where] = _reasons(err, name, self._member)
            else:
                reasons = _reasons(err, name, self._member)
            found.extend((path, is_type, r) for r in reasons)
        # A wrong type makes the other keywords at that place moot: one problem, not three.
        return [(p, r) for p, is_type, r in found if is_type or p not in typed]

    def first_problem(self, value: Any) -> str | None:
        """`"$.path: reason"` for the first problem, or None when `value` is valid."""
        found = self.problems(value)
        if not found:
            return None
        path, reason = found[0]
        return f"{path}: {reason}"


def compile_schema(schema: Mapping[str, Any] | bool, *, member: str = "property") -> Validator:
    """A validator for `schema`; raises SchemaError for a schema it cannot use."""
    return Validator(schema, member=member)


def first_problem(value: Any, schema: Mapping[str, Any] | bool) -> str | None:
    """`"$.path: reason"` for the first way `value` breaks `schema`, or None. For one-off
    checks (a cascade gate on one answer); a schema that cannot be used is reported as the
    problem, since the answer cannot be shown to match it."""
    try:
        return Validator(schema).first_problem(value)
    except SchemaError as exc:
        return f"$: {exc}"


def _refuse(uri: str) -> Any:
    raise LookupError("remote references are never fetched")


def _build(schema: Mapping[str, Any] | bool) -> jsonschema_rs.Validator:
    import jsonschema_rs  # deferred: `import gatewise` stays free of it

    if not isinstance(schema, bool | Mapping):
        raise SchemaError(f"a schema must be an object or a boolean, got {kind_of(schema)}")
    doc: Any = schema if isinstance(schema, bool) else dict(schema)
    if not isinstance(doc, bool):
        try:
            body = _encode(doc)
        except RecursionError:
            raise SchemaError(f"schema nests more than {MAX_DEPTH} levels deep") from None
        except (TypeError, msgspec.EncodeError) as exc:
            raise SchemaError(f"a schema must be JSON: {exc}") from None
        if json_too_deep(body, MAX_DEPTH):
            raise SchemaError(f"schema nests more than {MAX_DEPTH} levels deep")
        if b'"nullable":true' in body:
            doc = _nullable(doc)
    try:
        return jsonschema_rs.validator_for(
            doc, retriever=_refuse, validate_formats=False,
            pattern_options=jsonschema_rs.FancyRegexOptions(backtrack_limit=BACKTRACK_LIMIT))
    except jsonschema_rs.ValidationError as exc:
        raise SchemaError(_schema_reason(exc)) from None
    except ValueError as exc:  # the library's own limits (e.g. recursion) on odd schemas
        raise SchemaError(str(exc).splitlines()[0]) from None


def _schema_reason(exc: jsonschema_rs.ValidationError) -> str:
    kind = exc.kind
    name = type(kind).__name__
    where = ".".join(str(p) for p in exc.instance_path)
    at = f" at {where}" if where else ""
    first = exc.message.splitlines()[0] if exc.message else str(exc).splitlines()[0]
    if name == "Referencing":
        return f"unresolvable {'$schema' if 'meta-schema' in first else '$ref'}: {first}"
    if name == "Format" and getattr(kind, "format", None) == "regex":
        return f"invalid pattern {_short(exc.instance)}{at}"
    return f"not a valid JSON schema{at}: {first}"


def _nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema: null joins the node's types."""
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: v if k in ("const", "enum", "default", "examples") else _nullable(v)
           for k, v in node.items()}
    t = out.get("type")
    if out.get("nullable") is True and t is not None:
        types = [t] if isinstance(t, str) else list(t) if isinstance(t, list) else None
        if types is not None and "null" not in types:
            out["type"] = [*types, "null"]
    return out


def _too_deep(value: Any) -> bool:
    t = type(value)
    if t is not dict and t is not list:
        return False
    try:
        return json_too_deep(_encode(value), MAX_DEPTH)
    except RecursionError:
        return True
    except (TypeError, msgspec.EncodeError):
        return False  # not JSON: the validator says what it makes of it


def _path(parts: list[str | int]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _reasons(err: jsonschema_rs.ValidationError, name: str, member: str) -> list[str]:
    kind: Any = err.kind
    value = err.instance
    if name == "Type":
        types = sorted(kind.types, key=lambda t: t == "null")  # "string or null"
        return [f"expected {' or '.join(types)}, got {kind_of(value)}"]
    if name == "Required":
        return [f"missing required {member} '{kind.property}'"]
    if name == "AdditionalProperties":
        return [f"unexpected {member} '{k}'" for k in kind.unexpected]
    if name == "Enum":
        return [f"must be one of {_short(kind.options)}"]
    if name == "Constant":
        return [f"must be {_short(kind.expected_value)}"]
    if name in _BOUNDS:
        return [_BOUNDS[name].format(kind.limit)]
    if name in _SIZES:
        what, most = _SIZES[name]
        n = len(value) if isinstance(value, str | list | dict) else 0
        return [f"at most {kind.limit} {what} allowed, got {n}" if most
                else f"at least {kind.limit} {what} needed, got {n}"]
    if name == "MultipleOf":
        return [f"must be a multiple of {kind.multiple_of}"]
    if name == "Pattern":
        return [f"does not match the pattern {kind.pattern}"]
    if name in ("BacktrackLimitExceeded", "RegexEngineFailure"):
        return ["could not be checked against the pattern within its step limit"]
    return [_OTHER.get(name) or f"fails the schema's '{_keyword(err)}' rule"]


_SCHEMA_ONLY = frozenset({"Enum", "Constant", "Pattern", "MultipleOf", "Minimum", "Maximum",
                          "ExclusiveMinimum", "ExclusiveMaximum"})
_BOUNDS = {"Minimum": "must be at least {}", "Maximum": "must be at most {}",
           "ExclusiveMinimum": "must be greater than {}", "ExclusiveMaximum": "must be less than {}"}
_SIZES = {"MinLength": ("characters", False), "MaxLength": ("characters", True),
          "MinItems": ("items", False), "MaxItems": ("items", True),
          "MinProperties": ("properties", False), "MaxProperties": ("properties", True)}
_OTHER = {"AnyOf": "matches none of the anyOf alternatives",
          "OneOfNotValid": "matches none of the oneOf alternatives",
          "OneOfMultipleValid": "matches more than one of the oneOf alternatives",
          "FalseSchema": "no value is allowed here",
          "UniqueItems": "items must be unique",
          "Not": "matches the schema it must not match",
          "Contains": "has no item that matches 'contains'"}


def _keyword(err: jsonschema_rs.ValidationError) -> str:
    path = [p for p in err.schema_path if isinstance(p, str)]
    return path[-1] if path else "schema"


def _short(v: Any, limit: int = 80) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit - 3] + "..."
