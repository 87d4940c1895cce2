"""The storage seam: tiny protocols that everything shared (caches, budgets, rate limits, the
usage ledger, conversations) is written against.

Code above a store never knows which backend it has: memory and SQLite serve a single process
(the embedded default); Redis and PostgreSQL implement the same protocols for many replicas.
Every key a caller passes is already scoped by tenant (see `Identity`); stores add nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class KVStore(Protocol):
    """Bytes by key with an optional time-to-live (seconds)."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Invalidation by pattern: removes every key starting with `prefix`."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    key: str
    amount: float
    id: str


class CounterStore(Protocol):
    """Atomic counters for budgets and quotas: reserve the worst case before a request, settle
    to the real amount after, release on failure. `reserve` is all-or-nothing under
    concurrency, so many requests racing for the last unit cannot overspend."""

    async def reserve(self, key: str, amount: float, limit: float,
                      ttl: float | None = None) -> Reservation | None:
        """Adds `amount` if the total stays ≤ `limit`; None (nothing added) otherwise."""
        ...

    async def settle(self, reservation: Reservation, actual: float) -> float:
        """Replaces the reserved amount by the actual one; returns the new total."""
        ...

    async def release(self, reservation: Reservation) -> float: ...

    async def value(self, key: str) -> float: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class UsageRecord:
    """One request, whatever its outcome; written to the ledger off the hot path."""

    request_id: str
    ts: float
    tenant: str
    alias: str
    deployment: str
    outcome: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LedgerStore(Protocol):
    async def append(self, records: Sequence[UsageRecord]) -> int:
        """Stores records; a record whose request_id is already stored is skipped (so a
        replayed journal never double-counts). Returns how many were new."""
        ...

    async def query(self, *, tenant: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = 1000) -> list[UsageRecord]: ...

    async def aclose(self) -> None: ...


class ConversationStore(Protocol):
    """Turns of a conversation as JSON-able dicts (OpenAI messages), oldest first."""

    async def append(self, conversation: str, messages: Sequence[dict[str, Any]]) -> None: ...

    async def history(self, conversation: str, limit: int | None = None) -> list[dict[str, Any]]: ...

    async def clear(self, conversation: str) -> None: ...

    async def aclose(self) -> None: ...
