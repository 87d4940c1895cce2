"""How deeply a JSON document nests, checked on the raw bytes before anything parses it.

Why at all: every parser and walker of request data recurses, one Python (or C) frame per
level: msgspec's decoder, the JSON-schema checks, the PII walk over tool arguments, the
encoders that size tool definitions, `json.loads` in the adapters. 2,000 levels in a free-form
field (`prediction`, a tool's `parameters`) is a `RecursionError`, i.e. a 500, and a few hundred
still break a walker further down. A request nested deeper than `server.max_json_depth`
(default `MAX_JSON_DEPTH`) is refused at the edge with a 400, so nothing after it meets more
levels than that. Strings that are JSON themselves (tool-call arguments, tool results, which
adapters parse) are held to the same limit by `check_chat_request`.

Why on the raw bytes: the check must cost next to nothing on the hot path, and parsing first
would be the very recursion it guards against. `json_too_deep` does a handful of C-speed
passes (`bytes.count`, `translate`, `replace`) and no Python loop per byte: strings are
dropped (their brackets do not nest anything), what is left is brackets only, and each
`replace(b"[]", b"")` pass removes exactly one level. Measured on the 2-core dev machine: a
2 KB chat body ~1.5 µs (msgspec's decode of it: ~2 µs); 1 MB bodies 0.2-0.8 ms without
escaped quotes, ~2-5 ms with tens of thousands of them (they are taken out of the whole body
first); 1 MB of brackets built to be slow, 1.5-3.5 ms. Bodies that are not JSON may be misjudged either way;
the decoder refuses them regardless.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

import msgspec

MAX_JSON_DEPTH = 64
# The highest `server.max_json_depth` an operator may set. Walkers take at most two Python
# frames per level (a function and its comprehension), so 128 levels stay far inside Python's
# default recursion limit of 1000 however deep the server's own stack already is.
MAX_JSON_DEPTH_LIMIT = 128

_KEEP = b'"[]{}\\'
_SMALL = 8192  # up to here, counting brackets first is cheaper than reducing the body
_DROP = bytes(c for c in range(256) if c not in _KEEP)
_SQUARE = bytes.maketrans(b"{}", b"[]")
_SIGN = bytes.maketrans(b"[]", b"\x01\xff")  # +1 / -1 once read as signed bytes
_STRING = re.compile(rb'"[^"]*"')
# Passes of `replace` before switching to one linear prefix-sum: typical JSON is done by then.
_PASSES = 8
# The error path (`deep_json_path`) walks tokens in Python: past this many (~70 ms) it gives
# up, and the error names no field.
_LOCATE_TOKENS = 200_000
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')
_PATH_PARTS = 6


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` nests more than `limit` arrays/objects inside each other
    (the outermost counts as 1). Exact for valid JSON; linear in the body's size."""
    if len(body) <= _SMALL and body.count(b"[") + body.count(b"{") <= limit:
        return False  # not enough brackets anywhere to be that deep: most requests end here
    # Quotes, backslashes and brackets only, braces as brackets: a few per cent of the body.
    s = body.translate(_SQUARE, _DROP)
    if b"\\" in s:
        # Escapes matter only as `\\` and `\"` (the others cannot end a string); the short
        # string shows whether the body may have any (it never misses one). If so, escaped
        # backslashes go first, then escaped quotes, from the body itself: valid JSON has no
        # backslash outside strings, so pairing from the left is right.
        pairs = b"\\\\" in s
        if pairs or b'\\"' in s:
            if pairs:
                body = body.replace(b"\\\\", b"")
            s = body.replace(b'\\"', b"").translate(_SQUARE, _DROP)
        s = s.replace(b"\\", b"")
    # Adjacent quotes (empty strings, or a string's end next to the next one's start) go
    # without changing what is inside a string; what is left between quotes is inside one.
    s = s.replace(b'""', b"")
    if b'"' in s:
        s = _STRING.sub(b"", s)
    if s.count(b"[") <= limit:
        return False
    passes = min(_PASSES, limit)
    for done in range(passes):
        if b"[" * (limit + 1 - done) in s:
            return True  # that many opened in a row: deeper than `limit`, however it goes on
        shorter = s.replace(b"[]", b"")  # drops every innermost pair: exactly one level
        if len(shorter) == len(s):
            return False  # unbalanced: not JSON, and the decoder says so
        s = shorter
        if not s:
            return False
    # Still more levels than the passes took: one exact prefix sum over what is left.
    return max(accumulate(array("b", s.translate(_SIGN)))) > limit - passes


def object_too_deep(value: Any, limit: int) -> bool:
    """`json_too_deep` for Python values (the library's free-form arguments): dicts, lists
    and tuples nested more than `limit` levels. Iterative, so it cannot overflow itself (a
    value that contains itself is simply too deep)."""
    if not isinstance(value, dict | list | tuple):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | tuple))
    return False


def deep_json_path(body: bytes, limit: int) -> str | None:
    """The field where a too-deep `body` first goes past `limit` levels, as an OpenAI `param`
    (`tools[0].function.parameters.properties.a`, at most a few parts); None when the body is
    not an object or too long to walk. Only called on the error path."""
    frames: list[list[Any]] = []  # per open container: [is_object, current key or index]
    last = b'""'
    for n, m in enumerate(_TOKEN.finditer(body)):
        if n >= _LOCATE_TOKENS:
            return None
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            last = tok
        elif c in (b"[", b"{"):
            if len(frames) >= limit:
                return _path(frames)
            frames.append([c == b"{", None if c == b"{" else 0])
        elif c in (b"]", b"}"):
            if frames:
                frames.pop()
        elif c == b":":
            if frames and frames[-1][0]:
                frames[-1][1] = last
        elif frames and not frames[-1][0]:  # a comma in an array
            frames[-1][1] += 1
    return None


def _path(frames: list[list[Any]]) -> str | None:
    if not frames or not frames[0][0]:
        return None
    parts: list[str] = []
    for is_object, at in frames[:_PATH_PARTS]:
        if is_object:
            if at is None:
                break
            try:
                key = msgspec.json.decode(at, type=str)
            except msgspec.MsgspecError:
                key = "?"
            parts.append(("." if parts else "") + key[:64])
        else:
            parts.append(f"[{at}]")
    return "".join(parts) or None
