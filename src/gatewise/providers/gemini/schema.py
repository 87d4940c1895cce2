"""JSON schema → Gemini's `Schema`, the OpenAPI 3.0 subset used by `functionDeclarations
.parameters` and `generationConfig.responseSchema`.

Gemini answers 400 to keys outside that subset (`additionalProperties`, `$schema`, `$ref`,
`strict`, most `format`s, non-string enums), so schemas written for OpenAI are rewritten here
rather than rejected: refs are inlined, `["T", "null"]` becomes `nullable`, and unsupported
keys are dropped. Type names are written as the `Type` enum spells them (`OBJECT`, `STRING`).
"""

from __future__ import annotations

from typing import Any

# Keys the subset accepts besides type/properties/items/anyOf/enum/format/nullable.
_KEEP = ("title", "description", "minItems", "maxItems", "minLength", "maxLength",
         "pattern", "minimum", "maximum", "minProperties", "maxProperties",
         "propertyOrdering", "default", "example")
_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"},
            "NUMBER": {"float", "double"}}


def to_gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON schema → Gemini's OpenAPI-subset `Schema`: refs inlined, type lists turned into
    `nullable`, keys Gemini rejects (`additionalProperties`, `$schema`, `strict`, ...) dropped."""
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _schema_node(schema, defs, 0)


def _schema_node(node: Any, defs: dict[str, Any], depth: int) -> dict[str, Any]:
    if not isinstance(node, dict) or depth > 24:
        return {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _schema_node({**defs.get(ref.rsplit("/", 1)[-1], {}), **rest}, defs, depth + 1)
    out: dict[str, Any] = {}
    nullable = False
    t = node.get("type")
    if isinstance(t, list):
        kinds = [x for x in t if x != "null"]
        nullable = len(kinds) < len(t)
        t = kinds[0] if len(kinds) == 1 else None
        if len(kinds) > 1:
            out["anyOf"] = [{"type": k.upper()} for k in kinds if isinstance(k, str)]
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        real = [v for v in variants if not (isinstance(v, dict) and v.get("type") == "null")]
        nullable = nullable or len(real) < len(variants)
        if len(real) == 1:
            out.update(_schema_node(real[0], defs, depth + 1))
        elif real:
            out["anyOf"] = [_schema_node(v, defs, depth + 1) for v in real]
    all_of = node.get("allOf")
    if isinstance(all_of, list):
        for sub in all_of:
            out.update(_schema_node(sub, defs, depth + 1))
    if isinstance(t, str) and t != "null":
        out["type"] = t.upper()
    enum = node.get("enum")
    if "const" in node:
        enum = [node["const"]]
    if isinstance(enum, list) and enum and all(isinstance(e, str) for e in enum):
        out.setdefault("type", "STRING")
        out["enum"] = enum
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    for key in _KEEP:
        if key in node:
            out[key] = node[key]
    props = node.get("properties")
    if isinstance(props, dict):
        out.setdefault("type", "OBJECT")
        out["properties"] = {k: _schema_node(v, defs, depth + 1) for k, v in props.items()}
        required = [r for r in node.get("required", []) if r in props]
        if required:
            out["required"] = required
    if "items" in node:
        out.setdefault("type", "ARRAY")
        out["items"] = _schema_node(node["items"], defs, depth + 1)
    if nullable:
        out["nullable"] = True
    return out
