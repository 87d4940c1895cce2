# ruff: noqa: RUF001
# (look-alike letters on purpose)
"""The obfuscations attackers apply, written out so the evaluation (and tests) can check that
normalisation undoes them. Deterministic: no randomness, the same input gives the same output."""

from __future__ import annotations

import base64
import codecs
from collections.abc import Callable

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_CONFUSE = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і",
                          "A": "А", "E": "Е", "O": "О", "P": "Р", "C": "С", "T": "Т"})


def to_base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def to_hex(text: str) -> str:
    return text.encode().hex()


def to_rot13(text: str) -> str:
    return codecs.encode(text, "rot13")


def to_leet(text: str) -> str:
    return text.lower().translate(_LEET)


def to_spacing(text: str) -> str:
    """"ignore all" → "i g n o r e   a l l"."""
    return "   ".join(" ".join(word) for word in text.split())


def to_confusables(text: str) -> str:
    return text.translate(_CONFUSE)


def to_zero_width(text: str) -> str:
    return "\u200b".join(text)


OBFUSCATORS: dict[str, Callable[[str], str]] = {
    "base64": to_base64,
    "hex": to_hex,
    "rot13": to_rot13,
    "leet": to_leet,
    "spacing": to_spacing,
    "confusables": to_confusables,
    "zero_width": to_zero_width,
}
