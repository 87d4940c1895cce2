"""Splitting text into spans and packing spans under a token budget: the parts every chunker
is made of. Everything works on `(start, end)` offsets into one string, never on copies, so
a chunk's offsets are exact by construction (`text[start:end]` is the chunk).

Sentence splitting is rule-based and language-aware without models or downloads: a sentence
ends at `.`, `!`, `?`, `…`, the Arabic `؟`, the Devanagari `।`/`॥` when whitespace follows,
and right after the full-width CJK full stop, exclamation and question marks (which take
no space). A period does not end a
sentence after a known abbreviation ("e.g.", "Dr.", "z.B.", "Sra."), a single letter (an
initial), or before a lowercase letter; "3.14" never splits since no space follows its point.
Spanish `¿`/`¡` open a sentence and never end one.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

Span = tuple[int, int]
Count = Callable[[str], int]

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_NEWLINE = re.compile(r"\n")
_WORD = re.compile(r"\S+")
# Longest piece of one whitespace-free run (a URL, a base64 blob, CJK text without spaces).
_MAX_WORD = 24
# The lookbehind starts a match only at the beginning of a run of marks, and the possessive
# quantifiers never give back: a run of ten thousand dots is scanned once, not once per dot.
_END = re.compile(
    r"(?<![.!?…؟।॥])(?:[.!?…؟।॥]++[\"'”’»)\]]*+(?=\s|$))"      # needs whitespace (or the end) after it  # noqa: RUF001
    r"|(?:[。！？｡]+[\"'”’」』）\]]*)")           # CJK full stops: no space follows them  # noqa: RUF001
_LIST_ITEM = re.compile(r"\n[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]")
ABBREVIATIONS = frozenset(" ".join((
    # English
    "mr mrs ms dr prof sr jr st vs etc e.g i.e eg ie fig figs no nos vol vols pp approx "
    "inc ltd co corp dept est cf al jan feb mar apr jun jul aug sep sept oct nov dec mt ft "
    "gen gov lt col sgt rev hon ave blvd rd mins hrs sec ch eq ref refs ed eds resp "
    # German
    "z.b u.a bzw usw ca evtl ggf inkl nr str vgl bspw d.h s.o s.u u.ä sog abs "
    # Spanish, French, Italian, Portuguese
    "sra srta dra ud uds pág págs núm aprox p.ej mme mlle p.ex env av sig dott ecc",
)).split())


def strip(text: str, start: int, end: int) -> Span:
    """The span without leading and trailing whitespace (empty: start == end)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _between(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[Span]:
    out: list[Span] = []
    pos = start
    for m in separator.finditer(text, start, end):
        span = strip(text, pos, m.start())
        if span[0] < span[1]:
            out.append(span)
        pos = m.end()
    span = strip(text, pos, end)
    if span[0] < span[1]:
        out.append(span)
    return out


def paragraphs(text: str, start: int, end: int) -> list[Span]:
    return _between(text, start, end, _PARAGRAPH)


def lines(text: str, start: int, end: int) -> list[Span]:
    return _between(text, start, end, _NEWLINE)


def words(text: str, start: int, end: int) -> list[Span]:
    """Whitespace-separated words; a run longer than 24 characters comes in pieces."""
    out: list[Span] = []
    for m in _WORD.finditer(text, start, end):
        a, b = m.span()
        while b - a > _MAX_WORD:
            out.append((a, a + _MAX_WORD))
            a += _MAX_WORD
        out.append((a, b))
    return out


def _is_abbreviation(text: str, start: int, dot: int) -> bool:
    """Whether the period at `dot` closes an abbreviation or an initial, not a sentence."""
    begin = dot
    while begin > start and not text[begin - 1].isspace() and text[begin - 1] not in "(\"'“‘[":  # noqa: RUF001
        begin -= 1
    word = text[begin:dot].lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True
    return word in ABBREVIATIONS


def sentences(text: str, start: int, end: int) -> list[Span]:
    """Sentences of `text[start:end]` (see the module docstring for the rules); a list item
    on its own line starts a sentence too."""
    cuts: list[int] = []
    for m in _END.finditer(text, start, end):
        stop = m.end()
        if text[m.start()] == "." and m.group(0).rstrip("\"'”’»)]") == ".":  # noqa: RUF001
            if _is_abbreviation(text, start, m.start()):
                continue
            nxt = stop
            while nxt < end and text[nxt].isspace():
                nxt += 1
            if nxt < end and text[nxt].islower():
                continue
        cuts.append(stop)
    cuts.extend(m.start() for m in _LIST_ITEM.finditer(text, start, end))
    cuts.sort()
    out: list[Span] = []
    pos = start
    for cut in cuts:
        span = strip(text, pos, cut)
        if span[0] < span[1]:
            out.append(span)
        pos = cut
    span = strip(text, pos, end)
    if span[0] < span[1]:
        out.append(span)
    return out


class Tokens:
    """Token counts of spans of one text, without counting every piece: an estimate is the
    span's length times a tokens-per-character ratio learnt from the exact counts made so far
    (a moving average, so it follows the text from English to Japanese to code; it starts at
    0.3, a little above English prose). Packing decides on estimates; every chunk that comes
    out is then counted exactly (`exact`) and shortened or grown in proportion, so the
    budget always holds on the real count while a chunk costs a few counts, not one per
    sentence or word. (A tokenizer call has a fixed cost of tens of microseconds, which per
    word would dominate chunking.)"""

    def __init__(self, text: str, count: Count) -> None:
        self.text = text
        self.count = count
        self.ratio = 0.3

    def estimate(self, start: int, end: int) -> float:
        return (end - start) * self.ratio

    def exact(self, start: int, end: int) -> int:
        n = self.count(self.text[start:end])
        if end - start >= 64:
            self.ratio = 0.5 * self.ratio + 0.5 * n / (end - start)
        return n

    def fit(self, units: Sequence[Span], ends: Sequence[int], i: int, j: int, budget: int,
            *, grow: bool = True, full: float = 0.9) -> tuple[int, int]:
        """(j, exact tokens of units i..j) for the largest j near the given one whose group
        fits `budget`: shrunk in proportion while over, grown in proportion (a few tries,
        unless `grow` is false) while there is room. Ends at j == i when even one unit is
        over. A group within `full` of the budget is not grown (another try costs a count)."""
        start = units[i][0]
        tokens = self.exact(start, units[j][1])
        while tokens > budget and j > i:
            target = start + (units[j][1] - start) * budget / tokens * 0.97
            j = max(i, min(j - 1, bisect.bisect_right(ends, target) - 1))
            tokens = self.exact(start, units[j][1])
        for _ in range(3 if grow else 0):
            if tokens > budget * full or j + 1 >= len(units):
                break
            room = (budget - tokens) / max(self.ratio, 1e-3)
            k = bisect.bisect_right(ends, units[j][1] + room) - 1
            if k <= j:
                break
            grown = self.exact(start, units[k][1])
            if grown > budget:
                break
            j, tokens = k, grown
        return j, tokens


def hard_cut(tk: Tokens, start: int, end: int, budget: int) -> list[tuple[Span, int]]:
    """Character cuts, each the longest prefix within `budget` tokens (binary search on the
    exact count): the last resort for a run with no whitespace or punctuation at all."""
    out: list[tuple[Span, int]] = []
    while start < end:
        lo, hi = start + 1, end
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if tk.exact(start, mid) <= budget:
                lo = mid
            else:
                hi = mid - 1
        span = strip(tk.text, start, lo)
        if span[0] < span[1]:
            out.append((span, tk.exact(*span)))
        start = lo
    return out


Splitter = Callable[[str, int, int], list[Span]]
LEVELS: dict[str, Splitter] = {"paragraph": paragraphs, "line": lines, "sentence": sentences,
                               "word": words}
PROSE = ("paragraph", "sentence", "line", "word")
CODE = ("paragraph", "line", "word")


def window(tk: Tokens, units: Sequence[Span], ends: Sequence[int],
           estimates: Sequence[float], i: int, budget: int) -> tuple[int, int]:
    """The units from `i` that go into one chunk: extended while their estimated tokens fit
    `budget`, then fitted on the exact count (`Tokens.fit`); (last unit, exact tokens)."""
    j, total, n = i, estimates[i], len(units)
    while j + 1 < n and total + estimates[j + 1] <= budget:
        j += 1
        total += estimates[j]
    return tk.fit(units, ends, i, j, budget)


def pack(tk: Tokens, units: Sequence[Span], estimates: Sequence[float], budget: int,
         levels: Sequence[str] = ()) -> list[tuple[Span, int]]:
    """Neighbouring units joined greedily while their estimated tokens fit `budget`, then
    fitted on the exact count (`Tokens.fit`); each result is (span, exact tokens). A single
    unit over the budget is split at `levels` (finer cuts)."""
    out: list[tuple[Span, int]] = []
    ends = [u[1] for u in units]
    i, n = 0, len(units)
    while i < n:
        j, tokens = window(tk, units, ends, estimates, i, budget)
        span = (units[i][0], units[j][1])
        if tokens > budget:  # one unit the estimate let through
            out.extend(split_to_fit(tk, span[0], span[1], budget, levels, exact=tokens))
        else:
            out.append((span, tokens))
        i = j + 1
    return out


def split_to_fit(tk: Tokens, start: int, end: int, budget: int, levels: Sequence[str] = PROSE,
                 *, exact: int | None = None) -> list[tuple[Span, int]]:
    """`text[start:end]` as spans of at most `budget` tokens: whole when it fits, else cut at
    the coarsest level that divides it (paragraphs, then sentences, lines, words, and
    characters last), the pieces packed back together up to the budget."""
    start, end = strip(tk.text, start, end)
    if start >= end:
        return []
    if exact is None and tk.estimate(start, end) <= budget * 1.5:
        exact = tk.exact(start, end)
    if exact is not None and exact <= budget:
        return [((start, end), exact)]
    finer: Sequence[str] = ()
    units: list[Span] = []
    for depth, level in enumerate(levels):
        units = LEVELS[level](tk.text, start, end)
        if len(units) > 1:
            finer = levels[depth + 1:]
            break
    if len(units) <= 1:
        return hard_cut(tk, start, end, budget)
    fitted: list[Span] = []
    estimates: list[float] = []
    for a, b in units:
        e = tk.estimate(a, b)
        if e <= budget:
            fitted.append((a, b))
            estimates.append(e)
        else:
            for span, c in split_to_fit(tk, a, b, budget, finer):
                fitted.append(span)
                estimates.append(float(c))
    return pack(tk, fitted, estimates, budget, finer)
