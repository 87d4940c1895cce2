# ruff: noqa: RUF001
# (the confusables table maps look-alike letters on purpose)
"""Undo the obfuscations attackers use to slip instructions past pattern matching.

`variants(text)` returns the texts worth scanning: the canonical form (NFKC, confusables mapped
to Latin, invisible characters removed, lower-cased), plus one extra variant per trick found
(spacing collapsed, leetspeak undone, base64 / hex / rot13 payloads decoded, comment bodies,
Unicode tag characters read back as ASCII). Each extra variant carries the name of the trick, so
the detector can report `obfuscation:base64`. Obfuscation is itself a signal: ordinary prompts
rarely hide text.

All patterns and tables are built once at import; `variants` is pure and thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from typing import NamedTuple


class Variant(NamedTuple):
    trick: str  # "" for the canonical form, else the obfuscation undone ("base64", "leet", ...)
    text: str


# Cyrillic and Greek look-alikes NFKC leaves alone.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "һ": "h",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ʏ": "y", "ɪ": "i", "ᴀ": "a", "ᴇ": "e", "ᴏ": "o",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ω": "w", "η": "n",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
# Zero-width, joiners, bidi controls, BOM, soft hyphen, invisible operators, variation selectors.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
                        "\ufe00-\ufe0f\U000e0000-\U000e007f]")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_LEET = str.maketrans({"1": "i", "3": "e", "0": "o", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s",
                       "!": "i", "|": "l"})
# A word mixing letters with leet digits/symbols, e.g. "1gn0r3", "pr3v10us", "@dmin".
_LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$!|]*[a-z])(?=[\w@$!|]*[013457@$])[a-z013457@$!|]{3,}(?![\w@$])")
_LEET_INSIDE = re.compile(r"[a-z][013457@$!|]+[a-z]")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Three or more single characters separated by one space/dot/dash/underscore: "i g n o r e".
_SPACED = re.compile(r"(?<!\w)(?:\w[ .\-_*]){2,}\w(?!\w)")
_SPACED_SEP = re.compile(r"[ .\-_*]")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?:(?:\\x|0x)?[0-9a-fA-F]{2}[\s:,]?){8,}")
_HEX_JUNK = re.compile(r"\\x|0x|[\s:,]")
_COMMENTS = re.compile(r"<!--(.*?)-->|\[//\]:\s*#\s*[(\"'](.*?)[)\"']\s*$|/\*(.*?)\*/",
                       re.DOTALL | re.MULTILINE)
_WORDS = re.compile(r"[a-z]+")
_WS = re.compile(r"\s+")
# Common English words: telling rot13 text from ordinary prose without a dictionary.
_COMMON_WORDS = (
    "the be to of and a in that have i it for not on with he as you do at this but his by from they "
    "we say her she or an will my one all would there their what so up out if about who get which go "
    "me when make can like no just him know take into your some could them see other than then now "
    "only its over also after use two how our first well way even new want because any these give "
    "day most us is are was were ignore previous instructions tell reveal system prompt say print "
    "please answer rules above below following")
_COMMON = frozenset(_COMMON_WORDS.split())


def canonical(text: str, *, despace: bool = False) -> str:
    """NFKC, confusables to Latin, invisible characters removed, whitespace collapsed, lower-cased;
    with `despace`, letter-spaced words ("i g n o r e  a l l") are joined first, while the wider
    gaps between them still tell the words apart."""
    text = _unified(text)
    if despace:
        text = _despace(text)
    return _WS.sub(" ", text).strip().lower()


def _unified(text: str) -> str:
    """NFKC, confusables to Latin, invisible characters removed: what `canonical` changes
    besides whitespace and case."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).translate(_CONFUSABLES))


def _printable(data: bytes) -> str | None:
    """The decoded text when it is mostly printable prose, else None."""
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(s) < 6:
        return None
    good = sum(1 for c in s if c.isprintable() or c in "\n\t")
    letters = sum(1 for c in s if c.isalpha())
    if good / len(s) < 0.95 or letters / len(s) < 0.5 or " " not in s:
        return None
    return s


