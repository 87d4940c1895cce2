"""Cheap per-response scores, 0 (bad) to 1 (good), computed on every answer without a model.

Why these and how: an operator wants to know whether answers are getting worse long before a
user complains, and the signals that cost nothing are mechanical. Each score is computed only
when it applies, in time linear in the answer (plus the supplied context, for groundedness):

- `validity`: the share of machine-checkable parts of the answer that check out. Parts are
  the whole content when `response_format` asked for JSON (it must parse; against the given
  JSON schema it must also validate), each tool call (its arguments must parse as a JSON
  object, name a tool the request offered, and fit that tool's parameter schema), and each
  fenced code block (Python through `ast.parse`, JSON through the JSON parser, anything else
  by balanced brackets outside string literals). No such part: no validity score.
- `groundedness`: the share of the answer's sentences supported by the context the caller
  supplied (tool results, system/developer/user messages named as context, `metadata.context`;
  `guardrails.output.GroundednessCheck`), or the knowledge-base answer's own groundedness when
  the call was answered from a collection (`completion.rag`). No context: no score.
- `toxicity`: 1 when the answer is clean, 1/(1+n) with n profane or abusive words
  (`guardrails.output.ToxicityCheck`'s whole-word, leetspeak-aware matching). No text: no score.

Only the first choice is scored (`n > 1` is rare, and one number per request is what the
records and the dashboards compare). Schemas are compiled once per distinct schema and kept
in a bounded map on the scorer, so a client sending the same schema every time pays for
validation only; supplied contexts are indexed once per distinct context, the same way.
"""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from gatewise.guardrails.output.checks import (
    CONTEXT_NAMES,
    GroundednessCheck,
    ToxicityCheck,
    context_of,
)
from gatewise.types.jsonschema import SchemaError, Validator, compile_schema
from gatewise.types.messages import DeveloperMessage, ToolCall, text_of
from gatewise.types.requests import (
    ChatRequest,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
)
from gatewise.types.responses import ChatCompletion

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder(order="sorted").encode
# A fenced block: ``` + language, the body, a closing ``` line (as `guardrails.output.CodeCheck`).
_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_PYTHON = frozenset({"python", "py", "python3"})
_JSON = frozenset({"json"})
# Languages where brackets say nothing about validity (prose, data without nesting).
_UNCHECKED = frozenset({"", "text", "txt", "plain", "plaintext", "markdown", "md", "diff",
                        "console", "output", "log", "csv", "ini", "toml", "yaml", "yml",
                        "shell-session"})
# String literals whose brackets don't count: "…", `…`, and short character literals ('(').
_STRINGS = re.compile(r'"(?:\\.|[^"\\\n])*"|`(?:\\.|[^`\\])*`|\'(?:\\.|[^\'\\\n]){1,2}\'')
_PAIRS = {")": "(", "]": "[", "}": "{"}
_MAX_SCHEMAS = 256
# Contexts indexed and kept: 16 of up to 16,000 characters each (~2,500 words; under 0.5 MB
# of terms and word pairs each, so under 8 MB in all); a longer context is indexed per answer.
_MAX_CONTEXTS = 16
_MAX_CACHED_CONTEXT = 16_000


def brackets_balance(code: str) -> bool:
    """Every (, [ and { closed in order, outside string literals."""
    stack: list[str] = []
    for ch in _STRINGS.sub("", code):
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS and (not stack or stack.pop() != _PAIRS[ch]):
            return False
    return not stack


def code_block_valid(lang: str, body: str) -> bool | None:
    """Whether a fenced block parses; None when its language is not judged."""
    lang = lang.lower()
    if lang in _PYTHON:
        try:
            ast.parse(body)
        except (SyntaxError, ValueError):  # ValueError: a NUL byte in the source
            return False
        return True
    if lang in _JSON:
        try:
            _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return False
        return True
    if lang in _UNCHECKED:
        return None
    return brackets_balance(body)


def supplied_context(request: ChatRequest) -> list[str]:
    """What the answer should be grounded in: `context_of` (tool results, system/user
    messages named as context, `metadata.context`) plus developer messages named so."""
    parts = context_of(request)
    for m in request.messages:
        if isinstance(m, DeveloperMessage) and (m.name or "").lower() in CONTEXT_NAMES:
            parts.append(text_of(m.content))
    return parts


