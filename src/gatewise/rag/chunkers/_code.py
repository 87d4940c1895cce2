"""Finding the syntactic blocks of source code: line ranges with the symbol they define.

Python is parsed with `ast`: every top-level function and class is a block that starts at its
first decorator (or at the comment lines right above it) and ends at its last line; the
module-level statements between them form blocks of their own. A class too large for one
chunk is opened the same way: its header (signature, docstring, attributes) and then each
method. Code that does not parse (a Python 2 file, a fragment) falls back to the heuristic.

Other languages use a heuristic that holds for brace languages (C, Go, Rust, Java, JS/TS)
and keyword-and-indentation ones (Ruby, shell): a block starts at a line with no indentation,
outside any open bracket (string literals and comments are skipped when counting brackets),
that opens a definition (`def`, `func`, `fn`, `class`, `function`, `impl`, ...) or follows
a blank line or a closed block. Comment lines right above a start go with it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

_DEFINITION = re.compile(
    r"^(?:export\s+)?(?:default\s+)?(?:pub(?:\([\w:]+\))?\s+)?(?:async\s+)?(?:static\s+)?"
    r"(?:public\s+|private\s+|protected\s+|internal\s+|abstract\s+|final\s+|unsafe\s+)*"
    r"(?:def|func|fn|function|class|struct|enum|interface|impl|trait|type|module|package|"
    r"const|let|var|sub|proc|object|macro_rules!|template|namespace|union)\b")
_CLOSERS = ("}", ")", "]", "end", "fi", "done", "esac", "else", "elif", "catch", "finally")
_COMMENT = ("#", "//", "/*", "*", "--", ";", "%", "'''", '"""')
# In C-like languages `#` starts a preprocessor line (`#include`), not a comment.
_COMMENT_NO_HASH = _COMMENT[1:]
_DOUBLE = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`')
_SINGLE = re.compile(r"'(?:\\.|[^'\\])*'")
_CHAR = re.compile(r"'(?:\\.|[^'\\]){1,4}'")
_LINE_COMMENT = {"python": "#", "ruby": "#", "shell": "#", "perl": "#", "r": "#", "yaml": "#",
                 "toml": "#", "elixir": "#", "julia": "#", "sql": "--", "lua": "--",
                 "haskell": "--"}
_NAME = re.compile(r"\b(?:def|func|fn|function|class|struct|enum|interface|impl|trait|type|"
                   r"module|sub|proc|object|namespace)\s+(?:\([^)]*\)\s*)?([\w.$:<>]+)")


@dataclass(frozen=True, slots=True)
class Block:
    """Lines `first`..`last` (0-based, inclusive, relative to the section's text)."""

    first: int
    last: int
    symbol: str | None = None
    node: ast.AST | None = None


def _above(lines: list[str], start: int, floor: int,
           markers: tuple[str, ...] = _COMMENT) -> int:
    """`start` moved up over the comment lines right above it (not past `floor`)."""
    while start - 1 >= floor and lines[start - 1].strip().startswith(markers):
        start -= 1
    return start


def _partition(starts: list[tuple[int, str | None, ast.AST | None]], first: int,
               last: int) -> list[Block]:
    starts = sorted(s for s in starts if first <= s[0] <= last)
    if not starts or starts[0][0] > first:
        starts.insert(0, (first, None, None))
    blocks: list[Block] = []
    for k, (line, symbol, node) in enumerate(starts):
        end = starts[k + 1][0] - 1 if k + 1 < len(starts) else last
        if end >= line:
            blocks.append(Block(line, end, symbol, node))
    return blocks


def python_body(body: list[ast.stmt], lines: list[str], first: int, last: int,
                prefix: str = "", *, header: bool = False) -> list[Block]:
    """Blocks of a module's (or, with `header`, a class's) body, covering lines
    `first`..`last`. A class's statements before its first method stay with its header."""
    starts: list[tuple[int, str | None, ast.AST | None]] = []
    previous_end = first - 1
    after_definition = not header
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            line = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            starts.append((_above(lines, line, previous_end + 1), prefix + node.name, node))
            after_definition = True
        else:
            if after_definition:
                starts.append((node.lineno - 1, None, None))
            after_definition = False
        previous_end = (node.end_lineno or node.lineno) - 1
    return _partition(starts, first, last)


def python_blocks(text: str, lines: list[str]) -> list[Block] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return python_body(tree.body, lines, 0, len(lines) - 1)


def class_blocks(block: Block, lines: list[str]) -> list[Block]:
    """An oversized Python class opened into its header and its methods."""
    node = block.node
    assert isinstance(node, ast.ClassDef)
    name = block.symbol or node.name
    inner = python_body(node.body, lines, block.first, block.last, prefix=f"{name}.", header=True)
    return [Block(b.first, b.last, b.symbol or name, b.node) for b in inner]


def _bracket_delta(line: str, language: str, in_comment: bool) -> tuple[int, bool]:
    """Net open brackets on a line (strings and comments skipped); whether a /* */ comment
    is still open at its end."""
    if in_comment:
        end = line.find("*/")
        if end < 0:
            return 0, True
        line = line[end + 2:]
    line = _DOUBLE.sub("", line)
    line = (_CHAR if language == "rust" else _SINGLE).sub("", line)
    marker = _LINE_COMMENT.get(language, "//")
    cut = line.find(marker)
    if cut >= 0:
        line = line[:cut]
    opened = line.find("/*")
    still_open = False
    if opened >= 0 and marker == "//":
        closed = line.find("*/", opened + 2)
        still_open = closed < 0
        line = line[:opened] + ("" if still_open else line[closed + 2:])
    delta = sum(line.count(c) for c in "{([") - sum(line.count(c) for c in "})]")
    return delta, still_open


_CALL_NAME = re.compile(r"([A-Za-z_]\w*)\s*$")
_NOT_A_NAME = frozenset({"if", "for", "while", "switch", "return", "sizeof", "catch", "elif"})


def _symbol(line: str) -> str | None:
    """The name a top-level line defines: after a keyword (`func Name`, `class Name`), else
    the identifier before the first `(` (a C-style `static int add(int a)`)."""
    found = _NAME.search(line)
    if found:
        return found.group(1)
    paren = line.find("(")
    if paren > 0:
        call = _CALL_NAME.search(line, 0, paren)
        if call and call.group(1) not in _NOT_A_NAME:
            return call.group(1)
    return None


def heuristic_blocks(lines: list[str], language: str) -> list[Block]:
    markers = _COMMENT if _LINE_COMMENT.get(language) == "#" else _COMMENT_NO_HASH
    starts: list[tuple[int, str | None, ast.AST | None]] = []
    depth, in_comment, previous_blank, previous_closed = 0, False, True, True
    last_start = -1
    for index, line in enumerate(lines):
        stripped = line.strip()
        top = (depth == 0 and not in_comment and bool(stripped) and line[:1] not in " \t"
               and not stripped.startswith(_CLOSERS) and not stripped.startswith(markers))
        if top and index > 0 and (previous_blank or previous_closed or _DEFINITION.match(stripped)):
            start = _above(lines, index, last_start + 1, markers)
            starts.append((start, _symbol(stripped), None))
            last_start = start
        comment = depth == 0 and not in_comment and stripped.startswith(markers)
        delta, in_comment = _bracket_delta(line, language, in_comment)
        depth = max(0, depth + delta)
        if not comment:  # a comment keeps what came before it (a blank line, a closed block)
            previous_blank = not stripped
            previous_closed = depth == 0 and stripped.startswith(_CLOSERS[:7]) and delta <= 0
    return _partition(starts, 0, len(lines) - 1)
