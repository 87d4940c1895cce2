"""A small JSON-schema validator for the subset structured outputs and tool parameters use.

Written here instead of adding a dependency: the cascade's `json_schema` and `tool_calls_valid`
gates need "does this answer match the schema the caller sent, and if not, where", on schemas
that are small and already checked for shape at the edge. Errors name the JSON path
(`$.items[2].name`) so a cascade trail says exactly why an answer was rejected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object" if isinstance(v, dict) else type(v).__name__


def _is(v: Any, t: str) -> bool:
    k = _kind(v)
    if t == "number":
        return k in ("integer", "number")
    if t == "integer":
        return k == "integer" or (k == "number" and float(v).is_integer())
    return k == t


def _same(a: Any, b: Any) -> bool:
    """JSON equality: True is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def resolve_ref(ref: str, root: Mapping[str, Any]) -> Any:
    """A local `$ref` (`#`, `#/$defs/x`) inside `root`; None for anything else."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node


def schema_errors(value: Any, schema: Any, root: Mapping[str, Any] | None = None,
                  path: str = "$", depth: int = 0) -> str | None:
    """The first way `value` breaks `schema`, or None. Supports type (a list of types, i.e.
    nullable, too), properties, required, additionalProperties, items, enum, const, anyOf /
    oneOf / allOf, local `$ref` (`#/$defs/...`), `nullable`, and the min/max keywords.
    Unknown keywords (format, pattern, ...) are not checked."""
    if schema is True or schema is None:
        return None
    if schema is False:
        return f"{path}: no value is allowed here"
    if not isinstance(schema, dict) or depth > 64:
        return None
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = resolve_ref(ref, root)
        if target is None:
            return f"{path}: unresolvable $ref {ref}"
        err = schema_errors(value, target, root, path, depth + 1)
        if err:
            return err
    if value is None and schema.get("nullable") is True:
        return None
    for key in ("anyOf", "oneOf"):
        subs = schema.get(key)
        if isinstance(subs, list) and subs and all(
                schema_errors(value, s, root, path, depth + 1) for s in subs):
            return f"{path}: matches none of the {key} alternatives"
    for s in schema.get("allOf") or ():
        err = schema_errors(value, s, root, path, depth + 1)
        if err:
            return err
    t = schema.get("type")
    if t is not None:
        types = [t] if isinstance(t, str) else list(t)
        if not any(_is(value, x) for x in types):
            return f"{path}: expected {' or '.join(types)}, got {_kind(value)}"
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        return f"{path}: {json_short(value)} is not one of {json_short(schema['enum'])}"
    if "const" in schema and not _same(value, schema["const"]):
        return f"{path}: must be {json_short(schema['const'])}"
    if isinstance(value, dict):
        return _object_errors(value, schema, root, path, depth)
    if isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            err = schema_errors(item, items, root, f"{path}[{i}]", depth + 1)
            if err:
                return err
        return _bounds(len(value), schema, "minItems", "maxItems", path, "items")
    if isinstance(value, str):
        return _bounds(len(value), schema, "minLength", "maxLength", path, "characters")
    if _kind(value) in ("integer", "number"):
        return _number_errors(value, schema, path)
    return None


def _object_errors(value: dict[str, Any], schema: dict[str, Any], root: Mapping[str, Any],
                   path: str, depth: int) -> str | None:
    for name in schema.get("required") or ():
        if name not in value:
            return f"{path}: missing required property '{name}'"
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for k, v in value.items():
        sub = props.get(k)
        if sub is None:
            if extra is False:
                return f"{path}: unexpected property '{k}'"
            sub = extra
        err = schema_errors(v, sub, root, f"{path}.{k}", depth + 1)
        if err:
            return err
    return _bounds(len(value), schema, "minProperties", "maxProperties", path, "properties")


def _bounds(n: int, schema: dict[str, Any], lo: str, hi: str, path: str, what: str) -> str | None:
    if lo in schema and n < schema[lo]:
        return f"{path}: at least {schema[lo]} {what} needed, got {n}"
    if hi in schema and n > schema[hi]:
        return f"{path}: at most {schema[hi]} {what} allowed, got {n}"
    return None


def _number_errors(v: float, schema: dict[str, Any], path: str) -> str | None:
    if "minimum" in schema and v < schema["minimum"]:
        return f"{path}: {v} is below the minimum {schema['minimum']}"
    if "maximum" in schema and v > schema["maximum"]:
        return f"{path}: {v} is above the maximum {schema['maximum']}"
    if "exclusiveMinimum" in schema and v <= schema["exclusiveMinimum"]:
        return f"{path}: {v} must be above {schema['exclusiveMinimum']}"
    if "exclusiveMaximum" in schema and v >= schema["exclusiveMaximum"]:
        return f"{path}: {v} must be below {schema['exclusiveMaximum']}"
    return None


def json_short(v: Any, limit: int = 60) -> str:
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit - 3] + "..."
