"""The multilingual layer: the core attack intents (ignore previous instructions, reveal the
system prompt, "you are now ... without restrictions", send the data to an address) in the most
used languages, from the hand-written phrase table `data/multilingual.txt`.

An intent fires when two parts of one language stand close together, in either order (verb-final
languages put the verb last): `verb` + `rules` (override), `reveal` + `sysprompt` (extraction),
`role` + `nolimits` (persona), `send` + an address (exfiltration), `inject` ("include in your
answer") + a payload the answer would carry to the user's screen (a markdown image, an HTML event
handler, a `javascript:` link, base64: OWASP LLM01 feeding LLM05), and a fake new task (`newinst`
or `mode`: "new instructions", "developer mode") + `inject` or `reveal`, and `repeat` + a count of
hundreds ("repeat the word ... 1000 times": the answer flooded). The payload is the same in every
language, like the address and the count. A hit wrapped in quotes counts less, as in
`heuristics.py`. Both the table and the scanned text are normalised the same way:
`normalize.canonical` (NFKC, confusables, lower case), then case-folded with the accents of Latin
letters stripped (so "Instrucciones" matches "instrucciones"; Devanagari and Bengali vowel signs
are kept: they are letters, not accents) and the Turkish dotless i (U+0131) read as i (casefold
evasion: "instructions" spelt with dotless i).

Compiled once, at first use; `match` is pure and thread-safe.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

from gatewise.guardrails.injection import heads as _heads
from gatewise.guardrails.injection.heuristics import quoted
from gatewise.guardrails.injection.normalize import canonical

_TABLE = Path(__file__).resolve().parent.parent / "data" / "multilingual.txt"
_NO_BOUNDARY = frozenset({"zh", "ja", "ko"})  # no spaces between words
_ADDRESS = r"(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://\S+)"
# What an injected answer carries to the client: an image that calls home, script, an encoded blob.
_PAYLOAD = (r"(?:!\[[^\]]{0,60}\]\(https?://|<(?:img|svg|iframe|script|a|body|input|video)\b[^>]{0,120}"
            r"(?:\bon[a-z]+\s*=|javascript:)|<svg/on[a-z]+\s*=|javascript:|<script\b|\bbase64\b)")
# A count of hundreds or more: "repeat the word ... 1000 times" floods the answer (unbounded output).
_COUNT = r"(?<!\d)(?<!\d[.,])(?:[1-9]\d{2,}|[1-9]\d{0,2}(?:[ ,.]\d{3})+)(?![.,]?\d)"
_LANGUAGE_NEUTRAL = {"address": (_ADDRESS, "@|https?://"), "payload": (_PAYLOAD, r"!\[|<|javascript:|base64"),
                     "count": (_COUNT, r"[1-9]\d\d|\d[ ,.]\d{3}")}
# intent -> (first part, second part, characters between, weight direct, weight indirect)
_INTENTS = (
    ("override", "verb", "rules", 40, 0.85, 0.95),
    ("extraction", "reveal", "sysprompt", 40, 0.8, 0.9),
    ("persona", "role", "nolimits", 120, 0.85, 0.9),
    ("exfiltration", "send", "address", 80, 0.3, 0.45),
    ("output", "inject", "payload", 160, 0.6, 0.85),
    ("task", "newinst", "inject", 120, 0.6, 0.9),
    ("task", "mode", "inject", 120, 0.6, 0.9),
    ("task", "newinst", "reveal", 120, 0.5, 0.85),
    ("task", "mode", "reveal", 120, 0.5, 0.85),
    ("output", "repeat", "count", 80, 0.5, 0.75),  # "repeat the word ... 1000 times"
)
_SINGLE = (("persona", "nolimits", 0.3, 0.5), ("extraction", "sysprompt", 0.3, 0.6),
           ("task", "newinst", 0.2, 0.25), ("task", "mode", 0.2, 0.35), ("output", "inject", 0.2, 0.35))


def fold(text: str) -> str:
    """Case-folded canonical text with the accents of Latin letters stripped."""
    text = canonical(text).casefold().replace("\u0131", "i")
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    out: list[str] = []
    for ch in decomposed:
        if unicodedata.category(ch) == "Mn" and out and out[-1] < "\u0250":
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _alternatives(lang: str, pattern: str) -> str:
    lead = "" if lang in _NO_BOUNDARY else r"(?<!\w)"
    return f"{lead}(?:{pattern})"


# Which texts a part can match: the heads (`heads.pattern_heads`) its phrases start with, or, for
# the language-neutral parts and phrases whose start cannot be read, a regular expression.
_Gate = frozenset[str] | re.Pattern[str]
# (intent, language, the parts' gates, the full pattern, weight direct, weight indirect, how it is
# searched: the pattern's heads when every match starts at a word start (`heads.anchored_heads`),
# else the strings every match holds (`heads.required_literals`), else None: searched whole)
_Rule = tuple[str, str, tuple[_Gate, ...], re.Pattern[str], float, float,
              frozenset[str] | _heads.Literals | None]


def _gate(lang: str, phrases: list[str]) -> _Gate:
    """The part's heads (the first letter only where words are not separated by spaces), or its
    phrases as one expression when their start cannot be read or is not a letter."""
    found = _heads.pattern_heads("|".join(phrases), 1 if lang in _NO_BOUNDARY else _heads.HEAD_CHARS)
    return re.compile("|".join(phrases)) if found is None else found


@cache
def _rules() -> tuple[tuple[str, _Gate, tuple[_Rule, ...]], ...]:
    """Per language: (language, the gate of all its parts together, its rules)."""
    parts: dict[str, dict[str, list[str]]] = {}
    for line in _TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        lang, part, pattern = line.split("\t", 2)
        parts.setdefault(lang, {}).setdefault(part, []).append(fold(pattern.strip()))
    out = []
    for lang, by_part in parts.items():
        rules: list[_Rule] = []
        alts = {p: _alternatives(lang, "|".join(v)) for p, v in by_part.items()}
        gates: dict[str, _Gate] = {p: _gate(lang, v) for p, v in by_part.items()}
        any_part = _gate(lang, [x for v in by_part.values() for x in v])
        for part, (full, first) in _LANGUAGE_NEUTRAL.items():
            alts[part], gates[part] = full, re.compile(first)
        for intent, a, b, gap, direct, indirect in _INTENTS:
            if a in alts and b in alts:
                pattern = rf"{alts[a]}.{{0,{gap}}}{alts[b]}|{alts[b]}.{{0,{gap}}}{alts[a]}"
                rules.append((intent, lang, (gates[a], gates[b]), re.compile(pattern, re.DOTALL), direct,
                              indirect, _anchored(lang, pattern)))
        for intent, p, direct, indirect in _SINGLE:
            if p in alts:
                rules.append((intent, lang, (gates[p],), re.compile(alts[p]), direct, indirect,
                              _anchored(lang, alts[p])))
        out.append((lang, any_part, tuple(rules)))
    return tuple(out)


def _anchored(lang: str, pattern: str) -> frozenset[str] | _heads.Literals | None:
    """How a rule is searched: from its heads (`heads.search_at_heads`) in languages whose words
    are separated (every phrase then starts at a word start), else only in texts holding the
    strings every match holds; None: searched whole."""
    starts = None if lang in _NO_BOUNDARY else _heads.anchored_heads(pattern)
    return starts if starts is not None else _heads.required_literals(pattern)


def languages() -> frozenset[str]:
    return frozenset(lang for lang, _, _ in _rules())


def match(text: str, indirect: bool = False, *, folded: str | None = None,
          heads: set[str] | None = None) -> tuple[float, list[str]]:
    """(score 0..1, `intent/lang` hits) for any text; the strongest hit per intent counts, intents
    combine as independent evidence. `folded` (`fold(text)`) and `heads` (its `text_heads`) when
    the caller has them already."""
    if folded is None:
        folded = fold(text)
    words = _heads.text_heads(folded) if heads is None else heads
    chars = set(folded)
    best: dict[str, tuple[float, str]] = {}
    searched: dict[re.Pattern[str], bool] = {}  # the language-neutral gates, searched once per text

    def opens(gate: _Gate, probe: set[str]) -> bool:
        if isinstance(gate, frozenset):
            return not gate.isdisjoint(probe)
        if gate not in searched:
            searched[gate] = gate.search(folded) is not None
        return searched[gate]

    for lang, any_part, rules in _rules():
        probe = chars if lang in _NO_BOUNDARY else words
        if not opens(any_part, probe):
            continue
        for intent, _, parts, pattern, direct, indirect_w, starts in rules:
            w = indirect_w if indirect else direct
            if w <= best.get(intent, (0.0, ""))[0] or not all(opens(g, probe) for g in parts):
                continue
            if isinstance(starts, frozenset):
                m = _heads.search_at_heads(pattern, starts, folded, words)
            elif starts is None or _heads.has_literals(starts, folded):
                m = pattern.search(folded)
            else:
                continue
            if m is None:
                continue
            if quoted(folded, m.start(), m.end()):  # talking about an attack, not making one
                w *= 0.35
            if w > best.get(intent, (0.0, ""))[0]:
                best[intent] = (w, f"{intent}/{lang}")
    miss = 1.0
    for w, _ in best.values():
        miss *= 1.0 - w
    return 1.0 - miss, [name for _, name in sorted(best.values(), reverse=True)]
