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

import importlib
import re
from collections.abc import Iterator
from typing import Any

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


# -- literals every match contains -------------------------------------------------------------

Literals = tuple[frozenset[str], ...]


def required_literals(pattern: str) -> Literals | None:
    """Up to two sets of strings such that every match of `pattern` contains at least one string
    of each set (None when nothing is certain). Read from the parsed pattern: a run of literal
    characters must appear; a group, or a repeat of at least once, requires what its body
    requires; an alternation requires one of its alternatives' requirements. A text that lacks
    them all cannot match, whatever the pattern starts with, so the rules no head can gate
    (`</?(?:system|...)>`, `(?:^|[\\s...])(?:todo|...)`) cost a few substring tests instead of
    a regular-expression pass over the text."""
    try:
        sre_parse: Any = importlib.import_module("re._parser")  # the stdlib's own parser of `re`
        parsed = sre_parse.parse(pattern)
    except (ImportError, AttributeError, re.error, RecursionError):  # pragma: no cover
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    try:
        found = [r for r in _sequence_requirements(list(parsed)) if r]
    except _Unreadable:
        return None
    # The two most selective requirements: more would cost more tests than they save.
    found.sort(key=lambda r: (min(map(len, r)), -len(r)), reverse=True)
    return tuple(found[:2]) or None


class _Unreadable(Exception):
    """The pattern uses something the requirement reader does not model (case-insensitive
    groups): no requirement is claimed."""


_GROUP, _BRANCH, _LITERAL = "SUBPATTERN", "BRANCH", "LITERAL"
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


def _sequence_requirements(items: list[tuple[Any, Any]]) -> list[frozenset[str]]:
    """One requirement per item that must match (consecutive literals joined into one string)."""
    out: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in items:
        name = str(op)
        if name == _LITERAL:
            run.append(chr(av))
            continue
        if run:
            out.append(frozenset({"".join(run)}))
            run = []
        best = _item_requirement(name, av)
        if best:
            out.append(best)
    if run:
        out.append(frozenset({"".join(run)}))
    return out


def _best(reqs: list[frozenset[str]]) -> frozenset[str] | None:
    """The most selective single requirement: longest shortest string, then fewest strings."""
    return max(reqs, key=lambda r: (min(map(len, r)), -len(r)), default=None)


def _item_requirement(name: str, av: Any) -> frozenset[str] | None:
    if name == _GROUP:
        _, add_flags, _, body = av
        if add_flags & re.IGNORECASE:
            raise _Unreadable
        return _best(_sequence_requirements(list(body)))
    if name in _REPEATS:
        low, _, body = av
        return _best(_sequence_requirements(list(body))) if low >= 1 else None
    if name == _BRANCH:
        _, alternatives = av
        union: set[str] = set()
        for alt in alternatives:
            best = _best(_sequence_requirements(list(alt)))
            if best is None:
                return None
            union |= best
        return frozenset(union)
    return None  # classes, any character, anchors, look-arounds: nothing certain


def has_literals(required: Literals, text: str) -> bool:
    """Whether `text` holds at least one string of every set of `required`."""
    return all(any(lit in text for lit in options) for options in required)


_WORD_START_LEADS = ("\\b", "(?<!\\w)")


def anchored_heads(pattern: str, n: int = HEAD_CHARS) -> frozenset[str] | None:
    """The heads of a pattern every match of which starts at a word start: each top-level
    alternative opens with `\\b` or `(?<!\\w)` and its head is readable (`pattern_heads`), so a
    match begins at a word start of the text where one of these heads begins. None for any
    other pattern (it must be searched the ordinary way)."""
    found = pattern_heads(pattern, n)
    if found is None or not all(a.startswith(_WORD_START_LEADS) for a in _alternatives(pattern)):
        return None
    return found


def search_at_heads(pattern: re.Pattern[str], heads: frozenset[str], text: str,
                    found: set[str]) -> re.Match[str] | None:
    """`pattern.search(text)` for an anchored pattern (`anchored_heads`), given the text's
    `text_heads`: the pattern is tried only at the word starts where one of its heads begins,
    in text order, so the first match is the leftmost one, as `search` would return. A 1 KB
    text has a few such places instead of a thousand positions."""
    common = heads.intersection(found)
    if not common:
        return None
    starts: set[int] = set()
    for h in common:
        i = text.find(h)
        while i >= 0:
            if i == 0 or not _is_word_char(text[i - 1]):
                starts.add(i)
            i = text.find(h, i + 1)
    for at in sorted(starts):
        m = pattern.match(text, at)
        if m is not None:
            return m
    return None


def _is_word_char(ch: str) -> bool:
    """What `\\w` matches in a `str` pattern (sre: alphanumeric or underscore)."""
    return ch.isalnum() or ch == "_"


def text_heads(text: str, n: int = HEAD_CHARS) -> set[str]:
    """Every prefix of 1..n characters that starts at a word start of `text`."""
    starts = _WORD_STARTS[n].findall(text)
    out = set(starts)
    for k in range(1, n):
        out.update({s[:k] for s in starts})
    return out
