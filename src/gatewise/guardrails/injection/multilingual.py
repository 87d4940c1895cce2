"""The multilingual layer: the core attack intents (ignore previous instructions, reveal the
system prompt, "you are now ... without restrictions", send the data to an address) in the most
used languages, from the hand-written phrase table `data/multilingual.txt`.

An intent fires when two parts of one language stand close together, in either order (verb-final
languages put the verb last): `verb` + `rules` (override), `reveal` + `sysprompt` (extraction),
`role` + `nolimits` (persona), `send` + an address (exfiltration). A hit wrapped in quotes counts
less, as in `heuristics.py`. Both the table and the scanned
text are normalised the same way: `normalize.canonical` (NFKC, confusables, lower case), then
case-folded with the accents of Latin letters stripped (so "Instrucciones" matches
"instrucciones"; Devanagari and Bengali vowel signs are kept: they are letters, not accents).

Compiled once, at first use; `match` is pure and thread-safe.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path

from gatewise.guardrails.injection.heuristics import quoted
from gatewise.guardrails.injection.normalize import canonical

_TABLE = Path(__file__).resolve().parent.parent / "data" / "multilingual.txt"
_NO_BOUNDARY = frozenset({"zh", "ja", "ko"})  # no spaces between words
_ADDRESS = r"(?:[\w.+-]+@[\w-]+\.[\w.]+|https?://\S+)"
# intent -> (first part, second part, characters between, weight direct, weight indirect)
_INTENTS = (
    ("override", "verb", "rules", 40, 0.85, 0.95),
    ("extraction", "reveal", "sysprompt", 40, 0.8, 0.9),
    ("persona", "role", "nolimits", 120, 0.85, 0.9),
    ("exfiltration", "send", "address", 80, 0.3, 0.45),
)
_SINGLE = (("persona", "nolimits", 0.3, 0.5), ("extraction", "sysprompt", 0.3, 0.6))


def fold(text: str) -> str:
    """Case-folded canonical text with the accents of Latin letters stripped."""
    text = canonical(text).casefold()
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


# (intent, language, the parts' cheap patterns, the full pattern, weight direct, weight indirect)
_Rule = tuple[str, str, tuple[re.Pattern[str], ...], re.Pattern[str], float, float]


@cache
def _rules() -> tuple[tuple[str, bool, re.Pattern[str], tuple[_Rule, ...]], ...]:
    """Per language: (language, written in Latin letters, any part (a cheap first filter), rules)."""
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
        # Without the look-behind the engine skips ahead by first character: a fast first filter.
        cheap = {p: re.compile("|".join(v)) for p, v in by_part.items()}
        cheap["address"] = re.compile("@|https?://")
        any_part = re.compile("|".join("|".join(v) for v in by_part.values()))
        latin = any(re.search("[a-z]", p) for v in by_part.values() for p in v)
        alts["address"] = _ADDRESS
        for intent, a, b, gap, direct, indirect in _INTENTS:
            if a in alts and b in alts:
                pattern = rf"{alts[a]}.{{0,{gap}}}{alts[b]}|{alts[b]}.{{0,{gap}}}{alts[a]}"
                rules.append((intent, lang, (cheap[a], cheap[b]), re.compile(pattern, re.DOTALL), direct,
                              indirect))
        for intent, p, direct, indirect in _SINGLE:
            if p in alts:
                rules.append((intent, lang, (cheap[p],), re.compile(alts[p]), direct, indirect))
        out.append((lang, latin, any_part, tuple(rules)))
    return tuple(out)


def languages() -> frozenset[str]:
    return frozenset(lang for lang, *_ in _rules())


def match(text: str, indirect: bool = False) -> tuple[float, list[str]]:
    """(score 0..1, `intent/lang` hits) for any text; the strongest hit per intent counts, intents
    combine as independent evidence."""
    folded = fold(text)
    ascii_text = folded.isascii()
    best: dict[str, tuple[float, str]] = {}
    for _lang, latin, any_part, rules in _rules():
        if (ascii_text and not latin) or not any_part.search(folded):
            continue
        for intent, lang, parts, pattern, direct, indirect_w in rules:
            w = indirect_w if indirect else direct
            if w <= best.get(intent, (0.0, ""))[0] or not all(p.search(folded) for p in parts):
                continue
            m = pattern.search(folded)
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
