"""The first letters every match of a phrase pattern must begin with, so the multilingual layer
can tell with one set lookup which languages (and which parts of a language) could match a text
at all, instead of running every language's regular expressions over every text: two dozen
alternations of a hundred phrases each cost more per kilobyte than all the other layers together.

`pattern_heads` reads the literal letters at the start of each alternative of a pattern (through
`(?:...)` groups, leading look-behinds and `\\b`); a pattern whose start it cannot read (a character
class, an optional first letter) gets None and is always scanned. `text_heads` collects the same
prefixes at every word start of a text. A pattern can match only if the two sets meet. Pure
functions; no state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

HEAD_CHARS = 5  # letters of a head: long enough to be selective, short enough for short words
# The n characters from each word start (fewer at the end of the text), read in one C-level pass.
_WORD_STARTS = {n: re.compile(rf"(?<!\w)(?=(\w.{{0,{n - 1}}}))", re.DOTALL) for n in range(1, 9)}
_SPECIAL = frozenset(".[]{}*+?|^$()")
_LETTER = re.compile(r"\w")
_OPTIONAL = ("?", "*", "{")  # quantifiers that allow zero repetitions (`{m,n}` taken as such)


def _structure(pattern: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """`(index, char, depth)` for each `(`, `)` and `|` from `start` that is neither escaped
    nor inside a character class; `depth` counts the groups open after the char."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c in "()|":
            depth += (c == "(") - (c == ")")
            yield i, c, depth
        i += 1


def _closing(pattern: str, start: int) -> int:
    """Index of the `)` that closes the group opened at `pattern[start]` (-1 when unbalanced)."""
    for i, c, depth in _structure(pattern, start):
        if c == ")" and depth == 0:
            return i
    return -1


def _alternatives(pattern: str) -> list[str]:
    """The top-level `|` alternatives of a pattern."""
    out, start = [], 0
    for i, c, depth in _structure(pattern):
        if c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
    out.append(pattern[start:])
    return out


def _head(alternative: str, n: int) -> set[str] | None:
    while alternative.startswith(("(?<!", "(?<=", "\\b")):  # look-behinds and \b consume nothing
        end = 1 if alternative.startswith("\\b") else _closing(alternative, 0)
        if end < 0:
            return None
        alternative = alternative[end + 1:]
    letters: list[str] = []
    i = 0
    while i < len(alternative) and len(letters) < n:
        c = alternative[i]
        if c == "(":
            end = _closing(alternative, i)
            optional = alternative[end + 1:end + 2] in _OPTIONAL
            if not alternative.startswith("(?:", i) or end < 0 or optional:
                break
            inner = pattern_heads(alternative[i + 3:end], n - len(letters))
            if inner is None:
                break
            prefix = "".join(letters)
            return {prefix + h for h in inner}
        if c == "\\":
            escaped = alternative[i + 1:i + 2]
            if not escaped or escaped.isalnum():
                break  # \w, \d, \s...: a class, not a letter
            letters.append(escaped)
            i += 2
        elif c in _SPECIAL:
            break
        else:
            letters.append(c)
            i += 1
        if alternative[i:i + 1] in _OPTIONAL:  # the letter just read is optional
            letters.pop()
            break
    head = "".join(letters)
    return {head} if head else None


def pattern_heads(pattern: str, n: int = HEAD_CHARS) -> frozenset[str] | None:
    """The prefixes (1..n letters) one of which starts every match of `pattern`; None when some
    alternative's start cannot be read or is not a letter (then the pattern must always be
    scanned)."""
    heads: set[str] = set()
    for alternative in _alternatives(pattern):
        head = _head(alternative, n)
        if head is None or not all(_LETTER.match(h) for h in head):  # `text_heads` sees word starts only
            return None
        heads |= head
    return frozenset(heads)


def text_heads(text: str, n: int = HEAD_CHARS) -> set[str]:
    """Every prefix of 1..n characters that starts at a word start of `text`."""
    starts = _WORD_STARTS[n].findall(text)
    out = set(starts)
    for k in range(1, n):
        out.update({s[:k] for s in starts})
    return out
