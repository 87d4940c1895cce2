"""JSON-schema checks compiled once per tool, for the tool-call hot path.

`orchestration.jsonschema.schema_errors` interprets a schema on every call and stops at the
first error; tool calls need more: every problem at once (so one repair round can fix them
all), `pattern` (compiled once, never per call), and a budget of a few microseconds per call.
So a tool's parameter schema is compiled into a tree of small closures when the tool is
registered; checking a call is then only the work the schema asks for.

Reasons never quote the offending value: they end up in error messages and security events,
and a model's arguments can echo personal data. They quote the schema instead (enums,
patterns, bounds), which is the tool author's text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from gatewise.orchestration.jsonschema import resolve_ref

# (JSON path, reason) pairs, appended to a list the caller owns.
Problems = list[tuple[str, str]]
Check = Callable[[Any, str, Problems], None]

MAX_DEPTH = 32


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


def _type_ok(kind: str, want: str, v: Any) -> bool:
    if kind == want:
        return True
    if want == "number":
        return kind == "integer"
    if want == "integer":
        return kind == "number" and float(v).is_integer()
    return False


def _same(a: Any, b: Any) -> bool:
    """JSON equality: True is not 1, but 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _short(v: Any, limit: int = 80) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit - 3] + "..."


class SchemaCompiler:
    """Compiles one root schema; local `$ref`s are compiled once and may be recursive."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self._refs: dict[str, Check] = {}

    def compile(self, schema: Any, depth: int = 0) -> Check:
        if schema is True or schema is None or (isinstance(schema, dict) and not schema):
            return _accept
        if schema is False:
            return _reject
        if not isinstance(schema, dict):
            raise ValueError(f"a schema must be an object or a boolean, got {kind_of(schema)}")
        if depth > MAX_DEPTH:
            raise ValueError("schema nests too deeply")
        checks: list[Check] = []
        ref = schema.get("$ref")
        if isinstance(ref, str):
            checks.append(self._ref(ref, depth))
        for key in ("anyOf", "oneOf"):
            subs = schema.get(key)
            if isinstance(subs, list) and subs:
                checks.append(_any_of([self.compile(s, depth + 1) for s in subs], key,
                                      exactly_one=key == "oneOf"))
        for s in schema.get("allOf") or ():
            checks.append(self.compile(s, depth + 1))
        t = schema.get("type")
        types = (t,) if isinstance(t, str) else tuple(t) if isinstance(t, list) else ()
        if types and schema.get("nullable") is True and "null" not in types:
            types = (*types, "null")
        if "enum" in schema:
            checks.append(_enum_check(list(schema["enum"])))
        if "const" in schema:
            checks.append(_const_check(schema["const"]))
        checks.extend(self._object_checks(schema, depth))
        checks.extend(self._array_checks(schema, depth))
        checks.extend(_string_checks(schema))
        checks.extend(_number_checks(schema))
        if types:
            return _typed(_type_check(types), checks)
        if not checks:
            return _accept
        return checks[0] if len(checks) == 1 else _all(checks)

    def _ref(self, ref: str, depth: int) -> Check:
        found = self._refs.get(ref)
        if found is not None:
            return found
        target = resolve_ref(ref, self.root)
        if target is None:
            raise ValueError(f"unresolvable $ref {ref}")
        box: list[Check] = []

        def deferred(v: Any, path: str, out: Problems) -> None:
            box[0](v, path, out)

        self._refs[ref] = deferred  # recursive schemas refer back to this while compiling
        box.append(self.compile(target, depth + 1))
        self._refs[ref] = box[0]
        return box[0]

    def _object_checks(self, schema: dict[str, Any], depth: int) -> list[Check]:
        props = schema.get("properties")
        required = tuple(schema.get("required") or ())
        extra = schema.get("additionalProperties", True)
        lo, hi = schema.get("minProperties"), schema.get("maxProperties")
        if props is None and not required and extra is True and lo is None and hi is None:
            return []
        compiled = {k: self.compile(v, depth + 1) for k, v in (props or {}).items()}
        extra_check: Check | None = None
        if extra is not True and extra is not False and extra is not None:
            extra_check = self.compile(extra, depth + 1)
        forbid = extra is False

        def check(v: Any, path: str, out: Problems) -> None:
            if type(v) is not dict:
                return
            for name in required:
                if name not in v:
                    out.append((path, f"missing required argument '{name}'"))
            for k, item in v.items():
                sub = compiled.get(k)
                if sub is None:
                    if forbid:
                        out.append((path, f"unexpected argument '{k}'"))
                        continue
                    if extra_check is None:
                        continue
                    sub = extra_check
                sub(item, f"{path}.{k}", out)
            _bounds(len(v), lo, hi, path, "properties", out)

        return [check]

    def _array_checks(self, schema: dict[str, Any], depth: int) -> list[Check]:
        items = schema.get("items")
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        unique = schema.get("uniqueItems") is True
        if items is None and lo is None and hi is None and not unique:
            return []
        item_check = self.compile(items, depth + 1) if items is not None else _accept

        def check(v: Any, path: str, out: Problems) -> None:
            if type(v) is not list:
                return
            for i, item in enumerate(v):
                item_check(item, f"{path}[{i}]", out)
            _bounds(len(v), lo, hi, path, "items", out)
            if unique:
                seen: list[Any] = []
                for item in v:
                    if any(_same(item, s) for s in seen):
                        out.append((path, "items must be unique"))
                        break
                    seen.append(item)

        return [check]


def _accept(v: Any, path: str, out: Problems) -> None:
    return None


def _reject(v: Any, path: str, out: Problems) -> None:
    out.append((path, "no value is allowed here"))


def _all(checks: list[Check]) -> Check:
    cs = tuple(checks)

    def check(v: Any, path: str, out: Problems) -> None:
        for c in cs:
            c(v, path, out)

    return check


def _typed(type_check: Check, checks: list[Check]) -> Check:
    """Stops after a type mismatch, so `"abc"` for an integer is one problem, not three."""
    rest = tuple(checks)
    if not rest:
        return type_check

    def check(v: Any, path: str, out: Problems) -> None:
        n = len(out)
        type_check(v, path, out)
        if len(out) > n:
            return
        for c in rest:
            c(v, path, out)

    return check


def _any_of(subs: list[Check], key: str, *, exactly_one: bool) -> Check:
    def check(v: Any, path: str, out: Problems) -> None:
        matched = 0
        for s in subs:
            trial: Problems = []
            s(v, path, trial)
            if not trial:
                matched += 1
                if not exactly_one:
                    return
        if matched == 0:
            out.append((path, f"matches none of the {key} alternatives"))
        elif exactly_one and matched > 1:
            out.append((path, "matches more than one of the oneOf alternatives"))

    return check


def _type_check(types: tuple[str, ...]) -> Check:
    want = " or ".join(types)
    single = types[0] if len(types) == 1 else None

    def check(v: Any, path: str, out: Problems) -> None:
        k = kind_of(v)
        if single is not None:
            if not _type_ok(k, single, v):
                out.append((path, f"expected {want}, got {k}"))
        elif not any(_type_ok(k, t, v) for t in types):
            out.append((path, f"expected {want}, got {k}"))

    return check


def _enum_check(values: list[Any]) -> Check:
    hashable = all(isinstance(e, str) for e in values)
    allowed = frozenset(values) if hashable else None
    text = _short(values)

    def check(v: Any, path: str, out: Problems) -> None:
        if allowed is not None:
            if type(v) is str and v in allowed:
                return
        elif any(_same(v, e) for e in values):
            return
        out.append((path, f"must be one of {text}"))

    return check


def _const_check(value: Any) -> Check:
    text = _short(value)

    def check(v: Any, path: str, out: Problems) -> None:
        if not _same(v, value):
            out.append((path, f"must be {text}"))

    return check


def _string_checks(schema: dict[str, Any]) -> list[Check]:
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    pattern = schema.get("pattern")
    checks: list[Check] = []
    if lo is not None or hi is not None:
        def length(v: Any, path: str, out: Problems) -> None:
            if type(v) is str:
                _bounds(len(v), lo, hi, path, "characters", out)

        checks.append(length)
    if isinstance(pattern, str):
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None

        def matches(v: Any, path: str, out: Problems) -> None:
            if type(v) is str and rx.search(v) is None:
                out.append((path, f"does not match the pattern {pattern}"))

        checks.append(matches)
    return checks


def _number_checks(schema: dict[str, Any]) -> list[Check]:
    bounds = [(k, schema[k]) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                       "multipleOf") if isinstance(schema.get(k), int | float)]
    if not bounds:
        return []

    def check(v: Any, path: str, out: Problems) -> None:
        if type(v) not in (int, float):
            return
        for key, b in bounds:
            if key == "minimum" and v < b:
                out.append((path, f"must be at least {b}"))
            elif key == "maximum" and v > b:
                out.append((path, f"must be at most {b}"))
            elif key == "exclusiveMinimum" and v <= b:
                out.append((path, f"must be greater than {b}"))
            elif key == "exclusiveMaximum" and v >= b:
                out.append((path, f"must be less than {b}"))
            elif key == "multipleOf" and b and (v / b) != int(v / b):
                out.append((path, f"must be a multiple of {b}"))

    return [check]


def _bounds(n: int, lo: Any, hi: Any, path: str, what: str, out: Problems) -> None:
    if lo is not None and n < lo:
        out.append((path, f"at least {lo} {what} needed, got {n}"))
    if hi is not None and n > hi:
        out.append((path, f"at most {hi} {what} allowed, got {n}"))


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """A checker for `schema`: `check(value, "$", problems)` appends every (path, reason).
    Raises ValueError for a schema it cannot compile (bad pattern, unresolvable $ref)."""
    return SchemaCompiler(schema).compile(dict(schema))
