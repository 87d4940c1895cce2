"""A cheap guess of a text's natural language, so search can filter by it (`language: de`)
without a model: the writing system decides most languages outright (kana is Japanese,
Hangul Korean, Devanagari Hindi, ...), and Latin-script text is told apart by its most common
function words. It looks at the first 20,000 characters only; a text it cannot place gets no
`language` at all (better none than a wrong one).
"""

from __future__ import annotations

import re

_SAMPLE = 20_000
_WORD = re.compile(r"[^\W\d_]+")

# Writing systems that (mostly) belong to one language: (first, last) code point → code.
_SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x3040, 0x30FF, "ja"),   # hiragana, katakana
    (0xAC00, 0xD7AF, "ko"),   # Hangul syllables
    (0x0900, 0x097F, "hi"),   # Devanagari (Hindi, also Marathi/Nepali: the usual guess)
    (0x0600, 0x06FF, "ar"),   # Arabic (also Persian/Urdu: the usual guess)
    (0x0590, 0x05FF, "he"),
    (0x0400, 0x04FF, "ru"),   # Cyrillic
    (0x0370, 0x03FF, "el"),
    (0x0E00, 0x0E7F, "th"),
    (0x4E00, 0x9FFF, "zh"),   # Han: Chinese unless kana appear too
)



def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words("the and of to is in that it for with as on this are be was by not or"),
    "de": _words("der die das und ist nicht mit den von zu sich des auf für ein eine dem"),
    "es": _words("el la los las de que y en es por con para una del se no su al como"),
    "fr": _words("le la les de des et est un une du que pour dans pas en sur au avec"),
    "it": _words("il lo la di che e è un una per non con del della gli sono le si"),
    "pt": _words("o a os as de que e do da em um uma para não com por são se no"),
    "nl": _words("de het een en van is dat niet op te zijn met voor er die"),
}


def detect_language(text: str) -> str | None:
    """An ISO 639-1 code, or None when the text gives too little to go on."""
    sample = text[:_SAMPLE]
    counts: dict[str, int] = {}
    letters = 0
    for ch in sample:
        if not ch.isalpha():
            continue
        letters += 1
        code = ord(ch)
        if code < 0x0370:
            continue
        for first, last, lang in _SCRIPTS:
            if first <= code <= last:
                counts[lang] = counts.get(lang, 0) + 1
                break
    if not letters:
        return None
    if counts:
        # Japanese mixes kanji and kana: any real share of kana makes it Japanese.
        if counts.get("ja", 0) >= 0.05 * letters:
            return "ja"
        lang, n = max(counts.items(), key=lambda kv: kv[1])
        if n >= 0.3 * letters:
            return lang
    return _latin(sample)


def _latin(sample: str) -> str | None:
    words = [w.lower() for w in _WORD.findall(sample)]
    if len(words) < 3:
        return None
    scores = {lang: sum(1 for w in words if w in stop) for lang, stop in _STOPWORDS.items()}
    lang, best = max(scores.items(), key=lambda kv: kv[1])
    ranked = sorted(scores.values(), reverse=True)
    # At least 5% of the words must be function words of the winner, and it must clearly lead.
    if best < max(2, 0.05 * len(words)) or (len(ranked) > 1 and best < 1.2 * ranked[1]):
        return None
    return lang
