"""`PIIVault`: the placeholder ⇄ value mapping of one conversation.

The same value gets the same placeholder on every turn (`<PERSON_1>` stays John Smith), so the
model's view of a conversation is consistent and an answer that refers back to an earlier turn
still unmasks. The vault is scoped by tenant and conversation; with a `KVStore` it is saved under
`vault:{tenant}:{conversation}` with a TTL, so later turns served by another replica see it.
Without a conversation id each request gets a vault of its own.

Placeholders never collide with text the caller wrote: a number whose placeholder already
appears in the prompt (`<EMAIL_1>` typed by the user) is skipped when allocating.

The stored mapping holds the original values, so the store must be as trusted as the prompt
logs would be; it never holds more than the conversation itself sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable

from gatewise.storage.base import KVStore

# `<LABEL_n>`: what unmasking looks for. Labels are upper-case words joined by underscores.
PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*?)_([1-9][0-9]{0,5})>")

# Shorter labels read better to a model and cost fewer tokens; others are used as they are.
_LABELS = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
           "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP", "US_SSN": "SSN",
           "US_BANK_NUMBER": "BANK_ACCOUNT", "UK_NHS": "NHS", "UK_NINO": "NINO"}
_LABEL_CLEAN = re.compile(r"[^A-Z0-9]+")


def label_for(entity: str) -> str:
    label = _LABELS.get(entity)
    if label is None:
        label = _LABEL_CLEAN.sub("_", entity.upper()).strip("_") or "PII"
        if not label[0].isalpha():
            label = "PII_" + label
    return label


def vault_key(tenant: str, conversation: str) -> str:
    return f"vault:{tenant}:{conversation}"


class PIIVault:
    """Thread-safe (masking runs in worker threads, possibly two turns of one conversation at
    once). `placeholder_for` allocates; `value_of` and `mapping` serve unmasking."""

    __slots__ = ("_by_value", "_counters", "_dirty", "_lock", "_values", "key")

    def __init__(self, key: str | None = None) -> None:
        self.key = key
        self._values: dict[str, str] = {}            # placeholder -> value
        self._by_value: dict[tuple[str, str], str] = {}  # (label, value) -> placeholder
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._dirty = False

    def __len__(self) -> int:
        return len(self._values)

    def placeholder_for(self, entity: str, value: str, *, avoid: frozenset[str] = frozenset()) -> str:
        """The placeholder of `value` (allocated on first sight); never one listed in `avoid`
        (placeholders that already appear, literally, in the caller's text)."""
        label = label_for(entity)
        with self._lock:
            existing = self._by_value.get((label, value))
            if existing is not None:
                return existing
            n = self._counters.get(label, 0)
            while True:
                n += 1
                ph = f"<{label}_{n}>"
                if ph not in avoid and ph not in self._values:
                    break
            self._counters[label] = n
            self._values[ph] = value
            self._by_value[(label, value)] = ph
            self._dirty = True
            return ph

    def value_of(self, placeholder: str) -> str | None:
        return self._values.get(placeholder)

    def mapping(self) -> dict[str, str]:
        """A snapshot (placeholder -> value) for unmasking a response while later turns may
        keep allocating."""
        with self._lock:
            return dict(self._values)

    # -- persistence -------------------------------------------------------------------------
    def dumps(self) -> bytes:
        with self._lock:
            return json.dumps({"v": self._values, "n": self._counters},
                              separators=(",", ":")).encode()

    def merge(self, data: bytes) -> None:
        """Adds what another replica (or an earlier turn) stored; what this vault already
        maps wins, and counters never go back, so nothing allocated here is re-used."""
        try:
            raw = json.loads(data)
            values, counters = raw["v"], raw["n"]
        except (ValueError, KeyError, TypeError):
            return  # unreadable: start afresh rather than fail the request
        with self._lock:
            for ph, value in _pairs(values):
                m = PLACEHOLDER_RE.fullmatch(ph)
                if m is None or ph in self._values or (m.group(1), value) in self._by_value:
                    continue
                self._values[ph] = value
                self._by_value[(m.group(1), value)] = ph
            if isinstance(counters, dict):
                for label, n in counters.items():
                    if isinstance(n, int) and n > self._counters.get(label, 0):
                        self._counters[label] = n

    async def load(self, store: KVStore) -> None:
        if self.key is None:
            return
        data = await store.get(self.key)
        if data is not None:
            self.merge(data)

    async def save(self, store: KVStore, ttl: float | None) -> None:
        """Writes the mapping back when this request allocated anything new."""
        if self.key is None or not self._dirty:
            return
        self._dirty = False
        await store.set(self.key, self.dumps(), ttl)


def _pairs(values: object) -> Iterable[tuple[str, str]]:
    if isinstance(values, dict):
        for k, v in values.items():
            if isinstance(k, str) and isinstance(v, str):
                yield k, v


def placeholders_in(text: str) -> set[str]:
    """Placeholder-shaped tokens already present in `text` (collision avoidance)."""
    return {m.group(0) for m in PLACEHOLDER_RE.finditer(text)} if "<" in text else set()