class ResponseScorer:
    """Built once per gateway (word lists loaded, regexes compiled); `score` is then pure but
    for the bounded schema map."""

    def __init__(self, *, validity: bool = True, groundedness: bool = True,
                 toxicity: bool = True, toxicity_check: ToxicityCheck | None = None,
                 groundedness_check: GroundednessCheck | None = None) -> None:
        self.validity_on = validity
        self.groundedness_on = groundedness
        self.toxicity_on = toxicity
        self._toxic = (toxicity_check or ToxicityCheck()) if toxicity else None
        self._grounded = groundedness_check or GroundednessCheck()
        # Schema (canonical JSON) -> its validator, or None when the schema is unusable.
        self._schemas: OrderedDict[bytes, Validator | None] = OrderedDict()
        # Context texts -> their indexed terms (see `_context_index`).
        self._contexts: OrderedDict[tuple[str, ...], tuple[frozenset[str],
                                                            frozenset[tuple[str, str]]]] = \
            OrderedDict()

    def score(self, request: ChatRequest, completion: ChatCompletion) -> dict[str, float]:
        """Every applicable score of the first choice's answer."""
        if not completion.choices:
            return {}
        msg = completion.choices[0].message
        text = msg.content or ""
        out: dict[str, float] = {}
        if self.validity_on:
            v = self.validity(request, text, msg.tool_calls or ())
            if v is not None:
                out["validity"] = v
        if self.groundedness_on and text:
            rag = completion.rag if isinstance(completion.rag, dict) else None
            g = self.groundedness(request, text, rag)
            if g is not None:
                out["groundedness"] = g
        if self._toxic is not None and text:
            out["toxicity"] = self.toxicity(text)
        return out

    # -- the scores ----------------------------------------------------------------------------
    def validity(self, request: ChatRequest, text: str,
                 tool_calls: Sequence[ToolCall]) -> float | None:
        passed = checked = 0
        fmt = request.response_format
        if isinstance(fmt, ResponseFormatJSONObject | ResponseFormatJSONSchema) and not tool_calls:
            checked += 1
            passed += self._json_valid(text, fmt)
        elif "```" in text:
            for m in _FENCE.finditer(text):
                ok = code_block_valid(m.group(1), m.group(2))
                if ok is not None:
                    checked += 1
                    passed += ok
        if tool_calls:
            offered = {t.function.name: t.function.parameters for t in request.tools or ()}
            for tc in tool_calls:
                checked += 1
                passed += self._tool_call_valid(tc, offered)
        return passed / checked if checked else None

    def groundedness(self, request: ChatRequest, text: str,
                     rag: Mapping[str, Any] | None = None) -> float | None:
        if rag is not None:
            # A knowledge-base answer judged itself against its sources; a not-found answer
            # has nothing to be grounded in.
            g = rag.get("groundedness")
            return float(g) if isinstance(g, int | float) else None
        context = supplied_context(request)
        if not context:
            return None
        got = self._grounded.score_indexed(text, *self._context_index(context))
        return None if got is None else got[0]

    def toxicity(self, text: str) -> float:
        assert self._toxic is not None
        return 1.0 / (1 + len(self._toxic.matches(text)))

    # -- helpers -------------------------------------------------------------------------------
    def _json_valid(self, text: str, fmt: ResponseFormatJSONObject | ResponseFormatJSONSchema
                    ) -> bool:
        try:
            value = _decode(text)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return False
        if isinstance(fmt, ResponseFormatJSONObject):
            return isinstance(value, dict)
        schema = fmt.json_schema.schema
        if schema is None:
            return True
        validator = self._validator(schema)
        return validator is not None and validator.is_valid(value)

    def _tool_call_valid(self, tc: ToolCall, offered: Mapping[str, dict[str, Any] | None]
                         ) -> bool:
        name = tc.function.name
        if name not in offered:
            return False
        raw = tc.function.arguments
        try:
            args = _decode(raw) if raw.strip() else {}
        except (msgspec.DecodeError, UnicodeDecodeError):
            return False
        if not isinstance(args, dict):
            return False
        schema = offered[name]
        if schema is None:
            return True
        validator = self._validator(schema)
        return validator is not None and validator.is_valid(args)

    def _context_index(self, context: list[str]) -> tuple[frozenset[str],
                                                         frozenset[tuple[str, str]]]:
        """The context's terms, kept for contexts up to `_MAX_CACHED_CONTEXT` characters: a
        deployment usually sends the same documents with every request, so the cost per
        answer stays linear in the answer."""
        if sum(map(len, context)) > _MAX_CACHED_CONTEXT:
            return self._grounded.index(context)
        key = tuple(context)
        cache = self._contexts
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
            return found
        found = cache[key] = self._grounded.index(context)
        if len(cache) > _MAX_CONTEXTS:
            cache.popitem(last=False)
        return found

    def _validator(self, schema: dict[str, Any]) -> Validator | None:
        key = _encode(schema)
        cache = self._schemas
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        try:
            validator: Validator | None = compile_schema(schema)
        except SchemaError:
            validator = None  # a schema nothing can satisfy: the answer cannot be valid
        cache[key] = validator
        if len(cache) > _MAX_SCHEMAS:
            cache.popitem(last=False)
        return validator
