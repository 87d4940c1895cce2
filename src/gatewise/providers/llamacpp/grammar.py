"""What the local model may output: JSON schemas and tool calls as llama.cpp grammars, and
stop sequences that end the text.

A small model cannot be trusted to follow "answer in JSON"; a grammar makes any other token
impossible, so the output parses by construction. A required tool call is the JSON object
`{"name": <const tool name>, "arguments": <that tool's parameters>}`, an `anyOf` over the
allowed tools. With `tool_choice: "auto"` nothing is constrained: the tools are described in
the system prompt and an answer that is such a JSON object for a declared tool becomes a tool
call. Converting a schema costs milliseconds of Python, so compiled grammars are kept in a
small LRU keyed by the schema's JSON.

Key order is kept, never sorted: a grammar writes an object's properties in the order the
schema lists them, and that order is the order the model generates in. Sorted, a tool call
became `{"arguments": ..., "name": ...}`, so the model had to write the arguments before it
had chosen the tool (a 1.5B model asked to move money filled in currencies and then named
the exchange-rate tool), and every argument object came out alphabetically.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gatewise.errors import InvalidRequestError
from gatewise.types.requests import (
    ChatRequest,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    Tool,
)

Mode = Literal["text", "json", "tool_required", "tool_auto"]

_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.DOTALL)
_TOOL_TAG = re.compile(r"^<tool_call>\s*(.*?)\s*(?:</tool_call>)?$", re.DOTALL)
_CALL_FORMAT = ('{"name": <tool name>, "arguments": <JSON object with the arguments>}')


@dataclass(frozen=True, slots=True)
class Plan:
    """How one request is generated: what constrains the output and what the model is told."""

    mode: Mode
    schema: Mapping[str, Any] | None = None
    instructions: str | None = None
    tool_names: tuple[str, ...] = ()


def plan_for(req: ChatRequest) -> Plan:
    tools = req.tools or []
    choice = req.tool_choice
    rf = req.response_format
    answer_schema: Mapping[str, Any] | None = None
    answer_text: str | None = None
    if isinstance(rf, ResponseFormatJSONSchema):
        answer_schema = rf.json_schema.schema or _ANY_OBJECT
        answer_text = ("Answer with only a JSON value that matches this JSON schema:\n"
                       + _dumps(answer_schema))
    elif isinstance(rf, ResponseFormatJSONObject):
        answer_schema = _ANY_OBJECT
        answer_text = "Answer with only a JSON object."
    if not tools or choice == "none":
        if answer_schema is None:
            return Plan("text")
        return Plan("json", answer_schema, answer_text)
    if isinstance(choice, NamedToolChoice):
        chosen = [t for t in tools if t.function.name == choice.function.name]
        return Plan("tool_required", _calls_schema(chosen), _describe(chosen, required=True),
                    tuple(t.function.name for t in chosen))
    names = tuple(t.function.name for t in tools)
    if choice == "required":
        return Plan("tool_required", _calls_schema(tools), _describe(tools, required=True), names)
    text = _describe(tools, required=False)
    if answer_schema is None:
        return Plan("tool_auto", None, text, names)
    # Either a tool call or the requested JSON answer, and nothing else.
    schema = {"anyOf": [*_call_schemas(tools), answer_schema]}
    return Plan("tool_auto", schema, f"{text}\n{answer_text}", names)


def tool_call_json(name: str, arguments: str) -> str:
    """A past tool call as the model is taught to write one, for flattening history."""
    try:
        args: Any = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        args = arguments
    return _dumps({"name": name, "arguments": args})


def parse_tool_calls(text: str, names: Sequence[str]) -> list[tuple[str, str]] | None:
    """[(name, arguments JSON)] when `text` is nothing but tool calls to declared tools."""
    s = text.strip()
    for pattern in (_FENCE, _TOOL_TAG):
        m = pattern.match(s)
        if m:
            s = m.group(1).strip()
    if not s.startswith(("{", "[")):
        return None
    try:
        data = json.loads(s)
    except json.JSONDecodeError:
        return None
    items = data if isinstance(data, list) else [data]
    calls: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict) or item.get("name") not in names:
            return None
        args = item.get("arguments", item.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict) or set(item) - {"name", "arguments", "parameters"}:
            return None
        calls.append((str(item["name"]), json.dumps(args, ensure_ascii=False,
                                                    separators=(",", ":"))))
    return calls or None


class GrammarCache:
    """LRU of compiled grammars; lives on the model's worker thread, so it needs no lock.

    `compile` turns schema JSON into a grammar object (llama-cpp's `LlamaGrammar`); `check`
    asks llama.cpp itself whether it parses, because a grammar it rejects would otherwise
    reach the sampler as a null pointer.
    """

    def __init__(self, compile: Callable[[str], Any], check: Callable[[str], bool], *,
                 maxsize: int = 64) -> None:
        self._compile = compile
        self._check = check
        self._maxsize = maxsize
        self._items: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, schema: Mapping[str, Any], *, param: str = "response_format") -> Any:
        key = json.dumps(schema, separators=(",", ":"))
        found = self._items.get(key)
        if found is not None:
            self.hits += 1
            self._items.move_to_end(key)
            return found
        self.misses += 1
        try:
            grammar = self._compile(key)
        except Exception as exc:  # the converter asserts on schema features it lacks
            raise InvalidRequestError(
                f"the local model cannot constrain output to this JSON schema "
                f"({type(exc).__name__}: {exc})", param=param) from None
        if not self._check(str(getattr(grammar, "_grammar", ""))):
            raise InvalidRequestError("the local model cannot constrain output to this JSON "
                                      "schema (llama.cpp rejected the grammar)", param=param)
        self._items[key] = grammar
        if len(self._items) > self._maxsize:
            self._items.popitem(last=False)
        return grammar


def _call_schemas(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    return [{
        "type": "object",
        "properties": {
            "name": {"const": t.function.name},
            "arguments": t.function.parameters or _ANY_OBJECT,
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    } for t in tools]


def _calls_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    schemas = _call_schemas(tools)
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _describe(tools: Sequence[Tool], *, required: bool) -> str:
    lines = ["You can call these tools:"]
    for t in tools:
        f = t.function
        desc = {"name": f.name, "description": f.description or "",
                "parameters": f.parameters or _ANY_OBJECT}
        lines.append(_dumps(desc))
    if required:
        lines.append(f"You must call a tool: answer with only {_CALL_FORMAT}.")
    else:
        lines.append(f"To call a tool, answer with only {_CALL_FORMAT} and nothing else. "
                     "If no tool is needed, answer normally.")
    return "\n".join(lines)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class StopText:
    """Generated text as it grows: decoded across split UTF-8 sequences, cut at the first stop
    sequence, and streamed only up to where a stop sequence could still begin."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = stops
        self.text = ""
        # The stop sequence that cut the text (the earliest in it), once one has.
        self.matched: str | None = None
        self._sent = 0
        self._cut = False
        self._longest = max((len(x) for x in stops), default=0)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, piece: bytes) -> bool:
        """Appends a token's bytes; True when a stop sequence has ended the text."""
        before = len(self.text)
        self.text += self._decoder.decode(piece)
        if not self.stops:
            return False
        start = max(0, before - self._longest + 1)
        hits = [(i, x) for i, x in ((self.text.find(x, start), x) for x in self.stops) if i >= 0]
        if hits:
            at, self.matched = min(hits, key=lambda h: h[0])
            self.text = self.text[:at]
            self._cut = True
        return self._cut

    def ready(self) -> str:
        """New text that no stop sequence can swallow any more."""
        held = 0
        for x in self.stops:
            for n in range(min(len(x) - 1, len(self.text)), held, -1):
                if self.text.endswith(x[:n]):
                    held = n
                    break
        safe = len(self.text) - held
        if safe <= self._sent:
            return ""
        piece, self._sent = self.text[self._sent:safe], safe
        return piece

    def close(self) -> str:
        """Whatever was still held back, once generation is over."""
        if not self._cut:
            self.text += self._decoder.decode(b"", final=True)
        piece, self._sent = self.text[self._sent:], len(self.text)
        return piece