def _decode_base64(text: str) -> list[str]:
    out = []
    for m in _BASE64.finditer(text):
        token = m.group(0)
        if token.isalpha() and (token.islower() or token.isupper()):
            continue  # a long plain word, not an encoding
        bare = token.rstrip("=")
        padded = bare + "=" * (-len(bare) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded:
            out.append(decoded)
    return out


def _decode_hex(text: str) -> list[str]:
    out = []
    for m in _HEX.finditer(text):
        digits = _HEX_JUNK.sub("", m.group(0))
        if len(digits) % 2:
            digits = digits[:-1]
        try:
            decoded = _printable(bytes.fromhex(digits))
        except ValueError:
            continue
        if decoded:
            out.append(decoded)
    return out


_ROT13_COMMON = frozenset(codecs.encode(w, "rot13") for w in _COMMON)


def _reads_as_rot13(base: str) -> bool:
    """Whether rot13 turns `base` into English: the share of common words among its rot13's
    words is above 0.25 and above twice the share among its own. Read off `base`'s own words:
    rot13 maps the words (`[a-z]+`) of a text one to one onto those of its rot13, so a word of
    the rot13 text is common exactly when the word it came from is in the rot13 of the
    common set."""
    words = _WORDS.findall(base)
    if not words:
        return False
    rot_ratio = sum(1 for w in words if w in _ROT13_COMMON) / len(words)
    return rot_ratio > 0.25 and rot_ratio > 2 * (sum(1 for w in words if w in _COMMON) / len(words))


def _is_leet(text: str) -> bool:
    """Leetspeak, not numbers in prose: a digit inside a word ("1gn0r3"), or many mixed words.
    ("5pm", "4x" alone would otherwise double the scan cost of every text with times in it.)
    The `@` of an e-mail address ("jane.doe@example.com" reads "doe@example") is not leet
    either: every address has one, and a prompt with an address in it would be scanned twice."""
    found = list(_LEET_WORD.finditer(text))
    if found and "@" in text:
        addresses = [m.span() for m in _EMAIL.finditer(text)]
        found = [m for m in found if not any(s <= m.start() and m.end() <= e for s, e in addresses)]
    hits = [m.group(0) for m in found]
    if not hits:
        return False
    if any(_LEET_INSIDE.search(h) for h in hits):
        return True
    return len(hits) >= 3 and len(hits) >= 0.1 * len(_WORDS.findall(text))


def _despace(text: str) -> str:
    return _SPACED.sub(lambda m: _SPACED_SEP.sub("", m.group(0)), text)


def variants(text: str) -> list[Variant]:
    """The canonical text plus one variant per obfuscation found (decoded payloads are scanned
    on their own, then canonicalised too)."""
    tags = _TAGS.findall(text)
    unified = _unified(text)
    base = _WS.sub(" ", unified).strip().lower()
    out = [Variant("", base)]
    if tags:
        hidden = "".join(chr(ord(c) - 0xE0000) for t in tags for c in t)
        out.append(Variant("unicode_tags", canonical(hidden)))
    # When normalisation changed no character, `base` is the plain whitespace-and-case form.
    if unified != text and base != _WS.sub(" ", text).strip().lower():
        if _INVISIBLE.search(text):
            out.append(Variant("invisible", base))
        elif text.translate(_CONFUSABLES) != text:
            out.append(Variant("confusables", base))
    if _SPACED.search(base):
        out.append(Variant("spacing", canonical(text, despace=True)))
    if _is_leet(base):
        unleet = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), base)
        out.append(Variant("leet", _despace(unleet)))
    for decoded in _decode_base64(text):
        out.append(Variant("base64", canonical(decoded)))
    for decoded in _decode_hex(text):
        out.append(Variant("hex", canonical(decoded)))
    if len(base) >= 12 and _reads_as_rot13(base):
        out.append(Variant("rot13", codecs.encode(base, "rot13")))
    for m in _COMMENTS.finditer(text):
        body = next((g for g in m.groups() if g), "")
        if body.strip():
            out.append(Variant("comment", canonical(body)))
    return out
