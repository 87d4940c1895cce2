"""A names layer for PERSON: a gazetteer of given and family names over capitalised token runs.

The small spaCy model finds a name from its sentence ("Earlier you told Priya Raghunathan ...")
but misses the same name where the sentence gives it nothing to go on: at the start of a line,
in a system prompt ("You are assisting Nadia Petrovic, a premium client."), as a JSON value in
a tool result (`{"customer": "Nadia Petrovic"}`). This layer does not need context: a run of two
to four capitalised words (lower-case particles such as "de", "van", "bin" allowed inside) is a
person when its first word is a known given name and its last a known family name, or when one
end is a known name and the other is not an English dictionary word ("Priya Raghunathan",
"Wanjiru Kamau"). Ordinary capitalised phrases stay out: "Grace Period", "Premium Account",
"Thank You" each have a dictionary word at the end that is not a family name.

Sources, both shipped in registry packages and read offline, once per process:
- names: the person providers of `faker` (MIT), every locale: given and family names of about
  ninety locales (South Asian, East Asian romanised, Slavic, Arabic in Latin script, African,
  Latin American, European ...). Cyrillic names are transliterated, accents are folded, so
  "Petrovic" matches faker's "Petrović".
- dictionary words: the WordNet word index inside the small spaCy model's lemmatizer (about
  83,000 English words), plus spaCy's stop words.

Everything here is synchronous: built once in a worker thread (about half a second), then
scanning is one regex pass and set look-ups (well under a millisecond per KB).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Capitalised words and the lower-case particles that may sit between them.
_TOKEN_RE = re.compile("[^\\W\\d_]+(?:['\u2019\\-][^\\W\\d_]+)*")
_GAP_RE = re.compile(r"[ \t]{1,3}")
_PARTICLES = frozenset({
    "de", "da", "do", "dos", "das", "del", "della", "di", "du", "la", "le", "van", "von", "der",
    "den", "ter", "bin", "binti", "bint", "ibn", "al", "el", "ben", "abu", "y", "e", "af", "zu",
})
_TITLES = frozenset({
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "dame", "lord", "lady",
    "mister", "doctor", "professor", "captain", "rev", "fr", "sr", "jr",
})
# Capitalised words that open or close a run but are never part of a name in a transcript,
# whether or not a names list happens to contain them.
_NEVER = frozenset({
    "hi", "hello", "hey", "dear", "thanks", "thank", "you", "yes", "no", "ok", "okay", "please",
    "customer", "client", "agent", "user", "assistant", "system", "tool", "name", "contact",
    "account", "card", "bank", "support", "team", "manager", "regards", "best", "kind", "the",
    "a", "an", "and", "or", "of", "to", "for", "in", "on", "at", "by", "with", "from", "i", "we",
    "my", "our", "your", "his", "her", "their", "this", "that", "is", "was", "are", "mail",
    "email", "phone", "street", "road", "avenue", "lane", "city", "house", "ltd", "inc", "plc",
    "llc", "gmbh", "group", "holdings", "limited", "university", "hospital",
})

_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґђјљњћџ",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r",
     "s", "t", "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya", "i", "yi",
     "ye", "g", "dj", "j", "lj", "nj", "c", "dz"], strict=True))


def fold(word: str) -> str:
    """The look-up key of a word: case-folded, Cyrillic transliterated, accents removed."""
    w = word.casefold()
    if any("\u0400" <= ch <= "\u04ff" for ch in w):
        w = "".join(_CYRILLIC.get(ch, ch) for ch in w)
    w = unicodedata.normalize("NFKD", w)
    return "".join(ch for ch in w if not unicodedata.combining(ch)).replace("\u2019", "'")


@dataclass(frozen=True, slots=True)
class NameHit:
    start: int
    end: int
    score: float


class NameGazetteer:
    """Finds person names made of two to four capitalised words (see the module doc)."""

    __slots__ = ("dictionary", "family", "given")

    def __init__(self, given: Iterable[str], family: Iterable[str], dictionary: Iterable[str]) -> None:
        self.given = frozenset(fold(n) for n in given if _usable(n))
        self.family = frozenset(fold(n) for n in family if _usable(n))
        self.dictionary = frozenset(w.casefold() for w in dictionary)

    # -- word classes ------------------------------------------------------------------------
    def _is_given(self, key: str) -> bool:
        return key in self.given or ("-" in key and all(p in self.given for p in key.split("-")))

    def _is_family(self, key: str) -> bool:
        if key in self.family:
            return True
        parts = key.replace("'", "-").split("-")
        return len(parts) > 1 and (parts[-1] in self.family or parts[0] in self.family)

    def _is_word(self, key: str) -> bool:
        """An English dictionary word (plurals included): not evidence of a name."""
        if "-" in key or "'" in key:
            return False
        d = self.dictionary
        return key in d or (key.endswith("s") and key[:-1] in d) or (key.endswith("es") and key[:-2] in d)

    # -- scanning ----------------------------------------------------------------------------
    def find(self, text: str) -> list[NameHit]:
        hits: list[NameHit] = []
        for run in _runs(text):
            hit = self._judge(text, run)
            if hit is not None:
                hits.append(hit)
        return hits

    def _judge(self, text: str, run: list[tuple[int, int]]) -> NameHit | None:
        keys = [fold(text[s:e]) for s, e in run]
        # Titles and greeting words in front ("Dr", "Dear", "Hello") are not the name.
        while keys and (keys[0] in _TITLES or keys[0] in _NEVER
                        or (len(keys) > 2 and self._is_word(keys[0]) and not self._is_given(keys[0])
                            and self._is_given(keys[1]))):
            keys.pop(0)
            run = run[1:]
        while keys and (keys[-1] in _NEVER or keys[-1] in _PARTICLES or (
                len(keys) > 2 and self._is_word(keys[-1]) and not self._is_family(keys[-1]))):
            keys.pop()
            run = run[:-1]
        caps = [k for k in keys if k not in _PARTICLES]
        if not 2 <= len(caps) <= 4:
            return None
        first, last = caps[0], caps[-1]
        known_first = self._is_given(first)
        known_last = self._is_family(last) or self._is_given(last)
        if known_first and self._is_family(last):
            score = 0.75
        elif (known_first and not self._is_word(last)) or (known_last and not self._is_word(first)):
            score = 0.65
        else:
            return None
        middle = caps[1:-1]
        if any(self._is_word(m) and not (self._is_given(m) or self._is_family(m)) for m in middle):
            return None
        return NameHit(run[0][0], run[-1][1], score)


def _usable(name: str) -> bool:
    return len(name) >= 2 and name[:1].isupper() and not any(ch.isspace() for ch in name)


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and not (len(word) > 1 and word.isupper())


def _runs(text: str) -> Iterator[list[tuple[int, int]]]:
    """Runs of capitalised words separated by a few spaces, lower-case particles inside."""
    run: list[tuple[int, int]] = []
    prev_end = -1
    for m in _TOKEN_RE.finditer(text):
        s, e = m.span()
        word = m.group()
        adjacent = prev_end >= 0 and _GAP_RE.fullmatch(text, prev_end, s) is not None
        if _capitalised(word):
            if not adjacent and run:
                yield _trim(run, text)
                run = []
            run.append((s, e))
        elif adjacent and run and word in _PARTICLES:
            run.append((s, e))
        else:
            if run:
                yield _trim(run, text)
            run = []
        prev_end = e
    if run:
        yield _trim(run, text)


def _trim(run: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    while run and text[run[-1][0]:run[-1][1]] in _PARTICLES:
        run = run[:-1]
    return run


# -- the shipped sources ---------------------------------------------------------------------

@functools.lru_cache(maxsize=2)
def default_gazetteer(model: str) -> NameGazetteer:
    """Built once per process from faker's person providers and the word index of the spaCy
    model package `model`."""
    given, family = faker_names()
    return NameGazetteer(given, family, english_words(model))


def faker_names() -> tuple[set[str], set[str]]:
    """(given names, family names) of every faker locale, romanised lists included."""
    import faker.providers.person as person

    given: set[str] = set()
    family: set[str] = set()
    for info in pkgutil.iter_modules(person.__path__):
        provider = importlib.import_module(f"{person.__name__}.{info.name}").Provider
        for attr, value in vars(provider).items():
            if attr.startswith("_") or "kana" in attr or "pair" in attr:
                continue
            target = given if attr.startswith("first_") else family if attr.startswith("last_") else None
            if target is not None and isinstance(value, tuple | list | dict):
                target.update(str(v) for v in _names_of(value))
    return given, family


def _names_of(value: Any) -> Iterator[str]:
    for v in value:
        if isinstance(v, str):
            yield v


def english_words(model: str) -> set[str]:
    """WordNet's word index as shipped in the small spaCy model's lemmatizer tables, and the
    stop words: the English vocabulary a capitalised word is checked against."""
    from spacy.lang.en.stop_words import STOP_WORDS
    from spacy.lookups import Lookups

    module = importlib.import_module(model)
    words: set[str] = set(STOP_WORDS)
    root = _model_dir(module)
    lookups = Lookups().from_disk(root / "lemmatizer" / "lookups")
    index = lookups.get_table("lemma_index")
    for key in index:
        words.update(w for w in index[key] if w.isalpha())
    return words


def _model_dir(module: Any) -> Any:
    from pathlib import Path

    base = Path(module.__file__).parent
    return next(p for p in base.iterdir() if p.is_dir() and (p / "config.cfg").exists())
