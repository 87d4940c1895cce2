"""What every fake answers, independent of wire format: the reply text, tool-call arguments
built from a schema, and the fake's own token count (the 'upstream truth' tests compare to)."""

from __future__ import annotations

import json
from typing import Any


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def reply_for(user_text: str) -> str:
    return f"Hello! You said: {user_text}" if user_text else "Hello! How can I help you today?"


def count_tokens(text: str) -> int:
    """The fakes' tokenizer: whitespace words. Deterministic, so tests can predict usage."""
    return max(1, len(text.split())) if text else 0


def sample_for_schema(schema: dict[str, Any] | None) -> Any:
    """A value that validates against a (simple) JSON schema."""
    if not schema:
        return {}
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return sample_for_schema(schema[key][0])
    t = schema.get("type", "object")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "object":
        props = schema.get("properties", {})
        return {k: sample_for_schema(v) for k, v in props.items()}
    if t == "array":
        return [sample_for_schema(schema.get("items", {"type": "string"}))]
    if t == "string":
        return "sample"
    if t == "integer":
        return 42
    if t == "number":
        return 3.5
    if t == "boolean":
        return True
    return None


def sample_arguments(schema: dict[str, Any] | None) -> str:
    return json.dumps(sample_for_schema(schema or {"type": "object"}))


def words(text: str) -> list[str]:
    """Splits text into stream pieces that join back to exactly the text."""
    parts = text.split(" ")
    return [p if i == len(parts) - 1 else p + " " for i, p in enumerate(parts)]
