"""An evaluation set: one JSON object per line, read and checked before anything runs.

    {"id": "title-1", "kind": "title", "input": "..." | [messages],
     "tools": [...], "response_format": {...}, "max_tokens": 16,
     "expected": <checks>, "rubric": "what a judge should look for"}

`expected` says how the answer is scored; every check gives 0..1 and a pass, and an item's
score is the mean of its checks (a judge's score, with `--judge` and a `rubric`, is one more
check). A plain string means "similar in meaning to this" (embedding similarity). An object
combines any of:

- `exact`: the answer equals this (case, surrounding whitespace, quotes and a final period
  ignored); `contains`: each entry (a string, or a list of alternatives) appears in the
  answer, case-insensitively (score: the share found); `absent`: none of these appear;
  `regex`: the answer matches (Python `re.search`); `max_words`: at most this many words;
- `schema`: the answer is JSON (a code fence around it is allowed) valid under this schema;
- `tool`: `{"name": ..., "arguments": {...}}`: the first tool call has this name (half the
  score) and these argument values (the other half, per argument; strings compared
  case-insensitively; arguments not listed are not checked);
- `similar`: `"reference text"` or `{"text": ..., "min": 0.5}`: the answer's meaning is close
  to the reference (cosine of MiniLM embeddings, scaled so 0.2 -> 0 and 0.7 -> 1; passes at
  `min`).

A line that is not such an object is an `EvalSetError` naming the file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewise.errors import GatewayError, InvalidRequestError
from gatewise.types.jsonschema import SchemaError, compile_schema
from gatewise.types.validation import chat_request_from_dict

_ITEM_KEYS = frozenset({"id", "kind", "input", "tools", "tool_choice", "response_format",
                        "max_tokens", "expected", "rubric"})
_CHECK_KEYS = frozenset({"exact", "contains", "absent", "regex", "max_words", "schema", "tool",
                         "similar"})
DEFAULT_SIMILAR_MIN = 0.5


class EvalSetError(GatewayError):
    """The evaluation set cannot be used; the message names the file and the line."""

    status = 400
    error_type = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class Checks:
    exact: str | None = None
    contains: tuple[tuple[str, ...], ...] = ()
    absent: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    max_words: int | None = None
    schema: dict[str, Any] | None = None
    tool_name: str | None = None
    tool_arguments: dict[str, Any] = field(default_factory=dict)
    similar: str | None = None
    similar_min: float = DEFAULT_SIMILAR_MIN

    @property
    def empty(self) -> bool:
        return (self.exact is None and not self.contains and not self.absent
                and self.regex is None and self.max_words is None and self.schema is None
                and self.tool_name is None and self.similar is None)


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str
    kind: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]  # tools, tool_choice, response_format, max_tokens
    checks: Checks
    rubric: str | None = None
    line: int = 0


def _fail(where: str, message: str) -> EvalSetError:
    return EvalSetError(f"{where}: {message}")


def _strings(value: Any, where: str, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise _fail(where, f"expected.{key} must be a string or a list of non-empty strings")


def _checks(raw: Any, where: str) -> Checks:
    if raw is None:
        return Checks()
    if isinstance(raw, str):
        return Checks(similar=raw)
    if not isinstance(raw, dict):
        raise _fail(where, "'expected' must be a string or an object")
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        raise _fail(where, f"unknown check 'expected.{sorted(unknown)[0]}' (known: "
                           f"{', '.join(sorted(_CHECK_KEYS))})")
    kw: dict[str, Any] = {}
    if "exact" in raw:
        if not isinstance(raw["exact"], str):
            raise _fail(where, "expected.exact must be a string")
        kw["exact"] = raw["exact"]
    if "contains" in raw:
        entries = raw["contains"] if isinstance(raw["contains"], list) else [raw["contains"]]
        if not entries:
            raise _fail(where, "expected.contains must not be empty")
        kw["contains"] = tuple(tuple(_strings(e, where, "contains")) for e in entries)
    if "absent" in raw:
        kw["absent"] = tuple(_strings(raw["absent"], where, "absent"))
    if "regex" in raw:
        try:
            kw["regex"] = re.compile(raw["regex"])
        except (re.error, TypeError) as exc:
            raise _fail(where, f"expected.regex does not compile: {exc}") from None
    if "max_words" in raw:
        n = raw["max_words"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _fail(where, "expected.max_words must be a positive integer")
        kw["max_words"] = n
    if "schema" in raw:
        if not isinstance(raw["schema"], dict):
            raise _fail(where, "expected.schema must be a JSON Schema object")
        try:
            compile_schema(raw["schema"])
        except SchemaError as exc:
            raise _fail(where, f"expected.schema: {exc}") from None
        kw["schema"] = raw["schema"]
    if "tool" in raw:
        tool = raw["tool"]
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) \
                or not isinstance(tool.get("arguments", {}), dict) \
                or set(tool) - {"name", "arguments"}:
            raise _fail(where, "expected.tool must be {\"name\": str, \"arguments\": {...}}")
        kw["tool_name"] = tool["name"]
        kw["tool_arguments"] = dict(tool.get("arguments", {}))
    if "similar" in raw:
        sim = raw["similar"]
        if isinstance(sim, dict) and isinstance(sim.get("text"), str) \
                and isinstance(sim.get("min", DEFAULT_SIMILAR_MIN), int | float):
            kw["similar"], kw["similar_min"] = sim["text"], float(sim.get("min",
                                                                          DEFAULT_SIMILAR_MIN))
        elif isinstance(sim, str):
            kw["similar"] = sim
        else:
            raise _fail(where, "expected.similar must be a string or {\"text\": str, "
                               "\"min\": number}")
    return Checks(**kw)


def parse_item(data: Any, where: str, line: int = 0) -> EvalItem:
    """One line's object as an `EvalItem` (its request checked like a client's)."""
    if not isinstance(data, dict):
        raise _fail(where, "each line must be a JSON object")
    unknown = set(data) - _ITEM_KEYS
    if unknown:
        raise _fail(where, f"unknown key '{sorted(unknown)[0]}' (known: "
                           f"{', '.join(sorted(_ITEM_KEYS))})")
    item_id, kind = data.get("id"), data.get("kind")
    if not isinstance(item_id, str) or not item_id:
        raise _fail(where, "'id' must be a non-empty string")
    if not isinstance(kind, str) or not kind:
        raise _fail(where, "'kind' must be a non-empty string (title, tool_call, answer, ...)")
    raw_input = data.get("input")
    if isinstance(raw_input, str) and raw_input:
        messages: list[dict[str, Any]] = [{"role": "user", "content": raw_input}]
    elif isinstance(raw_input, list) and raw_input:
        messages = raw_input
    else:
        raise _fail(where, "'input' must be a non-empty string or a list of messages")
    params = {k: data[k] for k in ("tools", "tool_choice", "response_format", "max_tokens")
              if data.get(k) is not None}
    try:
        chat_request_from_dict({"model": "eval", "messages": messages, **params})
    except InvalidRequestError as exc:
        param = f" ({exc.param})" if exc.param else ""
        raise _fail(where, f"not a valid chat request{param}: {exc}") from None
    rubric = data.get("rubric")
    if rubric is not None and (not isinstance(rubric, str) or not rubric.strip()):
        raise _fail(where, "'rubric' must be a non-empty string")
    checks = _checks(data.get("expected"), where)
    if checks.empty and rubric is None:
        raise _fail(where, "nothing to score: give 'expected' or a 'rubric'")
    return EvalItem(item_id, kind, messages, params, checks, rubric, line)


def load_eval_set(path: str | Path, *, limit: int | None = None) -> list[EvalItem]:
    """Every item of a JSONL file (blank lines and `#` comments skipped), checked."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"{p}: cannot read the evaluation set: {exc}") from None
    items: list[EvalItem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{p}:{n}"
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise _fail(where, f"not valid JSON ({exc})") from None
        item = parse_item(data, where, n)
        if item.id in seen:
            raise _fail(where, f"id {item.id!r} is already used on line {seen[item.id]}")
        seen[item.id] = n
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise EvalSetError(f"{p}: the evaluation set has no items")
    return items
